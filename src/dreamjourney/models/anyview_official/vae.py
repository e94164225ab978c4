"""The Wan2.1 VAE of the released AnyView model, as diffusers' `AutoencoderKLWan`.

The release's `tokenizer.pth` is the Wan2.1 VAE in its original key layout (the layout of
`Wan2.1_VAE.pth`); diffusers' own converter maps it to `AutoencoderKLWan`. A diffusers VAE
folder (e.g. the `vae/` of `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`) is taken as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dreamjourney.errors import InputError
from dreamjourney.models.anyview_official.checkpoint import _torch_load
from dreamjourney.models.weights import load_pretrained, resolve_weights

WAN_VAE_MARKER = "decoder.middle.0.residual.0.gamma"  # a key only the original layout has


def load_wan_vae(spec: str | Path):
    """`AutoencoderKLWan` from `tokenizer.pth` (original layout), a diffusers VAE folder, a
    pipeline folder holding `vae/`, or a hub id in the local cache."""
    from diffusers import AutoencoderKLWan

    path = Path(spec).expanduser()
    if path.is_file():
        return _from_original(path)
    folder = resolve_weights(str(spec), role="anyview vae")
    subfolder = "vae" if (folder / "vae" / "config.json").is_file() else None
    return load_pretrained(AutoencoderKLWan, str(folder), role="anyview vae", subfolder=subfolder)


def _from_original(path: Path):
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    try:
        state = _torch_load(path)
    except Exception as exc:
        raise InputError(f"cannot read the VAE ({exc})", source=path) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or WAN_VAE_MARKER not in state:
        raise InputError(
            f"not a Wan2.1 VAE in the original layout (no {WAN_VAE_MARKER})", source=path
        )
    try:
        base_dim = int(state["encoder.conv1.weight"].shape[0])
        z_dim = int(state["conv1.weight"].shape[0]) // 2
    except KeyError as exc:
        raise InputError(f"missing tensor {exc.args[0]}", source=path) from None
    vae: Any = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim)
    converted = convert_wan_vae_to_diffusers(state)
    expected = vae.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise InputError(
            f"does not match the Wan2.1 VAE: {what} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected after conversion)",
            source=path,
        )
    for key, value in expected.items():
        if tuple(converted[key].shape) != tuple(value.shape):
            raise InputError(
                f"shape {tuple(converted[key].shape)}, expected {tuple(value.shape)}",
                source=path,
                field=key,
            )
    vae.load_state_dict(converted, strict=True)
    return vae.eval()
