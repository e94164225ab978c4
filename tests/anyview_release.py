"""Fake AnyView release files for the tests, in the released layout at a reduced size.

`fixtures/anyview_checkpoint_keys.json` lists every key of `anyview_dvs_2b.pt` and its shape
(derived from the published model definition). `fake_release` writes the three released files
with every key of that list, each dimension scaled by `SCALE` and the blocks cut to `layers`:

- `anyview_dvs_2b.pt`: {'model': {'net.' + key: bfloat16}, 'step': 0} plus `_extra_state` entries;
- `default_text_emb.pt`: {'t5_text_embeddings': (1, 8, 48)}, only token 0 nonzero;
- `tokenizer.pth`: a small Wan2.1-structured VAE in the original (non-diffusers) key layout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

KEYS_JSON = Path(__file__).parent / "fixtures" / "anyview_checkpoint_keys.json"
# Full-size dimension -> reduced one: width 2048 -> 64 (2 heads of 32), MLP 8192 -> 256, text
# width 1024 -> 48, AdaLN-LoRA 256 -> 16, RoPE tables for a head of 32.
SCALE = {2048: 64, 6144: 192, 4096: 128, 8192: 256, 1024: 48, 256: 16, 128: 32, 21: 5, 22: 6}
TEXT_LENGTH = 8


def released_keys() -> dict[str, list[int]]:
    return json.loads(KEYS_JSON.read_text())["keys"]


def reduced_keys(layers: int = 2) -> dict[str, tuple[int, ...]]:
    """The released keys with scaled shapes and blocks 0..layers-1 only."""
    out = {}
    for key, shape in released_keys().items():
        block = re.match(r"blocks\.(\d+)\.", key)
        if block and int(block[1]) >= layers:
            continue
        out[key] = tuple(SCALE.get(d, d) for d in shape)
    return out


def fake_checkpoint_state(layers: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """{key: bfloat16 tensor} in the released layout (without `net.`), random values."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: (torch.randn(shape, generator=g) * 0.2).to(torch.bfloat16)
        for k, shape in reduced_keys(layers).items()
    }


def write_checkpoint(path: Path, state: dict[str, torch.Tensor]) -> Path:
    model = {f"net.{k}": v for k, v in state.items()}
    model["net.blocks.0.self_attn._extra_state"] = torch.zeros(3, dtype=torch.uint8)
    torch.save({"model": model, "step": 0}, path)
    return path


def tiny_wan_vae(seed: int = 0):
    """A Wan2.1-structured VAE (the converter's block layout) with 8 base channels."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=8).eval()


def wan_original_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers `AutoencoderKLWan` state dict in the original Wan2.1 (`tokenizer.pth`) layout."""
    residual = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2",
                "norm2.gamma": "residual.3.gamma", "conv2": "residual.6",
                "conv_shortcut": "shortcut"}  # fmt: skip

    def resnet(rest: str) -> str:
        for new, old in residual.items():
            if rest.startswith(new + ".") or rest == new:
                return old + rest[len(new) :]
        return rest

    out = {}
    for key, value in state.items():
        side, _, rest = key.partition(".")
        if key.startswith("quant_conv."):
            new = "conv1." + key.split(".", 1)[1]
        elif key.startswith("post_quant_conv."):
            new = "conv2." + key.split(".", 1)[1]
        elif rest.startswith("conv_in."):
            new = f"{side}.conv1.{rest[8:]}"
        elif rest.startswith("norm_out."):
            new = f"{side}.head.0.{rest[9:]}"
        elif rest.startswith("conv_out."):
            new = f"{side}.head.2.{rest[9:]}"
        elif m := re.match(r"mid_block\.resnets\.(\d)\.(.*)", rest):
            new = f"{side}.middle.{2 * int(m[1])}.{resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", rest):
            new = f"{side}.middle.1.{m[1]}"
        elif m := re.match(r"down_blocks\.(\d+)\.(.*)", rest):
            new = f"encoder.downsamples.{m[1]}.{resnet(m[2])}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            new = f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", rest):
            new = f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
        else:
            raise KeyError(key)
        out[new] = value
    return out


def text_embedding() -> torch.Tensor:
    emb = torch.zeros(1, TEXT_LENGTH, SCALE[1024])
    emb[0, 0] = torch.linspace(-1, 1, SCALE[1024])
    return emb


def fake_release(folder: Path, *, layers: int = 2, seed: int = 0) -> Path:
    """Write the three released files into `folder`; returns the checkpoint's path."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"t5_text_embeddings": text_embedding()}, folder / "default_text_emb.pt")
    torch.save(wan_original_layout(tiny_wan_vae(seed).state_dict()), folder / "tokenizer.pth")
    return write_checkpoint(folder / "anyview_dvs_2b.pt", fake_checkpoint_state(layers, seed))
