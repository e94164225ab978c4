"""`dreamjourney data synth`, `dreamjourney eval PRED GT` and `eval bench` end to end."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.data import load_any_scene
from dreamjourney.eval.bench import run_bench
from dreamjourney.eval.metrics import psnr
from dreamjourney.eval.warp import forward_warp
from dreamjourney.io.video import read_video
from dreamjourney.pipelines.novel_view import METHODS, build_method, register_method
from helpers import run_main

REPO = Path(__file__).resolve().parents[1]


def cli(*args):
    """The real entry point in a subprocess (used once: the rest run in-process, for speed)."""
    return subprocess.run(
        [sys.executable, "-m", "dreamjourney", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=300,
    )


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `dreamjourney ARGS` in this process through `main()`: (exit code, stdout, stderr)."""
    return functools.partial(run_main, monkeypatch, capsys)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    r = cli("data", "synth", "--out", out, "--scenes", 3, "--cameras", 3, "--frames", 3,
            "--size", "48x40", "--seed", 7)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_synth_cli_writes_loadable_scenes(scenes):
    assert sorted(p.name for p in scenes.iterdir()) == ["scene_000", "scene_001", "scene_002"]
    scene = load_any_scene(scenes / "scene_002")
    assert scene.name == "synth_0009" and scene.camera_names == [
        "exo_front",
        "exo_back",
        "exo_side",
    ]
    assert scene.streams["exo_side"].frames.shape == (3, 3, 40, 48)


def test_bench_both_baselines(scenes, tmp_path):
    results = {}
    for method in ("copy-input", "warp-input"):
        results[method] = run_bench(build_method(method), scenes, tmp_path / method, name=method)
        res = results[method]
        assert len(res["episodes"]) == 3 * 6  # every ordered pair of 3 cameras in 3 scenes
        saved = json.loads((tmp_path / method / "results.json").read_text())
        assert saved["overall"] == res["overall"] and saved["per_dataset"].keys() == {"set"}
        md = (tmp_path / method / "results.md").read_text()
        assert md.count("| set | synth_") == 18 and f"# {method}" in md
        video = tmp_path / method / res["episodes"][0]["video"]
        frames, _ = read_video(video)
        assert frames.shape == (3, 3, 40, 3 * 48)  # input | prediction | ground truth
    # the episode values are the metric of the method's output against the target camera
    scene = load_any_scene(scenes / "scene_001")
    a, b = scene.streams["exo_back"], scene.streams["exo_side"]
    episode = next(
        e
        for e in results["copy-input"]["episodes"]
        if e["scene"] == "synth_0008" and e["input"] == "exo_back" and e["target"] == "exo_side"
    )
    assert episode["psnr"] == pytest.approx(float(psnr(a.frames, b.frames).mean()), rel=1e-5)
    warped = torch.stack(
        [forward_warp(a.frames[t], a.depth[t], a.cameras[t], b.cameras[t])[0] for t in range(3)]
    )
    episode = next(
        e
        for e in results["warp-input"]["episodes"]
        if e["scene"] == "synth_0008" and e["input"] == "exo_back" and e["target"] == "exo_side"
    )
    assert episode["psnr"] == pytest.approx(float(psnr(warped, b.frames).mean()), rel=1e-5)
    overall = results["copy-input"]["overall"]["psnr"]
    mean = np.mean([e["psnr"] for e in results["copy-input"]["episodes"]])
    assert overall == pytest.approx(mean)  # one dataset: the mean over its episodes


def test_register_method_and_bench_cli_with_extreme_pairs(scenes, tmp_path, run):
    register_method(
        "gray", lambda level=0.5: lambda f, ci, ct, *, input_depth, moment_scale: f * 0 + level
    )
    try:
        res = run_bench(
            build_method("gray", level=0.25), scenes / "scene_000", tmp_path / "g",
            name="gray", method_options={"level": 0.25}, pairs="input", videos=False,
        )  # fmt: skip
        assert [(e["input"], e["target"]) for e in res["episodes"]] == [
            ("exo_front", "exo_back"),
            ("exo_front", "exo_side"),
        ]
        assert (
            res["method_options"] == {"level": "0.25"} and not (tmp_path / "g" / "videos").exists()
        )
    finally:
        METHODS.pop("gray")
    code, _, err = run("eval", "bench", "copy-input", "--scenes", scenes, "--out", tmp_path / "b",
                       "--pairs", "extreme", "--no-videos")  # fmt: skip
    assert code == 0, err
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    pairs = {(e["input"], e["target"]) for e in saved["episodes"]}
    assert ("exo_front", "exo_back") in pairs and saved["pairs"] == "extreme"
    code, _, err = run("eval", "bench", "nope", "--scenes", scenes, "--out", tmp_path / "c")
    assert code == 2 and "unknown method 'nope'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def write_frames(folder, values):
    folder.mkdir()
    for i, v in enumerate(values):
        Image.fromarray(np.full((16, 20, 3), v, np.uint8)).save(folder / f"{i:03d}.png")


def test_eval_compare_cli_on_frame_folders(tmp_path, run):
    write_frames(tmp_path / "pred", [100, 100])
    write_frames(tmp_path / "gt", [125, 100])
    mask = np.zeros((16, 20), np.uint8)
    mask[:, :10] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, out, err = run("eval", tmp_path / "pred", tmp_path / "gt", "--mask",
                         tmp_path / "mask.png", "--out", tmp_path / "report.json")  # fmt: skip
    assert code == 0, err
    assert "psnr" in out
    report = json.loads((tmp_path / "report.json").read_text())
    expected = 20 * np.log10(255 / 25)
    assert report["per_frame"]["psnr"][0] == pytest.approx(expected, abs=1e-3)
    assert report["per_frame"]["psnr"][1] is None  # identical frame: infinite PSNR
    assert report["frames"] == 2 and report["per_frame"]["ssim"][1] == pytest.approx(1.0)
    write_frames(tmp_path / "short", [100])
    code, _, err = run("eval", tmp_path / "short", tmp_path / "gt", "--out", tmp_path / "r2.json")
    assert code == 2 and "1 frames, but GT has 2" in err
    assert not (tmp_path / "r2.json").exists()


def test_synth_cli_anyview_layout(tmp_path, run):
    code, _, err = run("data", "synth", "--out", tmp_path / "av", "--cameras", 2, "--frames", 2,
                       "--size", "16x12", "--layout", "anyview")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "av" / "scene_000" / "metadata.json").is_file()
    scene = load_any_scene(tmp_path / "av" / "scene_000")
    assert (
        scene.camera_names == ["exo_front", "exo_back"]
        and scene.streams["exo_back"].depth is not None
    )


def test_eval_compare_cli_on_videos(tmp_path, run):
    from dreamjourney.io.video import write_video

    gt = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    write_video(tmp_path / "gt.mp4", gt)
    write_video(tmp_path / "pred.mp4", (gt + 0.1).clamp(0, 1))
    code, _, err = run(
        "eval", tmp_path / "pred.mp4", tmp_path / "gt.mp4", "--out", tmp_path / "r.json"
    )
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == 3 and 10 < report["mean"]["psnr"] < 35


def test_eval_consistency_cli_on_a_synthetic_camera(scenes, tmp_path, run):
    from dreamjourney.camera.formats import save_cameras
    from dreamjourney.io.images import save_image

    stream = load_any_scene(scenes / "scene_000").streams["exo_side"]
    (tmp_path / "frames").mkdir()
    for i, frame in enumerate(stream.frames):
        save_image(tmp_path / "frames" / f"{i:03d}.png", frame)
    save_cameras(stream.cameras, tmp_path / "cams.json")
    np.save(tmp_path / "depth.npy", stream.depth.numpy())
    code, _, err = run("eval", "consistency", tmp_path / "frames", "--cameras", tmp_path / "cams.json",
                       "--depth", tmp_path / "depth.npy", "--out", tmp_path / "c.json")  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "c.json").read_text())
    assert len(report["per_frame_pair"]["consistency"]) == 2
    assert report["mean"]["consistency"] > 0.9  # a static camera, exact depth: only movers differ
    code, _, err = run("eval", "consistency", tmp_path / "frames", "--depth", tmp_path / "depth.npy",
                       "--out", tmp_path / "d.json")  # fmt: skip
    assert code == 2 and "give both --cameras and --depth" in err


def test_bad_cli_values_exit_2(tmp_path, run):
    code, _, err = run("data", "synth", "--out", tmp_path / "x", "--size", "12by4")
    assert code == 2 and "--size: expected WIDTHxHEIGHT" in err
    assert not (tmp_path / "x").exists()
