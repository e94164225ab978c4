"""Registry, presets, configs, memory options and the `dreamjourney models` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamjourney.errors import InputError
from dreamjourney.models.animation import I2VAnimator
from dreamjourney.models.captioning import CaptionWarning, OpenAICaptioner, QwenVLCaptioner
from dreamjourney.models.classical import ClassicalCompleter
from dreamjourney.models.depth import DepthAnythingDepth
from dreamjourney.models.guided import GuidedCompleter
from dreamjourney.models.registry import (
    BACKENDS,
    NATIVE,
    PRESETS,
    build_backends,
    load_config,
    resolve_specs,
)
from dreamjourney.models.vace import VaceCompleter
from dreamjourney.models.weights import MemoryOptions, load_pipeline

REPO = Path(__file__).resolve().parents[2]


def test_presets_build_without_loading_anything():
    for name, specs in PRESETS.items():
        backends = build_backends(name)
        json.dumps(backends.info)
        assert backends.info["preset"] == name and backends.info["roles"] == specs
        assert backends.is_noise == (name == "tiny")
        for role, spec in specs.items():
            backend = getattr(backends, role)
            if spec is None:
                assert backend is None
                continue
            entry = BACKENDS[role][spec["name"]]
            assert type(backend) is entry.cls(), (name, role)
            assert getattr(backend, "model_id", None) == spec.get("model"), (name, role)
    # one random-weight model makes the whole output noise
    assert build_backends("wan", config={"depth": {"model": "tiny:depth-anything"}}).is_noise
    offline = build_backends()
    assert offline.animator is None and isinstance(offline.completer, ClassicalCompleter)
    offline.check_weights()  # needs none
    cog = build_backends("cogvideox")
    assert isinstance(cog.completer, GuidedCompleter) and cog.completer.family == "cogvideox-i2v"


def test_wan_presets_run_the_models_in_their_native_regime():
    for name in ("wan", "wan-guided"):
        backends = build_backends(name)
        for model in (backends.completer, backends.animator):
            # Wan2.1 480P checkpoints: 832x480, their scheduler's shift 3.0 (5.0 is for 720P)
            assert (model.height, model.width, model.flow_shift) == (480, 832, 3.0)
        assert NATIVE[name].size == (832, 480) and NATIVE[name].clip_frames == 81
    # a guided segment fills one clip: start view + frames + 4 + 4 padding
    assert NATIVE["wan-guided"].frames + 1 + 2 * 4 == 81 == NATIVE["wan"].frames
    assert NATIVE["cogvideox"].frames + 1 + 2 * 4 == 49 == NATIVE["cogvideox"].motion_frames + 1


def test_config_overrides():
    config = {
        "preset": "wan",
        "dtype": "bf16",
        "completer": {"model": "/models/vace", "cpu_offload": True, "num_inference_steps": 12},
        "captioner": {"name": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
        "animator": "none",
    }
    backends = build_backends("offline", config=config)
    completer = backends.completer
    assert isinstance(completer, VaceCompleter)
    assert completer.model_id == "/models/vace" and completer.num_inference_steps == 12
    assert completer.memory == MemoryOptions(dtype="bfloat16", cpu_offload=True)
    assert (
        isinstance(backends.captioner, OpenAICaptioner)
        and backends.captioner.base_url == "http://127.0.0.1:1/v1"
    )
    assert backends.animator is None
    assert backends.info["roles"]["completer"]["model"] == "/models/vace"
    assert backends.info["dtype"] == "bfloat16"
    # same name: options merge; another name: the spec is replaced
    assert resolve_specs("wan", {"depth": {"model": "/d"}})["depth"] == {
        "name": "depth-anything-v2",
        "model": "/d",
    }
    assert resolve_specs("wan", {"depth": "heuristic"})["depth"] == {"name": "heuristic"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"depth": "midas"}, "unknown backend 'midas'"),
        ({"completer": {"name": "guided", "steps": 3}}, "unknown option"),
        ({"completer": {"name": "vace", "dtype": "float8"}}, "unknown dtype"),
        ({"depth": {"name": "file"}}, "needs a path"),
        ({"captioner": None}, "only the animator"),
        ({"depth": 3}, "expected a backend name"),
    ],
)
def test_bad_configs_are_input_errors(config, message):
    with pytest.raises(InputError, match=message):
        build_backends(config=config)


def test_load_config_json_and_toml(tmp_path):
    (tmp_path / "c.toml").write_text(
        'preset = "wan"\n[completer]\nmodel = "/m"\ncpu_offload = true\n'
    )
    (tmp_path / "c.json").write_text(
        json.dumps({"preset": "wan", "completer": {"model": "/m", "cpu_offload": True}})
    )
    assert load_config(tmp_path / "c.toml") == load_config(tmp_path / "c.json")
    (tmp_path / "bad.toml").write_text("preset = ")
    (tmp_path / "bad.json").write_text("[1, 2]")
    for name, message in [
        ("bad.toml", "invalid TOML"),
        ("bad.json", "top level"),
        ("none.json", "not found"),
    ]:
        with pytest.raises(InputError, match=message):
            load_config(tmp_path / name)


def test_memory_options_on_a_tiny_pipeline(tiny_model):
    from diffusers import WanVACEPipeline

    path = tiny_model("wan-vace")
    memory = MemoryOptions(dtype="bfloat16", vae_tiling=True, vae_slicing=True)
    pipe = load_pipeline(WanVACEPipeline, path, role="completer", device="cpu", memory=memory)
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    with pytest.raises(InputError, match="accelerator"):
        load_pipeline(
            WanVACEPipeline,
            path,
            role="completer",
            device="cpu",
            memory=MemoryOptions(cpu_offload=True),
        )


def test_tiny_preset_runs_every_role(tiny_root):
    backends = build_backends("tiny")
    assert backends.is_noise
    # the real architectures, not an offline stand-in that also keeps the known pixels
    assert isinstance(backends.depth, DepthAnythingDepth)
    assert isinstance(backends.completer, VaceCompleter)
    assert isinstance(backends.animator, I2VAnimator) and backends.animator.name == "wan-i2v"
    assert isinstance(backends.captioner, QwenVLCaptioner)
    image = torch.rand(3, 32, 32)
    assert backends.depth.estimate(image).depth.shape == (32, 32)
    frames, masks = torch.rand(5, 3, 32, 32), torch.rand(5, 32, 32) > 0.3
    out = backends.completer.complete(frames, masks)
    assert torch.equal(out[masks[:, None].expand_as(out)], frames[masks[:, None].expand_as(frames)])
    assert backends.animator is not None and backends.animator.animate(image, "x", 3).shape == (
        3,
        3,
        32,
        32,
    )
    with pytest.warns(CaptionWarning):  # random weights answer nonsense
        assert backends.captioner.caption(image).fallback
    assert (tiny_root / "wan-vace" / "model_index.json").is_file()


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "COLUMNS": "200",
        "HF_HUB_CACHE": str(home / "hub"),
    }
    return subprocess.run(
        [sys.executable, "-m", "dreamjourney", *args], capture_output=True, text=True, env=env
    )


def test_models_command(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "cfg.json").write_text(
        json.dumps({"preset": "wan", "depth": {"model": str(tmp_path / "local")}})
    )
    result = _cli("models", "--config", str(tmp_path / "cfg.json"), home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for word in (
        "completer",
        "guided",
        "classical",
        "offline",
        "tiny",
        "cogvideox",
        "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    ):
        assert word in out
    # the native regime of each real preset, and the journey flags that run it
    assert "832x480" in out and "--size 832x480 --frames 72 --motion-frames 80" in out
    assert "720x480" in out and "--size 720x480 --frames 40 --motion-frames 48" in out
    lines = [line for line in out.splitlines() if str(tmp_path / "local") in line]
    assert any("yes" in line for line in lines)
    assert any("Qwen/Qwen2.5-VL-7B-Instruct" in line and "no" in line for line in out.splitlines())
    bad = _cli("models", "--config", str(tmp_path / "missing.toml"), home=tmp_path)
    assert bad.returncode == 2 and "missing.toml" in bad.stderr and "Traceback" not in bad.stderr


def test_journey_defaults_to_the_presets_native_clip_and_checks_it_first(
    tiny_model, tmp_path, monkeypatch, capsys
):
    from PIL import Image

    from dreamjourney.cli import main

    Image.new("RGB", (40, 30), (90, 140, 60)).save(tmp_path / "photo.png")
    # the cogvideox preset with the tiny CogVideoX (17 frames) in place of CogVideoX-5b-I2V
    tiny = tiny_model("cogvideox-i2v")
    config = {
        "preset": "cogvideox",
        "depth": "heuristic",
        "captioner": "template",
        "completer": {"model": tiny},
        "animator": {"model": tiny},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    args = ["journey", str(tmp_path / "photo.png"), "--out", str(tmp_path / "run")]
    args += ["--config", str(tmp_path / "cfg.json")]
    monkeypatch.setattr(sys, "argv", ["dreamjourney", *args])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    # no --frames: the preset's native 40 frames per segment, which the tiny model cannot hold;
    # refused before anything is written
    assert info.value.code == 2 and "Traceback" not in err
    assert "--frames" in err and "at most 8 here, not 40" in err
    assert not (tmp_path / "run").exists()
