"""Finding and loading weights, and the memory options every diffusion backend takes.

A model is named by a Hugging Face hub id (`org/name`), a local directory, or `tiny:<name>`
(a random-weight model built by `dreamjourney.models.tiny`). Nothing here downloads: a hub id
must already be in the local Hugging Face cache. Anything missing is a `MissingWeightsError`
that names the model, where we looked and how to provide it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from dreamjourney.errors import InputError, MissingWeightsError

TINY_PREFIX = "tiny:"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(value: str | torch.dtype | None, *, field: str = "dtype") -> torch.dtype | None:
    """`"bfloat16"`, `"fp16"`, a `torch.dtype` or None -> `torch.dtype | None`."""
    if value is None or isinstance(value, torch.dtype):
        return value
    try:
        return _DTYPES[str(value).lower()]
    except KeyError:
        raise InputError(
            f"unknown dtype {value!r}; use one of {', '.join(sorted(_DTYPES))}", field=field
        ) from None


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache this process would read."""
    try:
        from huggingface_hub import constants
    except ImportError:  # installed without the `models` extra
        home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        return Path(os.environ.get("HF_HUB_CACHE", str(Path(home) / "hub")))
    return Path(constants.HF_HUB_CACHE)


def _looks_local(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or model.count("/") > 1


def find_weights(model: str) -> Path | None:
    """The directory holding `model`'s files on this machine, or None if there is none.

    Never builds or downloads anything: `tiny:` models count as found only once built.
    """
    if model.startswith(TINY_PREFIX):
        from dreamjourney.models.tiny import tiny_dir

        path = tiny_dir() / model[len(TINY_PREFIX) :]
        return path if (path / ".complete").exists() else None
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if _looks_local(model):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # installed without the `models` extra: nothing can be loaded anyway
        return None
    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached, or an id the hub client rejects
        return None


def _missing(
    model: str, role: str, detail: str = "", option: str | None = None
) -> MissingWeightsError:
    option = option or f"[{role}] model"
    local = Path(model).expanduser()
    if _looks_local(model) or local.exists():
        msg = (
            f"weights for the {role} model not found in the local directory {local}{detail}; "
            "put the model's files there (on a machine with internet: `huggingface-cli download "
            f"<hub id> --local-dir {local}`) or set {option} to another directory or a hub id"
        )
    else:
        msg = (
            f"weights for the {role} model {model!r} not found: looked for a local directory {local} "
            f"and in the Hugging Face cache {hf_cache_dir()}{detail}; download them on a machine with "
            f"internet (`huggingface-cli download {model}`) and copy the cache to {hf_cache_dir()}, or "
            f'set a local directory in a config (`{option} = "/path/to/{model.rsplit("/", 1)[-1]}"`)'
        )
    return MissingWeightsError(msg, field=role)


def resolve_weights(model: str, *, role: str, option: str | None = None) -> Path:
    """The local directory of `model` (building a `tiny:` model on first use).

    Raises `MissingWeightsError` naming the model, the places searched and how to get it;
    `option` is the config setting that names the model (default `[role] model`).
    """
    if model.startswith(TINY_PREFIX):
        from dreamjourney.models.tiny import BUILDERS, ensure_tiny

        name = model[len(TINY_PREFIX) :]
        if name not in BUILDERS:
            raise InputError(
                f"unknown tiny model {name!r}; known: {', '.join(sorted(BUILDERS))}", field=role
            )
        return ensure_tiny(name)
    found = find_weights(model)
    if found is None:
        raise _missing(model, role, option=option)
    return found


def load_pretrained(
    cls: Any, model: str, *, role: str, option: str | None = None, **kwargs: Any
) -> Any:
    """`cls.from_pretrained(local_dir, **kwargs)` for `model`, with missing files as a clear error
    (`option`: see `resolve_weights`). Never downloads."""
    path = resolve_weights(model, role=role, option=option)
    try:
        return cls.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if (
            model.startswith(TINY_PREFIX)
            or _looks_local(model)
            or Path(model).expanduser().exists()
        ):
            raise _missing(str(path), role, f" (loading failed: {first})", option) from exc
        raise _missing(
            model, role, f" (the cached copy {path} is incomplete: {first})", option
        ) from exc


@dataclass
class MemoryOptions:
    """How a diffusion pipeline is placed in memory.

    dtype: weights' dtype (e.g. bfloat16 halves memory; default float32 on CPU).
    cpu_offload: keep each model on the CPU until it runs (`enable_model_cpu_offload`).
    sequential_offload: offload submodule by submodule (slowest, smallest footprint).
    vae_tiling / vae_slicing: decode in spatial tiles / one video at a time.
    """

    dtype: str | None = None
    cpu_offload: bool = False
    sequential_offload: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> MemoryOptions:
        """Pop the memory keys out of a backend's option dict."""
        keys = ("dtype", "cpu_offload", "sequential_offload", "vae_tiling", "vae_slicing")
        return cls(**{k: options.pop(k) for k in keys if k in options})

    @property
    def torch_dtype(self) -> torch.dtype | None:
        return parse_dtype(self.dtype)

    @property
    def placement(self) -> str:
        """`"sequential"`, `"model"` (offloaded per sub-model) or `"resident"`."""
        if self.sequential_offload:
            return "sequential"
        return "model" if self.cpu_offload else "resident"

    @classmethod
    def frugal(cls, a: MemoryOptions, b: MemoryOptions, *, field: str) -> MemoryOptions:
        """The options for one pipeline two roles share: every saving either asks for.

        Raises InputError when they ask for different dtypes.
        """
        if a.dtype is not None and b.dtype is not None and a.torch_dtype != b.torch_dtype:
            raise InputError(
                f"the completer and the animator share this model but ask for dtypes {a.dtype} "
                f"and {b.dtype}; give them the same dtype",
                field=field,
            )
        merged = {f.name: getattr(a, f.name) or getattr(b, f.name) for f in fields(cls)}
        return cls(**merged)

    def apply(self, pipe: Any, device: str | torch.device) -> Any:
        """Move `pipe` to `device` or set up offloading, and switch on VAE tiling/slicing."""
        device = torch.device(device)
        if self.cpu_offload or self.sequential_offload:
            if device.type == "cpu":
                raise InputError(
                    "CPU offload needs an accelerator device (e.g. device='cuda'), not 'cpu'",
                    field="cpu_offload" if self.cpu_offload else "sequential_offload",
                )
            if self.sequential_offload:
                pipe.enable_sequential_cpu_offload(device=device)
            else:
                pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        vae = getattr(pipe, "vae", None)
        if self.vae_tiling and vae is not None:
            vae.enable_tiling()
        if self.vae_slicing and vae is not None:
            vae.enable_slicing()
        return pipe


@contextmanager
def resident(module: torch.nn.Module, device: str | torch.device, offload: bool) -> Iterator[None]:
    """Inside the block `module` is on `device`; with `offload` it goes back to the CPU after
    (and the accelerator's cache is emptied), so it holds no accelerator memory between calls."""
    if offload:
        module.to(device)
    try:
        yield
    finally:
        if offload:
            module.to("cpu")
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()


FIXED_DTYPES: dict[str, dict[str, torch.dtype]] = {
    "WanImageToVideoPipeline": {"vae": torch.float32, "image_encoder": torch.float32},
    "WanVACEPipeline": {"vae": torch.float32},
}
"""Pipeline class -> components kept in float32 whatever the pipeline's dtype (diffusers' Wan
examples keep the VAE and the CLIP image encoder in float32; the Wan pipelines cast their
inputs to each component's dtype). The one place both loading and the memory table read."""


def component_dtype(pipeline: str, component: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype `component` of a `pipeline` (class name) is loaded in when the pipeline's is `dtype`."""
    return FIXED_DTYPES.get(pipeline, {}).get(component, dtype)


def load_pipeline(
    cls: Any,
    model: str,
    *,
    role: str,
    device: str | torch.device,
    memory: MemoryOptions,
    **kwargs: Any,
) -> Any:
    """Load a diffusers pipeline for `role` and place it according to `memory`.

    Components named in `FIXED_DTYPES` for `cls` keep their dtype; `kwargs` go to
    `from_pretrained` (e.g. an already loaded `text_encoder=` to share).
    """
    dtype = memory.torch_dtype
    if dtype is not None:
        kwargs["torch_dtype"] = {"default": dtype, **FIXED_DTYPES.get(cls.__name__, {})}
    pipe = load_pretrained(cls, model, role=role, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return memory.apply(pipe, device)


def _file_identity(path: Path) -> str:
    """A content identity of one weight file, cheap to compute.

    In a Hugging Face cache a file is a link to a blob named by its content hash: that name.
    Otherwise the size and the SHA-256 of its first and last MiB (which hold the header and
    the first and last tensors' bytes).
    """
    target = path.resolve()
    if target != path.absolute() and target.parent.name == "blobs":
        return target.name
    size = target.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with target.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read())
    return digest.hexdigest()


def folder_identity(folder: Path) -> str | None:
    """An identity of a component folder's files (see `_file_identity`), None if it has none."""
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        return None
    return hashlib.sha256(
        "".join(f"{p.name}:{_file_identity(p)};" for p in files).encode()
    ).hexdigest()


T = TypeVar("T")


class ModelStore:
    """Models loaded once and shared by the roles of one set of backends.

    Backends ask for what they need by a key (e.g. `(pipeline class, model)`); the first ask
    loads it, later asks get the same object. Two pipelines whose `text_encoder` and
    `tokenizer` folders hold the same files (`folder_identity`) share one text encoder.
    Tests and checks put ready objects in with `provide`.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Any] = {}
        self._encoders: dict[str, tuple[Any, Any]] = {}

    def provide(self, key: tuple[str, str], value: Any) -> None:
        """Use `value` for `key` instead of loading it."""
        self._items[key] = value

    def get(self, key: tuple[str, str], load: Callable[[], T]) -> T:
        """The object stored under `key`, loaded by `load()` on first use."""
        if key not in self._items:
            self._items[key] = load()
        return self._items[key]

    def drop(self, key: tuple[str, str]) -> None:
        """Forget `key` (the next `get` loads it again)."""
        self._items.pop(key, None)

    def pipeline(
        self, cls: Any, model: str, *, role: str, device: str | torch.device, memory: MemoryOptions
    ) -> Any:
        """The diffusers pipeline `cls` of `model`, loaded once, placed by `memory`."""
        return self.get((cls.__name__, model), lambda: self._load(cls, model, role, device, memory))

    def transformer_config(self, cls: Any, model: str, *, role: str) -> Mapping[str, Any]:
        """The transformer config of pipeline `cls` of `model`: the stored pipeline's, else its
        `transformer/config.json` ({} when it has none); reads no weights."""
        pipe = self._items.get((cls.__name__, model))
        if pipe is not None:
            return pipe.transformer.config
        path = resolve_weights(model, role=role) / "transformer" / "config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _load(
        self, cls: Any, model: str, role: str, device: str | torch.device, memory: MemoryOptions
    ) -> Any:
        root = resolve_weights(model, role=role)
        parts = [folder_identity(root / "text_encoder"), folder_identity(root / "tokenizer")]
        identity = None if None in parts else f"{parts[0]}/{parts[1]}/{memory.placement}"
        shared = self._encoders.get(identity) if identity else None
        extra = {"text_encoder": shared[0], "tokenizer": shared[1]} if shared else {}
        pipe = load_pipeline(cls, model, role=role, device=device, memory=memory, **extra)
        if identity and getattr(pipe, "text_encoder", None) is not None:
            self._encoders.setdefault(identity, (pipe.text_encoder, pipe.tokenizer))
        return pipe
