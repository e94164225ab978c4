"""Commands a user can predict: one meaning per flag, fast --help, whole model ids in pipes,
OS errors as one line with exit 2, outputs with the user's umask, thread defaults."""

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer

from dreamjourney.cli import app
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.clips import load_clip
from dreamjourney.io.images import save_image
from helpers import run_main

REPO = Path(__file__).resolve().parents[1]


def _commands(group, prefix=()):
    """(name path, click command) of every leaf command."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_one_meaning_per_flag_across_commands():
    root = typer.main.get_command(app)
    seen = {}
    for name, command in _commands(root):
        options = {p.name: p for p in command.params if p.param_type_name == "option"}
        opts = {o: p.name for p in command.params for o in getattr(p, "opts", [])}
        seen[" ".join(name)] = opts
        if "out" in options:
            assert "-o" in options["out"].opts, name  # -o is --out everywhere
        assert opts.get("-o", "out") == "out", name
        if "quiet" in options:
            assert sorted(options["quiet"].opts) == ["--quiet", "-q"], name
        assert opts.get("-q", "quiet") == "quiet", name
        if "trajectory" in options or (name[0] == "trajectory" and name[-1] != "convert"):
            assert "--set" in opts, name  # every command that takes a preset path
    progress = ["journey", "render", "anyview", "data synth", "eval bench", "train anyview"]
    assert all("--quiet" in seen[c] for c in progress)


def test_help_and_version_load_no_torch():
    script = (
        "import sys\n"
        "from dreamjourney.cli import main\n"
        "for args in (['--help'], ['--version'], ['journey', '--help'], ['anyview', '--help'],\n"
        "             ['render', '--help'], ['trajectory', 'preview', '--help'], ['eval', '--help'],\n"
        "             ['batch', '--help'], ['studio', '--help'], ['models', '--help']):\n"
        "    sys.argv = ['dreamjourney', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, (args, exc.code)\n"
        "print(sorted(m for m in ('torch', 'numba', 'numpy', 'cv2') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_models_prints_whole_model_ids_into_a_pipe(monkeypatch, capsys):
    code, out, _ = run_main(monkeypatch, capsys, "models")
    assert code == 0
    for model in (
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        "depth-anything/Depth-Anything-V2-Large-hf",
    ):
        assert model in out


def test_out_that_is_a_file_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    photo = tmp_path / "photo.png"
    save_image(photo, torch.rand(3, 24, 32))
    taken = tmp_path / "taken"
    taken.write_text("mine")
    before = sorted(tmp_path.iterdir())
    for args in (
        ["render", str(photo), "-t", "forward", "-o", str(taken)],
        ["trajectory", "make", "forward", "-o", str(taken / "path.json")],  # a file's child
        ["data", "synth", "-o", str(taken), "--size", "16x16", "--frames", "1"],
    ):
        code, _, err = run_main(monkeypatch, capsys, *args)
        assert code == 2, args
        assert err.startswith("error:") and err.strip().count("\n") == 0, err
        assert "taken" in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == before and taken.read_text() == "mine"


@pytest.mark.parametrize(
    ("error", "words"),
    [(PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
     (OSError(errno.ENOSPC, "No space left on device"), "No space left on device")],
)  # fmt: skip
def test_os_errors_while_writing_are_one_line_and_leave_nothing(
    error, words, tmp_path, monkeypatch, capsys
):
    def fail(fd):
        error.filename = str(tmp_path / "path.json")
        raise error

    monkeypatch.setattr("dreamjourney.io.atomic.os.fsync", fail)
    code, _, err = run_main(monkeypatch, capsys, "trajectory", "make", "forward", "-o",
                       str(tmp_path / "path.json"))  # fmt: skip
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'path.json'}: {words}"
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary left behind


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_have_the_users_umask(mask, tmp_path):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~mask


def test_thread_defaults_wait_passively_unless_the_user_says(monkeypatch):
    from dreamjourney.threads import configure_threads

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    configure_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_size_applies_before_the_frames_are_compared(tmp_path):
    save_image(tmp_path / "000.png", torch.full((3, 20, 30), 0.2))
    save_image(tmp_path / "001.png", torch.full((3, 40, 60), 0.8))
    with pytest.raises(Exception, match="give --size WxH"):
        load_clip(tmp_path)
    clip, _ = load_clip(tmp_path, size=(15, 10))
    assert clip.shape == (2, 3, 10, 15)


def test_render_caps_its_size_and_logs_the_stored_video_size(tmp_path, monkeypatch, capsys):
    big = tmp_path / "big.png"
    save_image(big, torch.rand(3, 750, 1000))
    code, out, err = run_main(monkeypatch, capsys, "render", str(big), "-t", "forward", "-n", "2",
                         "-o", str(tmp_path / "a"), "-q")  # fmt: skip
    assert code == 0, err
    assert "2 frames (512x384)" in out
    from dreamjourney.io.video import read_video

    code, out, err = run_main(monkeypatch, capsys, "render", str(big), "-t", "forward", "-n", "2",
                         "--size", "33x25", "-o", str(tmp_path / "b"), "-q")  # fmt: skip
    assert code == 0, err
    assert "2 frames (33x25) (render.mp4 34x26: H.264 needs even sides)" in out
    assert read_video(tmp_path / "b" / "render.mp4")[0].shape[-2:] == (26, 34)
