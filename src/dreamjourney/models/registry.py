"""Build every role's backend from a name and options; presets name a full set.

A role spec is a dict `{"name": <backend>, **options}` (or a bare name). A config (a dict, or a
JSON/TOML file read by `load_config`) may name a `preset` and override any role:

```toml
preset = "wan"
dtype = "bfloat16"
device = "cuda"
offload = "model"        # every stage: "none", "model" or "sequential" (see `OFFLOAD`)

[completer]
model = "/models/Wan2.1-VACE-1.3B-diffusers"   # a local directory instead of the hub id
cpu_offload = true

[captioner]
name = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "qwen2.5vl:7b"
```

An override with the preset's backend name (or none) updates its options; another name
replaces the spec. `animator = "none"` switches stage II off. Nothing is loaded here: each
backend loads its weights on first use (`Backends.check_weights()` finds them all up front).
The backends of one set share a `ModelStore`: a model two roles name is loaded once (with
the memory options of both merged), and pipelines with the same text encoder share it.

Options that hold credentials (`api_key`, and any named with `secret`, `password` or a `token`
word, see `is_secret`) reach their backend and nothing else: they are left out of
`Backends.info`, so no manifest, run identity, log or error made from it carries them, and a
run resumes after its key changes.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dreamjourney.errors import InputError
from dreamjourney.models.protocols import Animator, Captioner, Completer, DepthEstimator
from dreamjourney.models.weights import TINY_PREFIX, MemoryOptions, ModelStore, parse_dtype

ROLES = ("depth", "completer", "animator", "captioner")

OFFLOAD: dict[str, dict[str, dict[str, bool]]] = {
    "none": {"diffusion": {}, "torch": {}},
    "model": {"diffusion": {"cpu_offload": True}, "torch": {"offload": True}},
    "sequential": {"diffusion": {"sequential_offload": True}, "torch": {"offload": True}},
}
"""The config's `offload` setting -> the options it gives every backend of each kind (a role's
own options win): `model` keeps every model on the CPU except while it runs (a diffusion
pipeline one sub-model at a time), `sequential` moves a diffusion pipeline's weights layer by
layer (slowest, least memory)."""

_Spec = dict[str, Any]
_SECRET = re.compile(r"api_?key|secret|password|passwd|(^|_)token(_|$)", re.IGNORECASE)


def is_secret(option: str) -> bool:
    """Whether a backend option holds a credential (`api_key`, `hf_token`, `client_secret`,
    `password`, ...; not `max_new_tokens`): it is never written anywhere."""
    return bool(_SECRET.search(option))


def public_spec(spec: _Spec) -> _Spec:
    """`spec` without its credentials (see `is_secret`), for manifests and messages."""
    return {k: v for k, v in spec.items() if not is_secret(k)}


@dataclass(frozen=True)
class BackendEntry:
    """How to build one backend.

    target: `module:Class` under `dreamjourney.models`, imported only when built.
    kind: `"diffusion"` (takes device + `MemoryOptions`), `"torch"` (takes device + dtype)
        or `"plain"` (neither).
    fixed: constructor arguments the name implies (e.g. the pipeline family).
    weights: whether it reads local weights.
    """

    target: str
    kind: str
    fixed: tuple[tuple[str, Any], ...] = ()
    weights: bool = True

    def cls(self) -> Any:
        import importlib

        module, name = self.target.split(":")
        return getattr(importlib.import_module(f"dreamjourney.models.{module}"), name)


BACKENDS: dict[str, dict[str, BackendEntry]] = {
    "depth": {
        "depth-anything-v2": BackendEntry("depth:DepthAnythingDepth", "torch"),
        "depth-pro": BackendEntry("depth:DepthProDepth", "torch"),
        "heuristic": BackendEntry("depth:HeuristicDepth", "plain", weights=False),
        "file": BackendEntry("depth:FileDepth", "plain", weights=False),
    },
    "completer": {
        "vace": BackendEntry("vace:VaceCompleter", "diffusion"),
        "guided": BackendEntry("guided:GuidedCompleter", "diffusion"),
        "easyanimate": BackendEntry("easyanimate:EasyAnimateCompleter", "diffusion"),
        "classical": BackendEntry("classical:ClassicalCompleter", "plain", weights=False),
    },
    "animator": {
        **{
            name: BackendEntry("animation:I2VAnimator", "diffusion", (("family", name),))
            for name in ("wan-i2v", "cogvideox-i2v", "ltx-i2v")
        },
        "easyanimate-i2v": BackendEntry("easyanimate:EasyAnimateAnimator", "diffusion"),
    },
    "captioner": {
        "qwen2.5-vl": BackendEntry("captioning:QwenVLCaptioner", "torch"),
        "openai": BackendEntry("captioning:OpenAICaptioner", "plain", weights=False),
        "template": BackendEntry("captioning:TemplateCaptioner", "plain", weights=False),
    },
}
"""role -> backend name -> how to build it."""

_TINY_STEPS = {"num_inference_steps": 2}
# Wan 2.1 480P checkpoints: trained at 832x480; their scheduler's shift is 3.0 (5.0 for 720P)
_WAN_480P = {"height": 480, "width": 832, "flow_shift": 3.0}
PRESETS: dict[str, dict[str, _Spec | None]] = {
    "offline": {
        "depth": {"name": "heuristic"},
        "completer": {"name": "classical"},
        "animator": None,
        "captioner": {"name": "template"},
    },
    "tiny": {
        "depth": {"name": "depth-anything-v2", "model": "tiny:depth-anything"},
        "completer": {
            "name": "vace",
            "model": "tiny:wan-vace",
            **_TINY_STEPS,
            "guidance_scale": 1.0,
        },
        "animator": {
            "name": "wan-i2v",
            "model": "tiny:wan-i2v",
            **_TINY_STEPS,
            "guidance_scale": 1.0,
        },
        "captioner": {"name": "qwen2.5-vl", "model": "tiny:qwen2.5-vl", "max_new_tokens": 24},
    },
    "wan": {
        "depth": {
            "name": "depth-anything-v2",
            "model": "depth-anything/Depth-Anything-V2-Large-hf",
        },
        "completer": {"name": "vace", "model": "Wan-AI/Wan2.1-VACE-1.3B-diffusers", **_WAN_480P},
        "animator": {
            "name": "wan-i2v",
            "model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            **_WAN_480P,
        },
        "captioner": {"name": "qwen2.5-vl", "model": "Qwen/Qwen2.5-VL-7B-Instruct"},
    },
    "wan-guided": {
        "depth": {
            "name": "depth-anything-v2",
            "model": "depth-anything/Depth-Anything-V2-Large-hf",
        },
        "completer": {
            "name": "guided",
            "family": "wan-i2v",
            "model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            **_WAN_480P,
        },
        "animator": {
            "name": "wan-i2v",
            "model": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
            **_WAN_480P,
        },
        "captioner": {"name": "qwen2.5-vl", "model": "Qwen/Qwen2.5-VL-3B-Instruct"},
    },
    "cogvideox": {
        "depth": {
            "name": "depth-anything-v2",
            "model": "depth-anything/Depth-Anything-V2-Large-hf",
        },
        "completer": {
            "name": "guided",
            "family": "cogvideox-i2v",
            "model": "THUDM/CogVideoX-5b-I2V",
        },
        "animator": {"name": "cogvideox-i2v", "model": "THUDM/CogVideoX-5b-I2V"},
        "captioner": {"name": "qwen2.5-vl", "model": "Qwen/Qwen2.5-VL-7B-Instruct"},
    },
    "easyanimate": {
        "depth": {
            "name": "depth-anything-v2",
            "model": "depth-anything/Depth-Anything-V2-Large-hf",
        },
        "completer": {
            "name": "easyanimate",
            "model": "alibaba-pai/EasyAnimateV5.1-12b-zh-InP-diffusers",
        },
        "animator": {
            "name": "easyanimate-i2v",
            "model": "alibaba-pai/EasyAnimateV5.1-12b-zh-InP-diffusers",
        },
        "captioner": {"name": "qwen2.5-vl", "model": "Qwen/Qwen2.5-VL-7B-Instruct"},
    },
}
"""Named sets of role specs. `offline` needs no weights; `tiny` is random weights (noise)."""


@dataclass(frozen=True)
class NativeRegime:
    """What a real preset's video models were trained for, and the journey settings that run
    them there (the `journey` command's defaults for the preset).

    size: `(width, height)` of the models' clips and of the journey's frames.
    clip_frames: frames per model clip.
    frames: stage I frames per segment that fill one completer clip (the guided completer adds
        the start view and one latent frame of padding at each end).
    motion_frames: stage II frames per segment that fill one animator clip (it also makes the
        still first frame).
    note: where these come from.
    """

    size: tuple[int, int]
    clip_frames: int
    frames: int
    motion_frames: int
    note: str


NATIVE: dict[str, NativeRegime] = {
    "wan": NativeRegime((832, 480), 81, 81, 80, "Wan2.1 480P checkpoints"),
    "wan-guided": NativeRegime((832, 480), 81, 72, 80, "Wan2.1 480P checkpoints"),
    "cogvideox": NativeRegime(
        (720, 480), 49, 40, 48, "fixed: learned positional embeddings of CogVideoX-5b-I2V"
    ),
    "easyanimate": NativeRegime(
        (672, 384), 49, 49, 48, "EasyAnimate V5.1 InP: its diffusers example's size and frames"
    ),
}
"""Preset -> its native regime (real-weight presets only)."""


@dataclass
class Backends:
    """One backend per role, plus a JSON-able description for run manifests.

    animator is None when stage II is off (the `offline` preset).
    """

    depth: DepthEstimator
    completer: Completer
    animator: Animator | None
    captioner: Captioner
    info: dict[str, Any] = field(default_factory=dict)
    store: ModelStore = field(default_factory=ModelStore)

    @property
    def is_noise(self) -> bool:
        """True when any backend runs random weights (the `tiny` preset): output is noise."""
        return bool(self.info.get("is_noise"))

    def check_weights(self) -> None:
        """Raise `MissingWeightsError` now for the first backend whose weights are missing."""
        for backend in (self.depth, self.completer, self.animator, self.captioner):
            check = getattr(backend, "check_weights", None)
            if check is not None:
                check()


def _spec(value: Any, role: str) -> _Spec:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return dict(value)
    raise InputError(
        f"expected a backend name or a table of options, got a {type(value).__name__}", field=role
    )


def _build(
    role: str, spec: _Spec, device: Any, dtype: torch.dtype | None, store: ModelStore
) -> Any:
    spec = dict(spec)
    name = spec.pop("name", None)
    table = BACKENDS[role]
    if name not in table:
        raise InputError(
            f"unknown backend {name!r}; known: {', '.join(table)}", field=f"{role}.name"
        )
    entry = table[name]
    cls = entry.cls()
    fixed = dict(entry.fixed)
    params = set(inspect.signature(cls).parameters) - set(fixed) - {"device", "memory", "store"}
    if entry.kind == "diffusion":
        params |= set(MemoryOptions.__dataclass_fields__)
    unknown = sorted(set(spec) - params)
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)} for backend {name!r}; known: {', '.join(sorted(params))}",
            field=role,
        )
    if name == "file" and "path" not in spec:
        raise InputError("the depth file backend needs a path", field="depth.path")
    if name == "file":
        rest = spec.get("rest", "heuristic")
        spec["rest"] = (
            None
            if rest in (None, "none")
            else _build("depth", _spec(rest, "depth"), device, dtype, store)
        )
    if entry.kind == "diffusion":
        memory = MemoryOptions.from_options(spec)
        if memory.dtype is None and dtype is not None:
            memory.dtype = str(dtype).replace("torch.", "")
        parse_dtype(memory.dtype, field=f"{role}.dtype")
        return cls(**fixed, device=device, memory=memory, store=store, **spec)
    if entry.kind == "torch":
        spec.setdefault("dtype", dtype)
        parse_dtype(spec["dtype"], field=f"{role}.dtype")
        return cls(**fixed, device=device, store=store, **spec)
    return cls(**fixed, **spec)


def resolve_specs(
    preset: str = "offline", config: dict[str, Any] | None = None
) -> dict[str, _Spec | None]:
    """The role specs of `preset` with `config`'s overrides applied (see the module docstring)."""
    config = dict(config or {})
    preset = config.pop("preset", preset)
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", field="preset")
    specs: dict[str, _Spec | None] = {
        r: (dict(s) if s is not None else None) for r, s in PRESETS[preset].items()
    }
    for key in ("device", "dtype", "offload"):
        config.pop(key, None)
    for role, value in config.items():
        if role not in ROLES:
            raise InputError(
                f"unknown key {role!r}; expected preset, device, dtype, offload or one of {', '.join(ROLES)}",
                field=role,
            )
        if value in (None, "none", False):
            if role != "animator":
                raise InputError("only the animator can be switched off", field=role)
            specs[role] = None
            continue
        override = _spec(value, role)
        base = specs[role]
        if base is None or override.get("name", base["name"]) != base["name"]:
            specs[role] = override
        else:
            specs[role] = {**base, **override}
    return specs


_kept: dict[str, Backends] | None = None


def keep_backends(enabled: bool = True) -> None:
    """From now on in this process, `build_backends` returns the `Backends` it built before for
    the same preset, config, device and dtype, so models that one run loaded stay loaded for
    the next (a batch worker runs many jobs in one process). `False` forgets them."""
    global _kept
    _kept = {} if enabled else None


def build_backends(
    preset: str = "offline",
    *,
    config: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> Backends:
    """Backends for `preset` (a key of `PRESETS`), overridden by `config`.

    `config` may also name `preset`, `device` and `dtype` (which win over the arguments) and
    `offload` (a key of `OFFLOAD`). Unknown preset, role, backend or option -> InputError.
    Nothing is loaded yet (and nothing is built again after `keep_backends()`).
    """
    if _kept is None:
        return _build_backends(preset, config, device, dtype)
    key = json.dumps([preset, config, str(device), str(dtype)], sort_keys=True, default=str)
    if key not in _kept:
        _kept[key] = _build_backends(preset, config, device, dtype)
    return _kept[key]


def _build_backends(
    preset: str,
    config: dict[str, Any] | None,
    device: str | torch.device,
    dtype: str | torch.dtype | None,
) -> Backends:
    config = dict(config or {})
    chosen = config.get("preset", preset)
    device = config.get("device", device)
    dtype = parse_dtype(config.get("dtype", dtype))
    offload = config.get("offload", "none")
    if offload not in OFFLOAD:
        raise InputError(f"unknown offload {offload!r}; use {', '.join(OFFLOAD)}", field="offload")
    specs = resolve_specs(preset, config)
    store = ModelStore()
    built: dict[str, Any] = {}
    for role in ROLES:
        spec = specs[role]
        if spec is not None:
            entry = BACKENDS[role].get(str(spec.get("name")))
            kind = entry.kind if entry is not None else "plain"  # unknown names fail in _build
            spec = {**OFFLOAD[offload].get(kind, {}), **spec}
        built[role] = None if spec is None else _build(role, spec, device, dtype, store)
    _share_pipeline(built["completer"], built["animator"])
    models = [str(s.get("model", "")) for s in specs.values() if s]
    info = {
        "preset": chosen,
        "device": str(device),
        "dtype": None if dtype is None else str(dtype).replace("torch.", ""),
        "roles": {r: None if s is None else public_spec(s) for r, s in specs.items()},
        "is_noise": any(m.startswith(TINY_PREFIX) for m in models),
    }
    return Backends(
        depth=built["depth"],
        completer=built["completer"],
        animator=built["animator"],
        captioner=built["captioner"],
        info=json.loads(json.dumps(info, default=str)),
        store=store,
    )


def _share_pipeline(completer: Any, animator: Any) -> None:
    """A completer and an animator on the same model share one pipeline: give both the
    memory options of the two merged (`MemoryOptions.frugal`); its one scheduler takes one
    flow shift, so they must ask for the same."""
    a, b = getattr(completer, "memory", None), getattr(animator, "memory", None)
    if a is None or b is None or completer.model_id != animator.model_id:
        return
    completer.memory = animator.memory = MemoryOptions.frugal(a, b, field="animator.dtype")
    shifts = getattr(completer, "flow_shift", None), getattr(animator, "flow_shift", None)
    if shifts[0] != shifts[1]:
        raise InputError(
            f"the completer and the animator share this model but ask for flow_shift "
            f"{shifts[0]} and {shifts[1]}; give them the same flow_shift",
            field="animator.flow_shift",
        )


def load_config(path: str | Path) -> dict[str, Any]:
    """A backend config from a `.json` or `.toml` file (InputError on unreadable content)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", source=path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise InputError("TOML configs need Python 3.11+; use JSON", source=path) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", source=path) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc}", source=path) from None
    if not isinstance(data, dict):
        raise InputError("a config must be a table/object at the top level", source=path)
    return data
