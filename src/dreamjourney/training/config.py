"""The AnyView training configuration: one JSON, TOML or YAML file validated by pydantic.

Relative paths (data, output, resume) are taken relative to the current directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dreamjourney.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VAEConfig(_Strict):
    """A pretrained diffusers video VAE (frozen during training)."""

    kind: Literal["wan", "cogvideox"]
    path: str  # hub id or local directory
    subfolder: str | None = None


class PluckerConfig(_Strict):
    """Ray-map layout (defaults: AnyView's): see `dreamjourney.models.anyview.PluckerLayout`."""

    order: Literal["dm", "md"] = "dm"
    pixel_offset: float = 0.0
    moment_scale: float = Field(default=0.125, gt=0)
    clamp: float | None = Field(default=1.0, gt=0)


class ModelConfig(_Strict):
    """The transformer; `pretrained_wan` initialises it from a Wan transformer (its sizes win)."""

    pretrained_wan: str | None = None
    pretrained_subfolder: str | None = None
    patch_size: tuple[int, int, int] = (1, 2, 2)
    num_layers: int = Field(default=4, ge=1)
    num_attention_heads: int = Field(default=4, ge=1)
    attention_head_dim: int = Field(default=32, ge=6)
    ffn_dim: int = Field(default=512, ge=1)
    freq_dim: int = Field(default=256, ge=2)
    plucker: PluckerConfig = Field(default_factory=PluckerConfig)
    vae: VAEConfig | None = None  # None: pixel space
    flow_shift: float = Field(default=1.0, gt=0)


class SyntheticConfig(_Strict):
    """Scenes made by `dreamjourney.data.synth_scene(seed + i, ...)` for i < count."""

    count: int = Field(default=8, ge=1)
    seed: int = 0
    cameras: int = Field(default=4, ge=1)
    frames: int = Field(default=24, ge=1)
    width: int = Field(default=256, ge=8)
    height: int = Field(default=256, ge=8)


class SourceConfig(_Strict):
    """One data domain. kind: "monocular" (target = input camera), "static" or "dynamic"
    multi-view (input and target are two different synchronised cameras of a scene)."""

    name: str
    kind: Literal["monocular", "static", "dynamic"]
    weight: float = Field(default=1.0, gt=0)
    path: str | None = None  # a scene directory, or a directory of scene directories
    synthetic: SyntheticConfig | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> SourceConfig:
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'path' and 'synthetic'")
        return self


class EMAConfig(_Strict):
    enabled: bool = True
    decay: float = Field(default=0.999, gt=0, lt=1)
    update_after_step: int = Field(default=0, ge=0)


class TrainConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: list[SourceConfig] = Field(min_length=1)
    validation: SourceConfig | None = None  # held-out scenes
    validation_clips: int = Field(default=8, ge=1)
    frames: int = Field(ge=1)
    width: int = Field(ge=8)
    height: int = Field(ge=8)
    batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    lr: float = Field(default=1e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    steps: int = Field(ge=1)
    timestep_sampling: Literal["logit_normal", "uniform"] = "logit_normal"
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"  # applies on GPU; CPU runs fp32
    gradient_checkpointing: bool = False
    ema: EMAConfig = Field(default_factory=EMAConfig)
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoints_total_limit: int | None = Field(default=3, ge=1)
    validate_every: int = Field(default=500, ge=1)
    log_every: int = Field(default=10, ge=1)
    resume: str | None = None  # "latest" (newest checkpoint, else a fresh start) or a directory
    output_dir: str
    logging_dir: str = "logs"  # inside output_dir
    seed: int = 0
    num_workers: int = Field(default=0, ge=0)
    distributed: Literal["fsdp", "deepspeed"] | None = None

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if len({s.name for s in self.data}) != len(self.data):
            raise ValueError("data source names must be unique")
        return self


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    raise InputError("unknown config format: use .json, .toml, .yaml or .yml", source=path)


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read and validate a training config; `overrides` replace top-level fields.

    Raises:
        InputError: unreadable file, bad syntax, or a field that fails validation (named).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", source=path)
    try:
        raw = _read(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot parse: {exc}", source=path) from exc
    if not isinstance(raw, dict):
        raise InputError("must hold a table/object at the top level", source=path)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(err["msg"], source=path, field=field) from None
