"""Run a preset's backends through their calls with the real models' configs, on torch's meta device.

The models are built from their published configs (`realconfigs`) on the meta device: every
tensor has a shape and a dtype but no data, so a 14B transformer runs a call at its native size
in no memory, and a shape, dtype or config error raises where it would on a GPU.

What the meta device cannot do is give a tensor's value back to Python. Small tensors that
come from the CPU (token ids, masks, image grids, timesteps) keep their values: `MetaAnswers`
replays every op whose inputs all have known values on CPU copies (up to `KNOWN_MAX` elements).
Reads of any other meta tensor get a fixed answer (`ANSWERS`) and are recorded; the code paths
they decide run with real numbers in the tiny-model tests. `torch.nonzero` (and boolean-mask
indexing) of an unknown tensor assumes every element is non-zero, torch's own meta rule.

Speed: meta kernels cost about a millisecond each, so repeated blocks (the 40 layers of a
transformer, called twice per step for guidance) run once per distinct input signature and are
then answered from that run (`memoize.memoize_blocks`): same class, same parameter shapes, same input
shapes -> same output shapes.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from dreamjourney.models import realconfigs
from dreamjourney.models.memoize import memoize_blocks, memoize_calls
from dreamjourney.models.weights import component_dtype

ANSWERS: dict[str, Callable[[Tensor], Any]] = {
    "__bool__": lambda t: True,
    "item": lambda t: 0.0 if t.is_floating_point() else 0,
    "__float__": lambda t: 0.0,
    "__int__": lambda t: 0,
    "__index__": lambda t: 0,
    "tolist": lambda t: torch.zeros(t.shape, dtype=t.dtype).tolist(),
    "cpu": lambda t: torch.zeros((), dtype=t.dtype).expand(t.shape),
    "numpy": lambda t: torch.zeros((), dtype=t.dtype).expand(t.shape).numpy(),
}
"""Reads of a meta tensor's value -> the fixed answer: conditions are true, numbers zero, and a
copy to the CPU is zeros of the right shape (an expanded scalar: no memory)."""


KNOWN_MAX = 1 << 16
"""Meta tensors up to this many elements whose inputs have known values keep theirs."""


@dataclass
class MetaAnswers(TorchFunctionMode):
    """Keeps the values of small meta tensors and answers reads of the others (`ANSWERS`).

    answered: `"op at file:line"` of the caller -> how many times a fixed answer was given.
    """

    answered: dict[str, int] = field(default_factory=dict)
    known: WeakIdKeyDictionary = field(default_factory=WeakIdKeyDictionary)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "to" and args and _to_cpu(args[1:], kwargs):
            name = "cpu"
        tensor = args[0] if args else None
        if isinstance(tensor, Tensor) and tensor.device.type == "meta" and name in ANSWERS:
            if tensor in self.known:
                value = self.known[tensor]
                return value.clone() if name == "cpu" else getattr(value, name)()
            where = f"{name} at {_caller()}"
            self.answered[where] = self.answered.get(where, 0) + 1
            return ANSWERS[name](tensor)
        try:
            out, failed = func(*args, **kwargs), None
        except Exception as exc:  # e.g. an output shape that depends on values
            out, failed = None, exc
        if failed is not None or _small(out):
            replayed = self._replay(func, args, kwargs)
            if replayed is not None:
                if failed is not None:
                    out = tree_map(lambda v: v.to("meta") if isinstance(v, Tensor) else v, replayed)
                    failed = None
                self._remember(out, replayed, args)
        if failed is not None:
            raise failed
        return out

    def _replay(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """`func` on CPU copies when every meta input has a known value, else None."""
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
        if any(t.is_meta and t not in self.known for t in inputs):
            return None

        def to_cpu(x: Any) -> Any:
            if isinstance(x, Tensor) and x.is_meta:
                return self.known[x]
            if isinstance(x, torch.device) and x.type == "meta":
                return torch.device("cpu")
            return "cpu" if isinstance(x, str) and x == "meta" else x

        try:
            return func(*tree_map(to_cpu, args), **tree_map(to_cpu, kwargs))
        except Exception:  # what the CPU cannot replay stays unknown
            return None

    def _remember(self, out: Any, replayed: Any, args: Any) -> None:
        cpu_inputs = [t for t in tree_flatten(args)[0] if isinstance(t, Tensor) and not t.is_meta]
        for meta, value in zip(tree_flatten(out)[0], tree_flatten(replayed)[0], strict=False):
            if isinstance(meta, Tensor) and meta.is_meta and isinstance(value, Tensor):
                aliased = any(value is t for t in cpu_inputs)
                self.known[meta] = value.clone() if aliased else value


def _small(out: Any) -> bool:
    """Whether `out` holds meta tensors, none larger than `KNOWN_MAX` elements."""
    metas = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor) and t.is_meta]
    return bool(metas) and all(t.numel() <= KNOWN_MAX for t in metas)


def _caller() -> str:
    """`file:line` of the innermost frame outside torch and this module."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = frame.filename.replace("\\", "/")
        if "/torch/" not in path and not path.endswith("/metarun.py"):
            return f"{path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


def _to_cpu(args: Any, kwargs: dict[str, Any]) -> bool:
    targets = [*args, kwargs.get("device")]
    return any(
        isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu" for a in targets
    )


@contextmanager
def meta_mode() -> Iterator[MetaAnswers]:
    """Inside: meta tensors' values read as `ANSWERS`; yields the record of what was answered."""
    from torch.fx.experimental import _config as fx_config

    mode = MetaAnswers()
    with fx_config.patch(meta_nonzero_assume_all_nonzero=True), mode:  # type: ignore[attr-defined]
        yield mode


@cache
def meta_component(model: str, component: str, dtype: torch.dtype | None = None) -> Any:
    """`realconfigs.build_component` on the meta device with its repeated blocks memoized;
    built once per process (the meta checks of several presets share them)."""
    module = realconfigs.build_component(model, component, device="meta", dtype=dtype)
    memoize_blocks(module)
    if type(module).__name__ == "AutoencoderKLWan":
        chunks: dict[Any, Any] = {}
        for part in (module.encoder, module.decoder):
            memoize_calls(part, chunks, state=True)
    return module


def meta_part(model: str, component: str, dtype: torch.dtype) -> Any:
    """A fresh scheduler (it keeps state), or the shared meta build of a component in the
    dtype a real load at `dtype` gives it."""
    if component == "scheduler":
        return realconfigs.build_component(model, component)
    pipeline = realconfigs.catalogue()[model].get("pipeline", "")
    return meta_component(model, component, component_dtype(pipeline, component, dtype))


def provide_meta_models(backends: Any, dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """`realconfigs.provide_models` with meta builds (`meta_part`): nothing to place."""
    return realconfigs.provide_models(backends, partial(meta_part, dtype=dtype))
