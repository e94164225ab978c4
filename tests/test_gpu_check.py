"""`benchmarks/gpu_check.py` works: its `--tiny` run on the CPU (the GPU run is the same code)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch, tmp_path):
    monkeypatch.setenv("DREAMJOURNEY_TINY_DIR", str(tmp_path / "tiny"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_measures_every_stage_of_a_segment(gpu_check, tmp_path, capsys):
    figures = tmp_path / "figures.json"
    args = [
        "--tiny",
        "--presets",
        "easyanimate",
        "--out",
        str(tmp_path / "runs"),
        "--json",
        str(figures),
    ]
    assert gpu_check.main(args) == 0
    (result,) = json.loads(figures.read_text())
    assert (result["preset"], result["offload"]) == ("easyanimate", "none")
    stages = result["stages"]
    assert set(stages) == {"depth", "completer", "captioner", "animator"}
    assert stages["completer"]["calls"] == stages["animator"]["calls"] == 1
    assert all(row["seconds"] > 0 for row in stages.values())
    assert (tmp_path / "runs" / "easyanimate-none" / "video.mp4").is_file()
    table = capsys.readouterr().out
    assert "easyanimate  none       animator       1" in table


def test_without_a_gpu_it_says_so(gpu_check, capsys):
    if gpu_check.torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert gpu_check.main(["--presets", "wan"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
