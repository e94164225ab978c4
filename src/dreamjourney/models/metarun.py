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
then answered from that run (`memoize_blocks`): same class, same parameter shapes, same input
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


def _processor(model: str) -> Any:
    """The published image processor settings of a depth or captioning model."""
    if model.startswith("depth-anything/"):
        from transformers import DPTImageProcessor

        return DPTImageProcessor(
            size={"height": 518, "width": 518},
            keep_aspect_ratio=True,
            ensure_multiple_of=14,
            do_pad=False,
            resample=3,  # bicubic
        )
    from transformers import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor()


_QWEN_MARKERS = {
    "<|image_pad|>": "image_token_id",
    "<|video_pad|>": "video_token_id",
    "<|vision_start|>": "vision_start_token_id",
    "<|vision_end|>": "vision_end_token_id",
}
"""Qwen's vision markers -> the config keys of their ids (the model finds images by them)."""


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


def meta_part(model: str, dtype: torch.dtype, component: str) -> Any:
    """A fresh scheduler (it keeps state), or the shared meta build of a component in the
    dtype a real load at `dtype` gives it."""
    if component == "scheduler":
        return realconfigs.build_component(model, component)
    pipeline = realconfigs.catalogue()[model].get("pipeline", "")
    return meta_component(model, component, component_dtype(pipeline, component, dtype))


def provide_meta_models(backends: Any, dtype: torch.dtype = torch.bfloat16) -> list[str]:
    """Put meta-device builds of every catalogued model the backends use into their store.

    Diffusion pipelines get their components in the dtypes a real load uses
    (`weights.component_dtype`). Returns the model ids provided.
    """
    from dreamjourney.models.tiny import qwen_tokenizer

    provided = []
    for role in ("depth", "completer", "animator", "captioner"):
        backend = getattr(backends, role)
        model = getattr(backend, "model_id", None)
        if model not in realconfigs.catalogue() or model in provided:
            continue
        entry = realconfigs.catalogue()[model]
        if "pipeline" in entry:
            pipe = realconfigs.build_pipeline(model, partial(meta_part, model, dtype))
            pipe.set_progress_bar_config(disable=True)
            backends.store.provide((entry["pipeline"], model), pipe)
        else:
            net = meta_part(model, dtype, "model")
            if role == "depth":
                backends.store.provide(("depth", model), (_processor(model), net))
            else:
                config = realconfigs.component_config(model, "model")
                ids = {marker: config[key] for marker, key in _QWEN_MARKERS.items()}
                parts = (qwen_tokenizer(special_ids=ids), _processor(model), net)
                backends.store.provide(("captioner", model), parts)
        provided.append(model)
    return provided


def memoize_blocks(model: torch.nn.Module, min_repeats: int = 8) -> int:
    """Answer repeated blocks from their first run; returns how many blocks were wrapped.

    A block is a child of an `nn.ModuleList` holding at least `min_repeats` modules of one
    class (a transformer's layers; a VAE's few up/down blocks are not). A call whose
    arguments are all tensors, numbers, strings, None or tuples of them is keyed by the
    block's structure (every submodule's class, plain attributes such as flags, and parameter
    shapes and dtypes) and the arguments' shapes, dtypes and values; a second call with the
    same key returns new meta tensors of the first call's output shapes without running.
    Other calls (a cache object, a list) always run.
    """
    memo: dict[Any, Any] = {}
    wrapped = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) < min_repeats:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        for block in module:
            memoize_calls(block, memo)
            wrapped += 1
    return wrapped


def memoize_calls(module: torch.nn.Module, memo: dict[Any, Any], *, state: bool = False) -> None:
    """Answer `module`'s calls from an earlier call with the same key (see `memoize_blocks`).

    state: lists in the arguments (a chunk loop's caches and counters) are keyed by their
    contents too, and a call answered from the memo writes into them what the first call left
    there (tensors of the same shapes, the same numbers). For the Wan VAE's encoder and decoder.
    """
    forward = module.forward
    block = _structure(module)

    def call(*args: Any, **kwargs: Any) -> Any:
        lists = [a for a in (*args, *kwargs.values()) if isinstance(a, list)] if state else []
        try:
            key = (block, _key(args, state), _key(tuple(sorted(kwargs.items())), state))
        except _Unkeyable:
            return forward(*args, **kwargs)
        if key in memo:
            out, after = memo[key]
            for target, contents in zip(lists, after, strict=True):
                target[:] = [_shaped_like(v) for v in contents]
            return _shaped_like(out)
        out = forward(*args, **kwargs)
        try:
            _key(out, False)
        except _Unkeyable:
            return out
        if all(t.is_meta for t in tree_flatten((out, lists))[0] if isinstance(t, Tensor)):
            memo[key] = (out, [list(target) for target in lists])
        return out

    module.forward = call


def _structure(module: torch.nn.Module) -> Any:
    """What decides a module's output shapes besides its inputs: classes, flags, parameters."""
    plain = (bool, int, float, str, type(None))
    return tuple(
        (
            name,
            type(sub).__name__,
            tuple(sorted((k, v) for k, v in vars(sub).items() if isinstance(v, plain))),
            tuple((n, tuple(p.shape), p.dtype) for n, p in sub.named_parameters(recurse=False)),
        )
        for name, sub in module.named_modules()
    )


class _Unkeyable(Exception):
    pass


def _key(x: Any, state: bool) -> Any:
    if isinstance(x, Tensor):  # strides of size-1 dimensions never matter
        stride = tuple(s if n > 1 else 0 for n, s in zip(x.shape, x.stride(), strict=True))
        return ("tensor", tuple(x.shape), stride, x.dtype, x.device.type)
    if x is None or isinstance(x, (bool, int, float, str, torch.dtype)):
        return x
    if isinstance(x, tuple) or (state and isinstance(x, list)):
        return (type(x).__name__, *(_key(v, state) for v in x))
    raise _Unkeyable


def _shaped_like(x: Any) -> Any:
    if isinstance(x, Tensor):
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    if isinstance(x, tuple):
        return tuple(_shaped_like(v) for v in x)
    return x
