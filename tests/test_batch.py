"""`dreamjourney batch`: jobs from a folder or JSONL, workers on a local Ray, resume after SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.batch import BatchCallback, load_jobs, run_batch
from dreamjourney.batch.summary import BatchSummary
from dreamjourney.batch.worker import JobWorker
from dreamjourney.cli import main
from dreamjourney.errors import InputError
from dreamjourney.io.video import write_video
from dreamjourney.models import registry
from helpers import run_main

SRC = Path(__file__).resolve().parents[1] / "src"
W, H = 64, 48
JOURNEY = {"frames": 3, "segments": 2}
ANYVIEW = {"frames": 4}
COMMON = {"trajectory": "pan-right", "seed": 5}


def photo(path: Path, index: int) -> Path:
    """A small landscape whose sky, house position and texture depend on `index`."""
    a = np.zeros((H, W, 3), np.uint8)
    a[:] = [70, 150, 50]
    a[: H // 2] = [120, 170, 230 - 15 * index]
    a[H // 2 - 8 : H // 2 + 4, 6 + 5 * index : 18 + 5 * index] = [200, 50, 40]
    a[..., 1] += (np.arange(W) % (5 + index) * 3).astype(np.uint8)[None]
    Image.fromarray(a).save(path)
    return path


def clip(path: Path) -> Path:
    """A 4-frame video of a box moving right over a gradient."""
    frames = torch.linspace(0.2, 0.8, W).expand(4, 3, H, W).clone()
    for t in range(4):
        frames[t, :, 16:32, 8 + 6 * t : 24 + 6 * t] = torch.tensor([0.9, 0.2, 0.1])[:, None, None]
    write_video(path, frames, fps=8)
    return path


def single(*argv: str) -> None:
    """Run the single command in this process, as `dreamjourney *argv` would."""
    with mock.patch.object(sys, "argv", ["dreamjourney", *argv]):
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, f"dreamjourney {' '.join(argv)} exited with {exc.code}"


def option_args(options: dict) -> list[str]:
    return [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def run_files(folder: Path) -> dict[str, str]:
    """Hashes of a run directory's files; the manifest without its clock readings. Temporary
    files of an atomic write that a kill interrupted (`.NAME.XXXX.tmp.EXT`) are left out."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or (p.name.startswith(".") and ".tmp" in p.name):
            continue
        data = p.read_bytes()
        if p.name == "manifest.json":
            manifest = json.loads(data)
            for key in ("created", "updated"):
                manifest.pop(key)
            for segment in manifest["segments"]:
                segment.pop("seconds")
            data = json.dumps(manifest, sort_keys=True).encode()
        files[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return files


class Events(BatchCallback):
    def __init__(self):
        self.started: list[tuple[int, int]] = []
        self.ended: list[str] = []
        self.retried: list[tuple[str, str]] = []
        self.worker_starts = 0

    def start(self, total, skipped):
        self.started.append((total, skipped))

    def workers(self, count, device):
        self.worker_starts += 1

    def job_retry(self, job, error, attempt):
        self.retried.append((job.id, error))

    def job_end(self, record):
        self.ended.append(record.id)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Six photos and a video, and each one's single-command run (the reference outputs)."""
    root = tmp_path_factory.mktemp("batch_inputs")
    folder = root / "inputs"
    folder.mkdir()
    photos = [photo(folder / f"photo{i}.png", i) for i in range(6)]
    video = clip(folder / "clip.mp4")
    refs = root / "single"
    common = option_args(COMMON)
    for p in photos:
        journey = [*common, *option_args(JOURNEY), "--quiet"]
        single("journey", str(p), "--out", str(refs / p.stem), *journey)
    single("anyview", str(video), "--out", str(refs / "clip"), *common, *option_args(ANYVIEW))
    return folder, refs


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: 2 CPUs, no dashboard, a small object store."""
    ray = pytest.importorskip("ray")
    # the workers (started by the raylet this process starts) import these sources too
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    with mock.patch.dict(os.environ, {"PYTHONPATH": path}):
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 2**20,
            log_to_driver=False,
            logging_level="ERROR",
        )
    yield ray
    ray.shutdown()


# ----------------------------------------------------------------------------- jobs
def test_folder_jobs_by_kind_with_defaults(tmp_path):
    photo(tmp_path / "b.png", 0)
    photo(tmp_path / "b.jpg", 1)
    photo(tmp_path / "a.png", 2)
    clip(tmp_path / "walk.mp4")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    photo(tmp_path / "sub" / "c.png", 3)
    jobs = load_jobs(
        tmp_path,
        options={"trajectory": "orbit", "seed": 2},
        command_options={"journey": {"segments": 4, "no_motion": True, "motion_frames": False}},
    )
    assert [(j.id, j.command, Path(j.input).name) for j in jobs] == [
        ("a", "journey", "a.png"),
        ("b.jpg", "journey", "b.jpg"),
        ("b.png", "journey", "b.png"),
        ("walk", "anyview", "walk.mp4"),
    ]
    # options in name order, whatever order they came in
    assert jobs[0].args == ("--no-motion", "--seed", "2", "--segments", "4", "--trajectory", "orbit")  # fmt: skip
    assert jobs[3].args == ("--seed", "2", "--trajectory", "orbit")
    assert jobs[0].argv("/o/a", preset="tiny", config=None, device="cpu") == [
        "journey", jobs[0].input, "--out", "/o/a", *jobs[0].args,
        "--preset", "tiny", "--device", "cpu", "--resume", "--quiet",
    ]  # fmt: skip
    assert jobs[3].argv("/o/w", preset="offline", config="/c.toml", device="cuda")[-6:] == [
        "--preset", "offline", "--device", "cuda", "--config", "/c.toml",
    ]  # fmt: skip


def test_jsonl_jobs_resolve_paths_against_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    photo(tmp_path / "data" / "p.png", 0)
    (tmp_path / "data" / "path.json").write_text("{}")
    lines = [
        {"input": "data/p.png", "trajectory": "data/path.json", "options": {"frames": 5}},
        {"input": "data/p.png", "trajectory": "orbit", "seed": 1},
        {"id": "x", "command": "anyview", "input": "data/p.png", "options": {"size": [1, 2.5]}},
    ]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    elsewhere = tmp_path / "data"
    cwd = os.getcwd()
    os.chdir(elsewhere)  # relative to the file, not to the current folder
    try:
        jobs = load_jobs(jobs_file, options={"seed": 9})
    finally:
        os.chdir(cwd)
    image = str((tmp_path / "data" / "p.png").resolve())
    assert [(j.id, j.command, j.input) for j in jobs] == [
        ("p-1", "journey", image),
        ("p-2", "journey", image),
        ("x", "anyview", image),
    ]
    traj = str((tmp_path / "data" / "path.json").resolve())
    assert jobs[0].args == ("--frames", "5", "--seed", "9", "--trajectory", traj)
    assert jobs[1].args == ("--seed", "1", "--trajectory", "orbit")
    assert jobs[2].args == ("--seed", "9", "--size", "1", "--size", "2.5")
    assert jobs[2].where == f"{jobs_file} line 3"


def test_cli_job_options_by_command_with_paths_from_the_current_folder(tmp_path, monkeypatch):
    from dreamjourney.cli.batch import _options

    (tmp_path / "cams.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    pairs = ["frames=3", "journey.segments=2", "anyview.input_cameras=cams.json", "prompt=a b"]
    assert _options(pairs) == (
        {"frames": 3, "prompt": "a b"},
        {
            "journey": {"segments": 2},
            "anyview": {"input_cameras": str((tmp_path / "cams.json").resolve())},
        },
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"input": "a.png"}\n{"input": "b.png",', "jobs.jsonl line 2: not JSON"),
        ('{"input": "a.png", "frames": 3}', "jobs.jsonl line 1 [frames]: Extra inputs"),
        ('{"input": "a.png", "options": {"out": "x"}}', "line 1: --out is set by the batch"),
        ('{"input": "a.png", "options": {"resume": true}}', "--resume is set by the batch"),
        ('{"input": "a.png", "options": {"Frames": 3}}', "invalid option name 'Frames'"),
        ('{"input": "a.png", "options": {"size": {"w": 1}}}', "line 1 [options.size"),
        ('{"input": "a.txt"}', "cannot tell the command from the input"),
        ('{"input": "a.png", "seed": 1, "options": {"seed": 2}}', "seed is given twice"),
        ('{"input": "a.png", "id": "../x"}', "invalid job id '../x'"),
        ('{"input": "a.png", "id": "batch.json"}', "invalid job id 'batch.json'"),
        ('{"input": "a.png"}\n{"input": "b.png", "id": "a"}', "line 2: job id 'a' is also"),
        ("\n\n", "jobs.jsonl: holds no jobs"),
    ],
)
def test_bad_jobs_file_names_the_line(tmp_path, text, message):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(text)
    with pytest.raises(InputError) as info:
        load_jobs(jobs_file)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_job_key_follows_the_command_line_and_the_input(tmp_path):
    image = photo(tmp_path / "p.png", 0)
    (job,) = load_jobs(tmp_path, options={"frames": 3})
    key = job.key(preset="offline", config=None)
    assert key == load_jobs(tmp_path, options={"frames": 3})[0].key(preset="offline", config=None)
    assert key != load_jobs(tmp_path, options={"frames": 4})[0].key(preset="offline", config=None)
    a = load_jobs(tmp_path, options={"frames": 3, "seed": 1})[0].key(preset="offline", config=None)
    b = load_jobs(tmp_path, options={"seed": 1, "frames": 3})[0].key(preset="offline", config=None)
    assert a == b != key
    assert key != job.key(preset="tiny", config=None)
    os.utime(image, ns=(1, 1))
    assert key != job.key(preset="offline", config=None)


def test_kept_backends_are_built_once_per_preset_config_and_device():
    try:
        registry.keep_backends()
        a = registry.build_backends("offline", config={"captioner": "template"})
        assert registry.build_backends("offline", config={"captioner": "template"}) is a
        assert registry.build_backends("offline") is not a
        assert registry.build_backends("offline", config={"captioner": "template"}, device="cuda") is not a  # fmt: skip
    finally:
        registry.keep_backends(False)
    assert registry.build_backends("offline") is not registry.build_backends("offline")


# ----------------------------------------------------------------------------- worker
def test_worker_runs_a_command_line_and_reports_errors_in_one_line(tmp_path):
    (tmp_path / "photos").mkdir()
    image = photo(tmp_path / "photos" / "p.png", 1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    worker = JobWorker()
    try:
        (job,) = load_jobs(tmp_path / "photos", options={"frames": 2})
        out = tmp_path / "runs" / job.id
        outcome = worker.run(job.argv(out, preset="offline", config=None, device="cpu"), str(out))
        assert outcome.ok and outcome.frames == 6  # the journey default: 3 segments
        assert outcome.worker.endswith(f":{os.getpid()}")

        argv = ["journey", str(bad), "--out", str(tmp_path / "b"), "--quiet"]
        outcome = worker.run(argv, str(tmp_path / "b"))
        assert not outcome.ok and not outcome.retry
        assert outcome.error is not None and outcome.error.startswith(f"{bad}: cannot read image")

        argv = ["journey", str(image), "--out", str(tmp_path / "c"), "--framez", "2"]
        outcome = worker.run(argv, str(tmp_path / "c"))
        assert (outcome.ok, outcome.retry) == (False, False)
        assert outcome.error is not None
        assert outcome.error.startswith(
            "journey: No such option: --framez (Possible options: --frames"
        )
    finally:
        registry.keep_backends(False)


def test_unreadable_summary_is_refused(tmp_path):
    photo(tmp_path / "p.png", 0)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "batch.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match=r"batch.json: not a dreamjourney.batch/1 summary"):
        BatchSummary.open(tmp_path / "out", load_jobs(tmp_path), source="", preset="x", config=None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus-per-worker", "2"], "--gpus-per-worker: must be between 0 and 1"),
        (["--workers", "0"], "--workers: must be at least 1"),
        (["--retries", "-1"], "--retries: must not be negative"),
        (["--set", "frames"], "--set: expected KEY=VALUE"),
    ],
)
def test_cli_bad_options_one_line_exit_2(tmp_path, capsys, args, message):
    photo(tmp_path / "p.png", 0)
    with mock.patch.object(sys, "argv", ["dreamjourney", "batch", str(tmp_path), "-o", str(tmp_path / "o"), *args]):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_without_ray_the_batch_says_how_to_get_it_and_writes_nothing(tmp_path, monkeypatch, capsys):
    photo(tmp_path / "p.png", 0)
    with mock.patch.dict(sys.modules, {"ray": None}):
        code, stdout, stderr = run_main(
            monkeypatch, capsys, "batch", str(tmp_path), "-o", str(tmp_path / "out")
        )
    assert code == 2 and stdout == ""
    assert " ".join(stderr.split()) == (
        "error: dreamjourney batch: needs Ray: pip install 'dreamjourney[cluster]'"
    )
    assert stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- on Ray
def test_batch_outputs_match_single_commands_and_a_rerun_does_no_work(
    local_ray, inputs, tmp_path, monkeypatch, capsys
):
    folder, refs = inputs
    jobs = load_jobs(
        folder, options=COMMON, command_options={"journey": JOURNEY, "anyview": ANYVIEW}
    )
    assert sorted(j.id for j in jobs) == ["clip", *(f"photo{i}" for i in range(6))]
    out = tmp_path / "batch"
    events = Events()
    summary = run_batch(jobs, out, source=str(folder), workers=2, callback=events)

    assert summary.counts == {"done": 7, "failed": 0, "pending": 0}
    assert sorted(events.ended) == sorted(j.id for j in jobs) and not events.retried
    assert len({r.worker for r in summary.jobs}) == 2  # both workers took jobs
    on_disk = json.loads((out / "batch.json").read_text())
    for record in on_disk["jobs"]:
        assert record["status"] == "done" and record["attempts"] == 1 and record["error"] is None
        assert record["frames"] == (4 if record["command"] == "anyview" else 6)
        assert record["seconds"] > 0
        assert run_files(out / record["id"]) == run_files(refs / record["id"]), record["id"]

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = Events()
    summary = run_batch(jobs, out, source=str(folder), workers=2, callback=again)
    assert again.started == [(7, 7)] and again.worker_starts == 0 and not again.ended
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    assert summary.counts["done"] == 7
    # the command, with the same options from flags
    sets = ["journey.frames=3", "journey.segments=2", "anyview.frames=4"]
    argv = [str(folder), "-o", str(out), "-t", "pan-right", "--seed", "5"]
    code, stdout, stderr = run_main(
        monkeypatch, capsys, "batch", *argv, *(a for s in sets for a in ("--set", s))
    )
    assert code == 0, stderr
    assert stderr == "7 of 7 jobs already done\n"
    assert stdout == f"7 of 7 jobs done: {out / 'batch.json'}\n"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_gpus_asked_of_a_cluster_without_gpus_one_line_exit_2(
    local_ray, tmp_path, monkeypatch, capsys
):
    photo(tmp_path / "p.png", 0)
    args = [str(tmp_path), "-o", str(tmp_path / "o"), "--gpus-per-worker", "0.5"]
    code, stdout, stderr = run_main(monkeypatch, capsys, "batch", *args)
    assert (code, stdout) == (2, "")
    assert " ".join(stderr.split()) == (
        "error: --gpus-per-worker: the Ray cluster has no GPUs; "
        "use --gpus-per-worker 0 to run on CPUs"
    )
    assert stderr.count("\n") == 1


def test_killed_worker_resumes_its_job_and_a_corrupt_photo_fails_alone(
    local_ray, inputs, tmp_path, monkeypatch, capsys
):
    folder, refs = inputs
    bad = tmp_path / "corrupt.png"
    bad.write_bytes((folder / "photo0.png").read_bytes()[:60])  # a cut-off PNG
    lines = [
        {"input": str(folder / "photo1.png")},
        {"input": str(bad)},
        {"input": str(folder / "photo2.png"), "options": {"segments": 4}},
        {"input": str(folder / "clip.mp4"), "options": {"frames": 4}},  # anyview, by its kind
    ]
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    jobs = load_jobs(jobs_file, options=COMMON, command_options={"journey": JOURNEY})
    assert [j.command for j in jobs] == ["journey"] * 3 + ["anyview"]
    out = tmp_path / "batch"
    events = Events()
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(summary=run_batch(jobs, out, workers=1, callback=events))
    )
    thread.start()
    # the one worker ran photo1 first: its pid is in batch.json; kill it in photo2's segment 1
    marker = out / "photo2" / "segments" / "0001" / "render.mp4"
    deadline = time.monotonic() + 300
    while not marker.exists() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    worker = json.loads((out / "batch.json").read_text())["jobs"][0]["worker"]
    os.kill(int(worker.rpartition(":")[2]), signal.SIGKILL)
    manifest = json.loads((out / "photo2" / "manifest.json").read_text())
    done_at_kill = [s["index"] for s in manifest["segments"] if s["status"] == "done"]
    first_segment = (out / "photo2" / "segments" / "0000" / "completed.mp4").stat().st_ino
    thread.join(timeout=300)
    assert not thread.is_alive()

    assert 1 <= len(done_at_kill) < 4, "not killed mid-job"
    summary = result["summary"]
    records = {r.id: r for r in summary.jobs}
    assert summary.counts == {"done": 3, "failed": 1, "pending": 0}
    for name in ("photo1", "clip"):
        assert records[name].attempts == 1
        assert run_files(out / name) == run_files(refs / name)
    assert records["clip"].frames == 4

    assert records["corrupt"].status == "failed" and records["corrupt"].attempts == 1
    assert records["corrupt"].error is not None
    assert records["corrupt"].error.startswith(f"{bad.resolve()}: cannot read image")

    assert records["photo2"].status == "done" and records["photo2"].attempts == 2
    assert records["photo2"].worker != worker and records["photo2"].frames == 12
    assert [job for job, _ in events.retried] == ["photo2"]
    assert events.retried[0][1].startswith("worker lost")
    # resumed, not redone: the segment finished before the kill is the same file
    assert (out / "photo2" / "segments" / "0000" / "completed.mp4").stat().st_ino == first_segment
    whole = tmp_path / "whole"
    args = option_args({**COMMON, "frames": 3, "segments": 4})
    single("journey", str(folder / "photo2.png"), "--out", str(whole), *args, "--quiet")
    assert run_files(out / "photo2") == run_files(whole)

    # a rerun runs the failed job again, and only that one
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, stdout, stderr = run_main(monkeypatch, capsys, "batch", str(jobs_file), "-o", str(out), "-t", "pan-right", "--seed", "5", "--set", "journey.frames=3", "--set", "journey.segments=2")  # fmt: skip
    assert code == 1
    assert "3 of 4 jobs already done" in stderr and "1 job(s) failed" in stderr
    assert f"corrupt failed: {bad.resolve()}: cannot read image" in " ".join(stderr.split())
    assert stdout == f"3 of 4 jobs done: {out / 'batch.json'}\n"
    changed = {p for p in out.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert changed == {out / "batch.json"}
