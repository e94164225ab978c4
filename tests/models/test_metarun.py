"""Running on the meta device: known values, answered reads, memoized blocks."""

from __future__ import annotations

import pytest
import torch

from dreamjourney.models.memoize import memoize_blocks, memoize_calls
from dreamjourney.models.metarun import meta_mode


def test_small_tensors_from_the_cpu_keep_their_values():
    with meta_mode() as mode:
        ids = torch.tensor([3, 1, 2]).to("meta")
        doubled = ids * 2
        assert doubled.is_meta and doubled.tolist() == [6, 2, 4]
        assert bool((ids == 1).any()) and not bool((ids == 7).any())
        # an op whose output shape depends on values runs on the CPU copy
        repeated = torch.repeat_interleave(torch.arange(3, device="meta"), ids)
        assert (
            repeated.is_meta and repeated.shape == (6,) and repeated.tolist() == [0] * 3 + [1, 2, 2]
        )
        steps = torch.linspace(1, 0, 5, device="meta")
        assert steps[1].item() == pytest.approx(0.75)
    assert mode.answered == {}


def test_reads_of_unknown_values_are_answered_and_recorded():
    weight = torch.empty(4, 4, device="meta")
    with meta_mode() as mode:
        x = torch.ones(2, 4).to("meta") @ weight  # a product with a weight: no value
        assert bool(x.sum() > 0) is True
        assert x.sum().item() == 0.0
        home = x.cpu()
        assert home.shape == (2, 4) and home.device.type == "cpu" and not bool(home.any())
    assert sorted(k.split(" at ")[0] for k in mode.answered) == ["__bool__", "cpu", "item"]
    assert all(k.split(" at ")[1].startswith("models/test_metarun.py:") for k in mode.answered)


class _Block(torch.nn.Module):
    runs = 0

    def __init__(self, flag: bool = False) -> None:
        super().__init__()
        self.flag = flag
        self.proj = torch.nn.Linear(4, 4, device="meta")

    def forward(
        self, x: torch.Tensor, scale: float = 1.0, extra: list | None = None
    ) -> torch.Tensor:
        type(self).runs += 1
        out = self.proj(x) * scale
        return torch.cat([out, out], dim=1) if self.flag else out


def test_repeated_blocks_run_once_per_structure_and_input_signature():
    _Block.runs = 0
    blocks = torch.nn.ModuleList([_Block() for _ in range(7)] + [_Block(flag=True)])
    assert memoize_blocks(torch.nn.Sequential(blocks)) == 8
    x = torch.empty(2, 4, device="meta")
    outs = [block(x) for block in blocks]
    assert _Block.runs == 2  # the flagged block differs
    assert [tuple(o.shape) for o in outs] == [(2, 4)] * 7 + [(2, 8)]
    assert all(o is not outs[0] for o in outs[1:])
    blocks[0](torch.empty(3, 4, device="meta"))
    blocks[1](x, scale=2.0)
    assert _Block.runs == 4  # a new shape, a new argument value
    blocks[2](x, extra=[1.0])  # a list: cannot be keyed, always runs
    assert _Block.runs == 5
    assert memoize_blocks(torch.nn.Sequential(torch.nn.ModuleList([_Block()] * 4))) == 0


def test_a_memoized_chunk_loop_writes_back_its_state():
    class Chunk(torch.nn.Module):
        runs = 0

        def forward(self, x: torch.Tensor, cache: list, index: list) -> torch.Tensor:
            type(self).runs += 1
            previous = cache[0]
            cache[0] = (x if previous is None else torch.cat([previous, x], 1))[:, -2:]
            index[0] += 1
            return x if previous is None else torch.cat([previous, x], 1)

    chunk = Chunk()
    memoize_calls(chunk, {}, state=True)
    shapes = []
    for _ in range(2):  # two loops, each from a cleared cache
        cache = [None]
        for _ in range(4):
            index = [0]  # the Wan VAE resets its conv index before every chunk
            shapes.append(chunk(torch.empty(1, 3, device="meta"), cache, index).shape[1])
            assert index == [1]
        assert cache[0].shape == (1, 2)
    assert shapes == [3, 5, 5, 5] * 2
    assert Chunk.runs == 2  # empty cache, then two cached columns
