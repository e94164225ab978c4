"""Reading the released AnyView files into `AnyViewCosmosTransformer`.

The release (TRI-ML/AnyView-DVS) ships three files:

- `anyview_dvs_2b.pt`: `{'model': {'net.' + key: bfloat16 tensor}, ...}` in the training code's
  key layout. Keys ending in `_extra_state` (fused-attention bookkeeping) are ignored,
  `blocks.N.sattn_rope` may be absent; every other key must be there with its shape, and nothing
  else may be. The base timestep embedder (`t_embedder.1.*`) and the input stream's output head
  (`final_layer_newviews.0.*`) are loaded by the original code but never influence the target's
  output, so they are checked and dropped, as are the RoPE tables (`pos_embedder.*`, recomputed)
  and training counters (`accum_*`).
- `default_text_emb.pt`: `{'t5_text_embeddings': (1, 512, 1024)}`, the T5 embedding of the empty
  prompt (only its first token is nonzero).
- `tokenizer.pth`: the Wan2.1 VAE in its original key layout (see `vae.py`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.models.anyview_official.transformer import (
    STREAM_CHANNELS,
    AnyViewCosmosTransformer,
)

RELEASE_FILES = {
    "transformer": "anyview_dvs_2b.pt",
    "text_embedding": "default_text_emb.pt",
    "vae": "tokenizer.pth",
}
TEXT_EMBEDDING_KEY = "t5_text_embeddings"
_OPTIONAL = re.compile(r"blocks\.\d+\.sattn_rope")
# Released keys that are checked for presence and then dropped (see the module docstring).
_DROPPED = (
    "accum_video_sample_counter",
    "accum_image_sample_counter",
    "accum_iteration",
    "accum_train_in_hours",
    "pos_embedder.seq",
    "pos_embedder.dim_spatial_range",
    "pos_embedder.dim_temporal_range",
    "t_embedder.1.linear_1.weight",
    "t_embedder.1.linear_2.weight",
    "final_layer_newviews.0.linear.weight",
    "final_layer_newviews.0.adaln_modulation.1.weight",
    "final_layer_newviews.0.adaln_modulation.2.weight",
)
_BLOCK_RENAMES = {
    "self_attn.q_proj": "attn1.to_q",
    "self_attn.k_proj": "attn1.to_k",
    "self_attn.v_proj": "attn1.to_v",
    "self_attn.output_proj": "attn1.to_out.0",
    "self_attn.q_norm": "attn1.norm_q",
    "self_attn.k_norm": "attn1.norm_k",
    "cross_attn.q_proj": "attn2.to_q",
    "cross_attn.k_proj": "attn2.to_k",
    "cross_attn.v_proj": "attn2.to_v",
    "cross_attn.output_proj": "attn2.to_out.0",
    "cross_attn.q_norm": "attn2.norm_q",
    "cross_attn.k_norm": "attn2.norm_k",
    "mlp.layer1": "ff.net.0.proj",
    "mlp.layer2": "ff.net.2",
    "adaln_modulation_self_attn.1": "norm1.linear_1",
    "adaln_modulation_self_attn.2": "norm1.linear_2",
    "adaln_modulation_cross_attn.1": "norm2.linear_1",
    "adaln_modulation_cross_attn.2": "norm2.linear_2",
    "adaln_modulation_mlp.1": "norm3.linear_1",
    "adaln_modulation_mlp.2": "norm3.linear_2",
}
_TOP_RENAMES = {
    "x_embedder.proj.1.weight": "patch_embed.proj.weight",
    "x_embedder_newviews.0.proj.1.weight": "patch_embed_input.proj.weight",
    "view_embs_newviews.0": "view_embedding",
    "t_embedder_newviews.0.1.linear_1.weight": "time_embed.t_embedder.linear_1.weight",
    "t_embedder_newviews.0.1.linear_2.weight": "time_embed.t_embedder.linear_2.weight",
    "t_embedding_norm.weight": "time_embed.norm.weight",
    "final_layer.linear.weight": "proj_out.weight",
    "final_layer.adaln_modulation.1.weight": "norm_out.linear_1.weight",
    "final_layer.adaln_modulation.2.weight": "norm_out.linear_2.weight",
}


def released_key_map(num_layers: int) -> dict[str, str]:
    """Released key (without `net.`) -> our parameter name, for every parameter we load."""
    out = dict(_TOP_RENAMES)
    for n in range(num_layers):
        for old, new in _BLOCK_RENAMES.items():
            out[f"blocks.{n}.{old}.weight"] = f"transformer_blocks.{n}.{new}.weight"
    return out


def released_config(state: Mapping[str, Any], *, source: str | Path) -> dict[str, Any]:
    """`AnyViewCosmosTransformer` config read off the released tensors' shapes.

    The released file gives the 2B defaults; a smaller file in the same layout (tests) gives its
    own width, depth, head size, text width and AdaLN-LoRA size.
    """
    try:
        hidden, patch_in = state["x_embedder.proj.1.weight"].shape
        head_dim = state["blocks.0.self_attn.q_norm.weight"].shape[0]
        mlp = state["blocks.0.mlp.layer1.weight"].shape[0]
        text_dim = state["blocks.0.cross_attn.k_proj.weight"].shape[1]
        lora = state["blocks.0.adaln_modulation_self_attn.1.weight"].shape[0]
    except KeyError as exc:
        raise InputError(
            f"missing tensor {exc.args[0]}: not an AnyView checkpoint", source=source
        ) from None
    if patch_in != STREAM_CHANNELS * 4:
        raise InputError(
            f"patch embedding takes {patch_in} values per token; AnyView's takes "
            f"{STREAM_CHANNELS * 4} (52 channels x 1x2x2)",
            source=source,
            field="x_embedder.proj.1.weight",
        )
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    return {
        "num_attention_heads": int(hidden // head_dim),
        "attention_head_dim": int(head_dim),
        "num_layers": layers,
        "mlp_ratio": mlp / hidden,
        "text_embed_dim": int(text_dim),
        "adaln_lora_dim": int(lora),
    }


def convert_released_state_dict(
    state: Mapping[str, Tensor], expected: Mapping[str, Tensor], *, source: str | Path
) -> dict[str, Tensor]:
    """Released state dict -> ours, strictly.

    Args:
        state: the released tensors, `net.` already stripped.
        expected: our model's state dict (names and shapes to match; `empty_prompt_embeds` is
            not part of the released transformer file and is not expected here).
        source: the file, for error messages.

    Raises:
        InputError naming the first missing key, unexpected key or wrong shape.
    """
    num_layers = sum(1 for k in expected if k.endswith(".attn1.to_q.weight"))
    mapping = released_key_map(num_layers)
    present = {k for k in state if not k.endswith("_extra_state")}
    required = set(mapping) | set(_DROPPED)
    missing = sorted(required - present)
    unexpected = sorted(k for k in present - required if not _OPTIONAL.fullmatch(k))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"missing tensor {missing[0]}{more}", source=source)
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise InputError(f"unexpected tensor {unexpected[0]}{more}", source=source)
    out = {}
    for old, new in mapping.items():
        value = state[old]
        if tuple(value.shape) != tuple(expected[new].shape):
            raise InputError(
                f"shape {tuple(value.shape)}, expected {tuple(expected[new].shape)}",
                source=source,
                field=old,
            )
        out[new] = value
    return out


def _torch_load(path: Path) -> Any:
    """torch.load of a user's file: tensors and plain containers only (BytesIO allowed for the
    `_extra_state` entries), memory-mapped when the file allows it."""
    with torch.serialization.safe_globals([io.BytesIO]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # an old-format file cannot be memory-mapped
            return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The released transformer file -> {key without `net.`: tensor}."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            "AnyView checkpoint not found; download anyview_dvs_2b.pt from the AnyView-DVS release "
            "(see README, 'The released AnyView model')",
            source=path,
        )
    try:
        data = _torch_load(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read the checkpoint ({first})", source=path) from None
    if isinstance(data, Mapping) and "model" in data:
        data = data["model"]
    if not isinstance(data, Mapping):
        raise InputError("is not a state dict (expected {'model': {name: tensor}})", source=path)
    return {k.removeprefix("net."): v for k, v in data.items() if isinstance(v, Tensor)}


def read_text_embedding(path: str | Path) -> Tensor:
    """`default_text_emb.pt` ({'t5_text_embeddings': (1, L, D)} or the bare tensor) -> (1, L, D)."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"the empty-prompt text embedding ({RELEASE_FILES['text_embedding']} of the AnyView "
            "release) was not found",
            source=path,
        )
    try:
        data = _torch_load(path)
    except Exception as exc:
        raise InputError(f"cannot read the text embedding ({exc})", source=path) from None
    if isinstance(data, Mapping):
        data = data.get(TEXT_EMBEDDING_KEY)
    if not isinstance(data, Tensor) or data.ndim != 3 or data.shape[0] != 1:
        raise InputError(f"expected a (1, L, D) tensor under {TEXT_EMBEDDING_KEY!r}", source=path)
    return data


def load_released_transformer(
    checkpoint: str | Path, text_embedding: str | Path
) -> AnyViewCosmosTransformer:
    """`AnyViewCosmosTransformer` with the released weights, in the file's dtype (bfloat16).

    Built on the meta device and filled with the file's tensors (no float32 copy of 2B
    parameters is made).
    """
    state = read_checkpoint(checkpoint)
    prompt = read_text_embedding(text_embedding)
    config = released_config(state, source=checkpoint)
    if prompt.shape[-1] != config["text_embed_dim"]:
        raise InputError(
            f"text embedding width {prompt.shape[-1]}, the checkpoint's cross-attention takes "
            f"{config['text_embed_dim']}",
            source=text_embedding,
        )
    config["text_length"] = int(prompt.shape[1])
    with torch.device("meta"):
        model = AnyViewCosmosTransformer(**config)
    expected = {k: v for k, v in model.state_dict().items() if k != "empty_prompt_embeds"}
    weights = convert_released_state_dict(state, expected, source=checkpoint)
    dtype = weights["patch_embed.proj.weight"].dtype
    weights["empty_prompt_embeds"] = prompt.to(dtype)
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()
