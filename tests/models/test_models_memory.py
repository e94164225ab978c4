"""Memory that holds: shared models, offload of every stage, and the computed memory table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dreamjourney.errors import InputError
from dreamjourney.models import memory, realconfigs
from dreamjourney.models.captioning import QwenVLCaptioner
from dreamjourney.models.memory import Part, preset_table, sequential_figure, stage_bytes
from dreamjourney.models.registry import build_backends
from dreamjourney.models.weights import ModelStore, folder_identity, resident

GIB = float(1 << 30)


def test_guided_completer_and_animator_of_one_model_share_one_pipeline(tiny_model):
    path = tiny_model("wan-i2v")
    config = {"completer": {"model": path, "dtype": "float32"}, "animator": {"model": path}}
    backends = build_backends("wan-guided", config=config)
    assert backends.completer._load().pipe is backends.animator._load()
    # their memory options were merged: the completer's dtype reaches the shared pipeline
    assert backends.animator.memory.dtype == "float32"


def test_shared_pipeline_refuses_two_dtypes(tiny_model):
    path = tiny_model("wan-i2v")
    config = {
        "completer": {"model": path, "dtype": "float32"},
        "animator": {"model": path, "dtype": "bfloat16"},
    }
    with pytest.raises(InputError, match=r"share this model.*same dtype"):
        build_backends("wan-guided", config=config)


def test_shared_pipeline_refuses_two_flow_shifts(tiny_model):
    path = tiny_model("wan-i2v")  # its one scheduler would take whichever role loads last
    config = {"completer": {"model": path, "flow_shift": 5.0}, "animator": {"model": path}}
    with pytest.raises(InputError, match=r"flow_shift 5.0 and 3.0; give them the same"):
        build_backends("wan-guided", config=config)
    config["animator"]["flow_shift"] = 5.0
    backends = build_backends("wan-guided", config=config)
    assert backends.completer._load().pipe.scheduler.config.flow_shift == 5.0


def test_pipelines_with_the_same_text_encoder_files_share_it(tiny_model, tmp_path):
    vace, i2v = Path(tiny_model("wan-vace")), Path(tiny_model("wan-i2v"))
    # the tiny builders make the same UMT5 weights (one seed, built first), as Wan's repos do
    assert folder_identity(vace / "text_encoder") == folder_identity(i2v / "text_encoder")
    config = {"completer": {"model": str(vace)}, "animator": {"model": str(i2v)}}
    backends = build_backends("tiny", config=config)
    assert backends.completer._load().text_encoder is backends.animator._load().text_encoder

    other = tmp_path / "wan-i2v-retrained"
    shutil.copytree(i2v, other)
    weights = other / "text_encoder" / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    config = {"completer": {"model": str(vace)}, "animator": {"model": str(other)}}
    backends = build_backends("tiny", config=config)
    assert backends.completer._load().text_encoder is not backends.animator._load().text_encoder


def test_offload_setting_reaches_every_stage():
    backends = build_backends("wan", config={"offload": "model"})
    assert backends.completer.memory.cpu_offload and backends.animator.memory.cpu_offload
    assert backends.depth.offload and backends.captioner.offload
    seq = build_backends("cogvideox", config={"offload": "sequential"})
    assert seq.completer.memory.sequential_offload and seq.animator.memory.sequential_offload
    # a role's own option wins over the setting
    own = build_backends("wan", config={"offload": "model", "depth": {"offload": False}})
    assert not own.depth.offload and own.captioner.offload
    with pytest.raises(InputError, match="unknown offload 'all'"):
        build_backends("wan", config={"offload": "all"})


class _Spy(torch.nn.Linear):
    def __init__(self) -> None:
        super().__init__(2, 2)
        self.moves: list[str] = []

    def to(self, *args, **kwargs):  # type: ignore[override]
        self.moves.append(str(args[0]))
        return self


def test_resident_moves_a_model_for_the_call_only_when_offloaded():
    spy = _Spy()
    with resident(spy, "cuda", offload=True):
        assert spy.moves == ["cuda"]
    assert spy.moves == ["cuda", "cpu"]
    spy.moves.clear()
    with pytest.raises(RuntimeError), resident(spy, "cuda", offload=True):
        raise RuntimeError("a failing call still gives the memory back")
    assert spy.moves == ["cuda", "cpu"]
    spy.moves.clear()
    with resident(spy, "cuda", offload=False):
        pass
    assert spy.moves == []


def test_captioner_offloads_around_each_answer_and_can_unload(tiny_model):
    path = tiny_model("qwen2.5-vl")
    store = ModelStore()
    captioner = QwenVLCaptioner(path, max_new_tokens=2, offload=True, unload=True, store=store)
    image = torch.rand(3, 56, 56)
    first = captioner.answer(image)
    assert ("captioner", path) not in store._items  # unloaded after the answer
    assert captioner.answer(image) == first  # loaded again, same greedy answer
    kept = QwenVLCaptioner(path, max_new_tokens=2, offload=True, store=store)
    model = kept._load()[2]
    moves: list[str] = []
    original = model.to
    model.to = lambda device, *a, **k: moves.append(str(device)) or original(device, *a, **k)
    assert kept.answer(image) == first
    assert moves == ["cpu", "cpu"]  # to the (cpu) device for the call, then back
    assert store._items[("captioner", path)][2] is model  # kept between answers


def test_guided_completer_frees_offloaded_models_after_each_clip(tiny_model, masked_clip):
    backends = build_backends(
        "wan-guided",
        config={"completer": {"model": tiny_model("wan-i2v"), "num_inference_steps": 2}},
    )
    backends.completer.height = backends.completer.width = None  # the clip's size, not 832x480
    pipe = backends.completer._load().pipe
    calls: list[int] = []
    pipe.maybe_free_model_hooks = lambda: calls.append(1)
    backends.completer.complete(*masked_clip, prompt="x")
    assert calls == [1]


def test_sequential_figure_counts_a_module_with_the_modules_around_it():
    inner = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 2))  # 110, 22
    outer = torch.nn.Module()
    outer.scale = torch.nn.Parameter(torch.ones(7))  # held while any child runs
    outer.block = inner
    outer.head = torch.nn.Embedding(30, 4)  # 120
    assert sequential_figure(outer) == 7 + 120


def test_stage_bytes_per_offload_setting():
    parts = [Part("m/transformer", 100, 10), Part("m/vae", 8, 2), Part("m/text_encoder", 40, 30)]
    assert stage_bytes(parts, "none", diffusion=True) == 148
    assert stage_bytes(parts, "model", diffusion=True) == 100 + 8  # the VAE waits for decoding
    assert stage_bytes(parts, "sequential", diffusion=True) == 30
    assert stage_bytes([Part("captioner/model", 50, 5)], "sequential", diffusion=False) == 50


def _gib(model: str, component: str, dtype_bytes: int) -> float:
    return memory.parameters()[model][component]["parameters"] * dtype_bytes / GIB


def test_wan_table_from_the_parameter_counts():
    i2v, vace = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    qwen, depth = "Qwen/Qwen2.5-VL-7B-Instruct", "depth-anything/Depth-Anything-V2-Large-hf"
    table = preset_table("wan")
    everything = (
        _gib(depth, "model", 2)
        + _gib(vace, "transformer", 2)
        + _gib(vace, "vae", 4)  # float32 VAE
        + _gib(vace, "text_encoder", 2)  # one UMT5 for both pipelines
        + _gib(qwen, "model", 2)
        + _gib(i2v, "transformer", 2)
        + _gib(i2v, "vae", 4)
        + _gib(i2v, "image_encoder", 4)  # float32 CLIP
    )
    assert table["none"]["peak"] == pytest.approx(everything)
    assert table["model"]["animator"] == pytest.approx(
        _gib(i2v, "transformer", 2) + _gib(i2v, "vae", 4)
    )
    assert table["sequential"]["peak"] == pytest.approx(_gib(qwen, "model", 2))
    # sequential offload of the 14B model holds one 5120 x 13824 feed-forward layer at a time
    assert table["sequential"]["animator"] < 2.5


def test_every_real_preset_fits_a_24_gib_card_with_some_offload():
    for preset in ("wan", "wan-guided", "cogvideox", "easyanimate"):
        assert memory.fitting_setting(preset_table(preset)) is not None, preset
        models = [s["model"] for s in build_backends(preset).info["roles"].values() if s]
        assert all(m in realconfigs.catalogue() for m in models), preset


def test_models_command_shows_the_memory_table():
    from typer.testing import CliRunner

    from dreamjourney.cli import app

    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    fit: dict[tuple[str, str], str] = {}
    preset = ""
    for line in result.output.splitlines():
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if len(cells) == 8 and cells[1] in ("none", "model", "sequential"):
            preset = cells[0] or preset
            fit[preset, cells[1]] = cells[-1]
    assert len(fit) == 12  # 4 real presets x 3 settings
    assert {key for key, value in fit.items() if value == "yes"} == {
        ("wan", "sequential"),
        ("wan-guided", "sequential"),
        ("cogvideox", "model"),
        ("cogvideox", "sequential"),
        ("easyanimate", "sequential"),
    }
    wan = next(
        line
        for line in result.output.splitlines()
        if line.startswith("│ wan ") and "│ none" in line
    )
    assert f"{preset_table('wan')['none']['peak']:.1f}" in wan


def test_readme_memory_table_is_the_computed_one():
    from dreamjourney.models.registry import PRESETS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = memory.markdown_table(list(PRESETS))
    assert table.count("\n") == 13 and table in readme  # header, rule, 4 presets x 3 settings
