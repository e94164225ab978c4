"""`dreamjourney anyview --method anyview`, `models convert-anyview` and `eval bench` on an
AnyViewBench root, end to end on the CPU with a fake release."""

import functools
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from anyview_release import fake_checkpoint_state, fake_release, write_checkpoint
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.data import load_any_scene
from dreamjourney.data.anyview_protocol import resize_lanczos, snap_shape
from dreamjourney.eval.anyviewbench import read_bench_root, run_anyviewbench
from dreamjourney.eval.metrics import LPIPS
from dreamjourney.io.clips import load_clip
from dreamjourney.io.video import read_video, write_video
from dreamjourney.models.weights import MemoryOptions
from dreamjourney.pipelines.anyview_official import load_anyview_official
from dreamjourney.pipelines.novel_view import build_method
from helpers import run_main

FAST = ["--steps", "2", "--resolution", "32", "--dtype", "float32"]


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `dreamjourney ARGS` in this process through `main()`: (exit code, stdout, stderr)."""
    return functools.partial(run_main, monkeypatch, capsys)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fake_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    """An AnyViewBench root made by `data synth --layout anyview`: split droid_OOD_LR (2
    episodes, one with a black ground-truth frame), ddad_FL (1, with a scale_factor), and a
    listed split whose folder is absent."""
    from typer.testing import CliRunner

    from dreamjourney.cli import app

    root = tmp_path_factory.mktemp("avb")
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(root / "synth"), "--scenes",
                                      "3", "--cameras", "2", "--frames", "5", "--size", "40x24",
                                      "--layout", "anyview", "--seed", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    black = root / "synth" / "scene_001" / "rgb" / _target(root / "synth" / "scene_001")
    Image.fromarray(np.zeros((24, 40, 3), np.uint8)).save(black / "0000000002.png")
    meta_path = root / "synth" / "scene_002" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["specific"]["scale_factor"] = 0.05
    meta_path.write_text(json.dumps(meta))
    splits = {
        "splits": {
            "droid_OOD_LR": {"episodes": ["scene_000", "scene_001"], "dir": "synth"},
            "ddad_FL": {"episodes": ["scene_002"], "dir": "synth", "redistributable": True},
            "waymo_FL": {"episodes": ["waymo_FL_ep000"], "dir": "waymo"},
        },
        "groups": {"DROID": ["droid_OOD_LR"], "DDAD": ["ddad_FL"], "Waymo": ["waymo_FL"]},
    }
    (root / "splits.json").write_text(json.dumps(splits))
    return root


def _target(scene_dir):
    return json.loads((scene_dir / "metadata.json").read_text())["specific"]["roles"]["target"]


# ----------------------------------------------------------------------------- anyview command
def test_anyview_method_on_a_synthetic_scene_matches_the_pipeline(tmp_path, run, release):
    code, _, err = run("data", "synth", "--out", tmp_path / "syn", "--cameras", 2, "--frames", 5,
                       "--size", "40x24", "--layout", "anyview")  # fmt: skip
    assert code == 0, err
    scene = load_any_scene(tmp_path / "syn" / "scene_000")
    a = scene.streams[scene.input_camera]
    b = scene.streams[_target(tmp_path / "syn" / "scene_000")]
    save_cameras(a.cameras, tmp_path / "in.json", fps=scene.fps)
    save_cameras(b.cameras, tmp_path / "target.json", fps=scene.fps)
    frames_dir = tmp_path / "syn" / "scene_000" / "rgb" / a.name
    code, out, err = run("anyview", frames_dir, "--input-cameras", tmp_path / "in.json",
                         "--trajectory", tmp_path / "target.json", "--target-frame", "world",
                         "--method", "anyview", "--model", release, *FAST, "--out",
                         tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert "32x32" in out  # snap_shape(40, 24, 32): the model's grid, not the input's size
    video, _ = read_video(tmp_path / "out" / "video.mp4")
    cams = load_cameras(tmp_path / "out" / "cameras.json")
    assert video.shape == (5, 3, 32, 32) and (cams.width, cams.height) == (32, 32)
    torch.testing.assert_close(cams.c2w, b.cameras.c2w)  # world frame: the target file as is
    pipe = load_anyview_official(str(release), memory=MemoryOptions(dtype="float32"))
    clip = load_clip(frames_dir)[0]
    expected = pipe(clip, a.cameras, b.cameras, num_inference_steps=2, long_side=32).frames
    write_video(tmp_path / "expected.mp4", expected)  # the same frames encode the same
    assert torch.equal(video, read_video(tmp_path / "expected.mp4")[0])
    side, _ = read_video(tmp_path / "out" / "side_by_side.mp4")
    assert side.shape[-2:] == (32, 32 + round(40 * 32 / 24) + 1)  # input | output, padded even


def test_anyview_method_on_a_video_file_through_a_converted_folder(tmp_path, run, release):
    write_video(tmp_path / "clip.mp4", torch.rand(6, 3, 24, 40, generator=torch.Generator()))
    code, out, err = run("models", "convert-anyview", release, tmp_path / "conv")
    assert code == 0, err
    assert (tmp_path / "conv" / "model_index.json").is_file() and "--method anyview" in out
    code, _, err = run("anyview", tmp_path / "clip.mp4", "-t", "orbit", "--method", "anyview",
                         "--model", tmp_path / "conv", *FAST, "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    video, _ = read_video(tmp_path / "out" / "video.mp4")
    assert video.shape == (6, 3, 32, 32)  # 6 frames: two windows of 5
    code, _, err = run("models", "convert-anyview", release, tmp_path / "conv")
    assert code == 2 and "not an empty folder" in err


def test_anyview_method_errors_are_one_line(tmp_path, run, release):
    write_video(tmp_path / "clip.mp4", torch.rand(2, 3, 24, 40))
    base = ("anyview", tmp_path / "clip.mp4", "-t", "orbit", "--method", "anyview", "--out")
    code, _, err = run(*base, tmp_path / "a")
    assert code == 2 and "--model" in err and "convert-anyview" in err
    state = fake_checkpoint_state()
    del state["blocks.0.self_attn.k_norm.weight"]
    broken = tmp_path / "rel" / "anyview_dvs_2b.pt"
    broken.parent.mkdir()
    for name in ("tokenizer.pth", "default_text_emb.pt"):
        shutil.copy(release.parent / name, broken.parent / name)
    write_checkpoint(broken, state)
    code, _, err = run(*base, tmp_path / "b", "--model", broken)
    assert code == 2 and "missing tensor blocks.0.self_attn.k_norm.weight" in err
    (broken.parent / "tokenizer.pth").unlink()
    code, _, err = run(*base, tmp_path / "c", "--model", broken)
    assert code == 2 and "Wan2.1 VAE was not found" in err
    for e in (err,):
        assert "Traceback" not in e and len(e.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- AnyViewBench
def test_bench_root_reading(bench_root):
    bench = read_bench_root(bench_root)
    assert [(e.split, e.name) for e in bench.episodes] == [
        ("droid_OOD_LR", "scene_000"), ("droid_OOD_LR", "scene_001"), ("ddad_FL", "scene_002")]  # fmt: skip
    assert bench.missing_splits == ["waymo_FL"]
    assert bench.groups == {"DROID": ["droid_OOD_LR"], "DDAD": ["ddad_FL"]}


def test_eval_bench_copy_input_on_an_anyviewbench_root(bench_root, tmp_path, run):
    code, out, err = run("eval", "bench", "copy-input", "--scenes", bench_root, "--out",
                         tmp_path / "o", "--no-videos")  # fmt: skip
    assert code == 0, err
    assert "AnyViewBench zero-shot" in out and "DROID" in out and "DDAD" in out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    md = (tmp_path / "o" / "results.md").read_text()
    assert "## Zero-shot" in md and "Splits not present: waymo_FL" in md
    droid_row = next(line for line in md.splitlines() if line.startswith("| DROID |"))
    # ours, then the published numbers of the release and of the paper
    assert droid_row.endswith("| 11.91 / 0.397 / 0.613 | 11.98 / 0.399 / 0.603 |")
    grid = snap_shape(40, 24)
    assert grid == (576, 336)
    # episode values against a direct computation at the target's snapped grid
    for episode in res["episodes"]:
        scene = load_any_scene(bench_root / "synth" / episode["episode"])
        a = scene.streams[scene.input_camera].frames
        b = scene.streams[_target(bench_root / "synth" / episode["episode"])].frames
        gt = resize_lanczos(b, *grid).double()
        pred = torch.nn.functional.interpolate(a, size=grid[::-1], mode="bilinear",
                                               antialias=True, align_corners=False).double()  # fmt: skip
        keep = [i for i in range(5) if gt[i].sum() >= 0.01]
        assert (
            episode["frames_scored"] == len(keep) == (4 if episode["episode"] == "scene_001" else 5)
        )
        psnr = [10 * torch.log10(1 / ((pred[i].clamp(0, 1) - gt[i]) ** 2).mean()) for i in keep]
        ssim = [structural_similarity(pred[i].clamp(0, 1).numpy(), gt[i].numpy(), channel_axis=0,
                                      data_range=1.0) for i in keep]  # fmt: skip
        assert episode["psnr"] == pytest.approx(float(np.mean(psnr)), rel=1e-6)
        assert episode["ssim"] == pytest.approx(float(np.mean(ssim)), rel=1e-6)
    e = {r["episode"]: r for r in res["episodes"]}
    droid = (e["scene_000"]["psnr"] + e["scene_001"]["psnr"]) / 2
    assert res["per_split"]["droid_OOD_LR"]["psnr"] == pytest.approx(droid)
    assert res["per_group"]["DDAD"]["psnr"] == pytest.approx(e["scene_002"]["psnr"])
    # groups weigh the same, however many episodes they hold
    assert res["overall"]["psnr"] == pytest.approx((droid + e["scene_002"]["psnr"]) / 2)
    assert res["panels"]["zero_shot"]["mean"]["psnr"] == pytest.approx(res["overall"]["psnr"])
    assert res["panels"]["in_distribution"]["datasets"] == {}


def test_anyviewbench_lpips_vgg_in_float64_moment_scales_and_videos(bench_root, tmp_path):
    torch.manual_seed(0)
    vgg = LPIPS("vgg")
    torch.save(vgg.state_dict(), tmp_path / "vgg.pth")
    seen = []

    def spy(frames, cams_in, cams_out, *, input_depth, moment_scale):
        seen.append(moment_scale)
        return torch.full((len(frames), 3, cams_out.height, cams_out.width), 0.5)

    res = run_anyviewbench(spy, bench_root, tmp_path / "o", name="gray", long_side=32,
                           lpips_weights=tmp_path / "vgg.pth")  # fmt: skip
    assert seen == [1 / 8, 1 / 8, 0.05]  # DROID from the table; ddad's own scale_factor
    scene = load_any_scene(bench_root / "synth" / "scene_000")
    gt = resize_lanczos(scene.streams[_target(bench_root / "synth" / "scene_000")].frames, 32, 32)
    lpips = LPIPS.from_file(tmp_path / "vgg.pth").double()
    expected = lpips(torch.full(gt.shape, 0.5, dtype=torch.float64), gt.double())
    assert res["episodes"][0]["lpips"] == pytest.approx(float(expected.mean()), rel=1e-9)
    assert res["protocol"]["lpips"] == "vgg" and res["protocol"]["long_side"] == 32
    frames, _ = read_video(tmp_path / "o" / res["episodes"][0]["video"])
    assert frames.shape == (5, 3, 32, 32 + 32 + round(40 * 32 / 24) + 1)  # input|pred|gt, even
    torch.save(LPIPS("alex").state_dict(), tmp_path / "alex.pth")
    with pytest.raises(Exception, match="VGG"):
        run_anyviewbench(spy, bench_root, tmp_path / "o2", name="gray",
                         lpips_weights=tmp_path / "alex.pth")  # fmt: skip


def test_eval_bench_anyview_method_on_an_anyviewbench_root(bench_root, tmp_path, run, release):
    code, out, err = run("eval", "bench", "anyview", "--scenes", bench_root, "--out",
                         tmp_path / "o", "--split", "ddad_FL", "--no-videos", "--option",
                         f"model={release}", "--option", "num_inference_steps=1", "--option",
                         "long_side=32", "--option", "dtype=float32")  # fmt: skip
    assert code == 0, err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [e["episode"] for e in res["episodes"]] == ["scene_002"]
    assert 0 < res["episodes"][0]["psnr"] < 60 and "DDAD" in out
    method = build_method("anyview", model=str(release), num_inference_steps=1, long_side=32,
                          dtype="float32")  # fmt: skip
    assert method.moment_scale is None and method.pipeline.transformer.dtype == torch.float32
    code, _, err = run("eval", "bench", "copy-input", "--scenes", bench_root, "--out",
                       tmp_path / "p", "--split", "nope")  # fmt: skip
    assert code == 2 and "no split 'nope'" in err
