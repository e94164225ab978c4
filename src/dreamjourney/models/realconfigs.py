"""The published configurations of the real models the presets use, built without weights.

`configs/models.json` maps each hub id to its components' config files (their sources are in
`configs/README.md`). `build_component` instantiates one component from its config on any
device: torch's meta device for shape checks and parameter counts (no memory, no compute), or
an accelerator with random weights (`benchmarks/gpu_check.py`). Tokenizers have no published
config here (their vocabularies are data files): `build_pipeline` stands in the tiny word-level
tokenizer, which gives the same shapes once padded to the model's text length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch

from dreamjourney.errors import InputError

CONFIGS = Path(__file__).with_name("configs")


@cache
def catalogue() -> dict[str, dict[str, Any]]:
    """hub id -> `{"pipeline": class name (diffusers models), "text_length": tokens,
    "components": {name: config file under configs/}}`."""
    return json.loads((CONFIGS / "models.json").read_text(encoding="utf-8"))


def _entry(model: str) -> dict[str, Any]:
    try:
        return catalogue()[model]
    except KeyError:
        known = ", ".join(sorted(catalogue()))
        raise InputError(f"no published config kept for {model!r}; known: {known}") from None


def component_config(model: str, component: str) -> dict[str, Any]:
    """The published config (a dict) of `component` of hub model `model`."""
    path = CONFIGS / _entry(model)["components"][component]
    return json.loads(path.read_text(encoding="utf-8"))


def components(model: str) -> list[str]:
    """The component names of `model` that carry weights (the scheduler has none)."""
    return [c for c in _entry(model)["components"] if c != "scheduler"]


def build_component(
    model: str,
    component: str,
    *,
    device: str | torch.device = "meta",
    dtype: torch.dtype | None = None,
) -> Any:
    """`component` of `model` built from its published config, random weights on `device`.

    On the meta device nothing is allocated. Schedulers are returned as configured.
    """
    config = component_config(model, component)
    if "_class_name" in config:  # diffusers
        import diffusers

        cls = getattr(diffusers, config["_class_name"])
        if component == "scheduler":
            return cls.from_config(config)
        with torch.device(device):
            module = cls.from_config(config)
    else:  # transformers
        import transformers

        cls = getattr(transformers, config["architectures"][0])
        settings = {k: v for k, v in config.items() if k != "model_type"}
        hf_config = transformers.AutoConfig.for_model(config["model_type"], **settings)
        with torch.device(device):
            module = cls._from_config(hf_config)
    module = module.eval()
    return module.to(dtype) if dtype is not None else module


def text_length(model: str) -> int:
    """The number of text tokens the model's pipeline pads prompts to."""
    return int(_entry(model)["text_length"])


def build_pipeline(model: str, build: Callable[[str], Any]) -> Any:
    """The diffusers pipeline of `model` with every component made by `build(component)`
    (e.g. `build_component` on some device and dtype).

    The tokenizer is the tiny word-level one (see the module docstring); the CLIP image
    processor has the published 224-pixel settings, which are `CLIPImageProcessor`'s defaults.
    """
    import diffusers

    from dreamjourney.models.tiny import qwen_tokenizer, tiny_tokenizer

    entry = _entry(model)
    parts: dict[str, Any] = {name: build(name) for name in entry["components"]}
    chat = entry["pipeline"] == "EasyAnimateInpaintPipeline"  # its Qwen2-VL encoder reads a chat
    parts["tokenizer"] = (qwen_tokenizer if chat else tiny_tokenizer)(
        max_length=entry["text_length"]
    )
    if "image_encoder" in parts:
        from transformers import CLIPImageProcessor

        parts["image_processor"] = CLIPImageProcessor()
    return getattr(diffusers, entry["pipeline"])(**parts)


def parameter_count(module: torch.nn.Module) -> int:
    """Parameters plus persistent buffers, each shared tensor once: what a checkpoint stores."""
    count = sum(p.numel() for p in module.parameters())
    seen: set[int] = set()
    for sub in module.modules():
        for name, buffer in sub._buffers.items():
            if buffer is None or name in sub._non_persistent_buffers_set or id(buffer) in seen:
                continue
            seen.add(id(buffer))
            count += buffer.numel()
    return count


def image_processor(model: str) -> Any:
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

    return Qwen2VLImageProcessor()  # its defaults are Qwen2.5-VL's published settings


QWEN_MARKERS = {
    "<|image_pad|>": "image_token_id",
    "<|video_pad|>": "video_token_id",
    "<|vision_start|>": "vision_start_token_id",
    "<|vision_end|>": "vision_end_token_id",
}
"""Qwen's vision markers -> the config keys of their ids (the model finds images by them)."""


def provide_models(backends: Any, make: Callable[..., Any]) -> list[str]:
    """Put a build of every catalogued model the backends use into their `ModelStore`.

    make: `make(model, component)` -> that component (e.g. on the meta device, or with random
        weights on a GPU), or a scheduler for `"scheduler"`.
    Diffusion pipelines are stored as the backends load them; placing them (device,
    offload) is the caller's. Pipelines whose text encoder has the same published config
    share one build, as `ModelStore` shares identical text encoder files. Returns the model
    ids provided.
    """
    from dreamjourney.models.tiny import qwen_tokenizer

    encoders: dict[str, Any] = {}

    def part(model: str, component: str) -> Any:
        if component != "text_encoder":
            return make(model, component)
        source = _entry(model)["components"][component]
        if source not in encoders:
            encoders[source] = make(model, component)
        return encoders[source]

    provided: list[str] = []
    for role in ("depth", "completer", "animator", "captioner"):
        model = getattr(getattr(backends, role), "model_id", None)
        if model not in catalogue() or model in provided:
            continue
        entry = catalogue()[model]
        if "pipeline" in entry:
            pipe = build_pipeline(model, partial(part, model))
            pipe.set_progress_bar_config(disable=True)
            backends.store.provide((entry["pipeline"], model), pipe)
        elif role == "depth":
            backends.store.provide(("depth", model), (image_processor(model), make(model, "model")))
        else:
            config = component_config(model, "model")
            ids = {marker: config[key] for marker, key in QWEN_MARKERS.items()}
            parts = (qwen_tokenizer(special_ids=ids), image_processor(model), make(model, "model"))
            backends.store.provide(("captioner", model), parts)
        provided.append(model)
    return provided
