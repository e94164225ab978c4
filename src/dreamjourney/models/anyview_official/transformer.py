"""The released AnyView DiT (`anyview_dvs_2b.pt`) on diffusers' Cosmos blocks.

AnyView (TRI-ML, 2025) finetunes Cosmos-Predict2 2B into a two-view model. Each view is a stream
of 52 latent channels per cell (`RGB_CHANNELS`, ...): v0 is the target view being generated, v1 the
input video. This module is our own implementation of its forward pass from the published facts;
the parameters are diffusers' `CosmosTransformerBlock`, `CosmosPatchEmbed`, `CosmosEmbedding`
and `CosmosAdaLayerNorm`, named as diffusers' Cosmos conversion names them, plus the
AnyView-only input-stream patch embedding and view embedding.

The forward differs from stock Cosmos in ways the released weights depend on:

1. Each stream has its own patch embedding; the input stream also gets `view_embedding`.
   3D RoPE (no fps modulation, h/w NTK scale 3, t scale 1) is computed per stream on its own
   (T, H, W) grid with indices from 0; the token lists are joined as [target, input] for one
   joint self-attention. The two streams may have different H x W.
2. Gate quirk: x += g_sa * SA; x += g_mlp * CA; x += g_mlp * MLP (the cross-attention gate is
   computed and never used).
3. The final layer is modulated by the *un-normalised* sinusoidal timestep embedding; the blocks
   get the RMS-normalised one.
4. The timestep t = sigma / (sigma + 1) is cast to the model's dtype before the sinusoid, and the
   RoPE angles are built in the model's dtype (bfloat16 in the release) before the cast to
   float32, as the released inference does.
5. RMSNorms (q/k per head, timestep) run in float32 with the weight applied before the cast back.

Cross-attention attends to a fixed text embedding (the T5 embedding of the empty prompt), stored
in the model as the buffer `empty_prompt_embeds`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_cosmos import (
    CosmosAdaLayerNorm,
    CosmosEmbedding,
    CosmosPatchEmbed,
    CosmosTransformerBlock,
)
from torch import Tensor, nn

# The channels of one stream, per latent cell.
STREAM_CHANNELS = 52
RGB_CHANNELS = slice(0, 16)  # Wan VAE latent of the view's video
RGB_INPUT_MASK = 16  # 1 when the rgb latent is given (the input view), else 0
RGB_OUTPUT_MASK = 17  # 1 when the rgb latent is generated (the target view), else 0
PLUCKER_CHANNELS = slice(18, 50)  # Wan VAE latents of the ray directions (16), moments (16)
CAMS_INPUT_MASK = 50  # 1: the cameras are always given
CAMS_OUTPUT_MASK = 51  # 0


def rms_norm(x: Tensor, norm: Any) -> Tensor:
    """RMSNorm as the released model computes it: float32, weight applied before the cast back."""
    x32 = x.float()
    out = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight.float()
    return out.type_as(x)


def rope_angles(
    frames: int,
    height: int,
    width: int,
    *,
    head_dim: int,
    rope_scale: tuple[float, float, float],
    dtype: torch.dtype,
    device: torch.device | str | None = None,
) -> Tensor:
    """(frames * height * width, head_dim) float32 RoPE angles of one stream's token grid.

    The head dimension splits into t, h, w parts (44, 42, 42 for 128); each axis has NTK-scaled
    frequencies 1 / theta^(2i/d) with theta = 10000 * scale^(d / (d - 2)) and integer positions
    from 0. The angle vector is [t, h, w] twice (GPT-NeoX half-split rotation). Positions,
    frequencies and their products are computed in `dtype`, then cast to float32.
    """
    dim_h = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h

    def frequencies(dim: int, scale: float) -> Tensor:
        theta = 10000.0 * scale ** (dim / (dim - 2))
        exponents = (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim).to(dtype)
        return 1.0 / (theta**exponents)

    seq = torch.arange(max(frames, height, width), device=device, dtype=torch.float32).to(dtype)
    t = torch.outer(seq[:frames], frequencies(dim_t, rope_scale[0]))
    h = torch.outer(seq[:height], frequencies(dim_h, rope_scale[1]))
    w = torch.outer(seq[:width], frequencies(dim_h, rope_scale[2]))
    grid = torch.cat(
        [
            t[:, None, None].expand(frames, height, width, -1),
            h[None, :, None].expand(frames, height, width, -1),
            w[None, None].expand(frames, height, width, -1),
        ],
        dim=-1,
    )
    return torch.cat([grid, grid], dim=-1).flatten(0, 2).float()


def _rotate(x: Tensor, rope: Any) -> Tensor:
    """RoPE on (B, L, heads, D) with (L, D) cos and sin, half-split, in float32."""
    out: Any = apply_rotary_emb(x, rope, use_real_unbind_dim=-2, sequence_dim=1)
    return out


class AnyViewAttnProcessor:
    """Attention of the released model: q/k per-head RMSNorm (float32), RoPE on self-attention
    only (float32 math), torch SDPA with no mask."""

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        image_rotary_emb: Any = None,
    ) -> Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        heads = attn.heads
        q = rms_norm(attn.to_q(hidden_states).unflatten(2, (heads, -1)), attn.norm_q)
        k = rms_norm(attn.to_k(context).unflatten(2, (heads, -1)), attn.norm_k)
        v = attn.to_v(context).unflatten(2, (heads, -1))
        if image_rotary_emb is not None:
            q, k = _rotate(q, image_rotary_emb), _rotate(k, image_rotary_emb)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        out = out.transpose(1, 2).flatten(2).type_as(q)
        return attn.to_out[1](attn.to_out[0](out))


def _modulation(norm: Any, emb: Tensor, temb: Tensor) -> tuple[Tensor, ...]:
    """(shift, scale, gate), each (B, 1, D), from a `CosmosAdaLayerNormZero`'s layers."""
    mod = norm.linear_2(norm.linear_1(norm.activation(emb))) + temb
    return tuple(m[:, None] for m in mod.chunk(3, dim=-1))


def _block_forward(
    block: Any,
    x: Tensor,
    context: Tensor,
    emb: Tensor,
    temb: Tensor,
    rope: tuple[Tensor, Tensor],
) -> Tensor:
    """One `CosmosTransformerBlock` with the released model's gates: g_mlp gates the
    cross-attention and the MLP alike."""
    shift, scale, gate_sa = _modulation(block.norm1, emb, temb)
    x = x + gate_sa * block.attn1(block.norm1.norm(x) * (1 + scale) + shift, image_rotary_emb=rope)
    shift, scale, _unused_gate = _modulation(block.norm2, emb, temb)
    cross = block.attn2(block.norm2.norm(x) * (1 + scale) + shift, encoder_hidden_states=context)
    shift, scale, gate_mlp = _modulation(block.norm3, emb, temb)
    x = x + gate_mlp * cross
    return x + gate_mlp * block.ff(block.norm3.norm(x) * (1 + scale) + shift)


class AnyViewCosmosTransformer(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """The AnyView two-stream DiT (defaults: the released 2B model).

    Args:
        in_channels: channels per stream cell (52, see `RGB_CHANNELS` ...); also the output's.
        num_attention_heads, attention_head_dim, num_layers, mlp_ratio: transformer size.
        text_embed_dim, text_length: shape of the fixed cross-attention context.
        adaln_lora_dim: AdaLN-LoRA bottleneck.
        max_size: largest latent (T, H, W) the RoPE table covers (patches: T, H/2, W/2).
        patch_size: (t, h, w) patch of both streams' embeddings.
        rope_scale: (t, h, w) NTK factors of the 3D RoPE.
        eps: epsilon of the q/k and timestep RMSNorms.
    """

    _no_split_modules: ClassVar[list[str]] = ["CosmosTransformerBlock"]  # type: ignore[assignment,misc]

    @register_to_config
    def __init__(
        self,
        in_channels: int = STREAM_CHANNELS,
        num_attention_heads: int = 16,
        attention_head_dim: int = 128,
        num_layers: int = 28,
        mlp_ratio: float = 4.0,
        text_embed_dim: int = 1024,
        text_length: int = 512,
        adaln_lora_dim: int = 256,
        max_size: tuple[int, int, int] = (128, 240, 240),
        patch_size: tuple[int, int, int] = (1, 2, 2),
        rope_scale: tuple[float, float, float] = (1.0, 3.0, 3.0),
        eps: float = 1e-6,
    ):
        super().__init__()
        hidden = num_attention_heads * attention_head_dim
        patch = (int(patch_size[0]), int(patch_size[1]), int(patch_size[2]))
        self.patch_embed = CosmosPatchEmbed(in_channels, hidden, patch, bias=False)
        self.patch_embed_input = CosmosPatchEmbed(in_channels, hidden, patch, bias=False)
        self.view_embedding = nn.Parameter(torch.zeros(1, hidden))
        self.time_embed = CosmosEmbedding(hidden, hidden)
        self.time_embed.norm.eps = eps
        self.transformer_blocks = nn.ModuleList(
            [
                CosmosTransformerBlock(
                    num_attention_heads=num_attention_heads,
                    attention_head_dim=attention_head_dim,
                    cross_attention_dim=text_embed_dim,
                    mlp_ratio=mlp_ratio,
                    adaln_lora_dim=adaln_lora_dim,
                    qk_norm="rms_norm",
                    out_bias=False,
                )
                for _ in range(num_layers)
            ]
        )
        block: Any
        for block in self.transformer_blocks:
            for attn in (block.attn1, block.attn2):
                attn.set_processor(AnyViewAttnProcessor())
                attn.norm_q.eps = attn.norm_k.eps = eps
        self.norm_out = CosmosAdaLayerNorm(hidden, adaln_lora_dim)
        self.proj_out = nn.Linear(hidden, math.prod(patch) * in_channels, bias=False)
        self.register_buffer("empty_prompt_embeds", torch.zeros(1, text_length, text_embed_dim))

    empty_prompt_embeds: Tensor

    def _check_grid(self, stream: Tensor, name: str) -> tuple[int, int, int]:
        c: Any = self.config
        if stream.ndim != 5 or stream.shape[1] != c.in_channels:
            raise ValueError(
                f"{name} must be (B, {c.in_channels}, T, H, W), got {tuple(stream.shape)}"
            )
        grid = [s // p for s, p in zip(stream.shape[2:], c.patch_size, strict=True)]
        limit = [m // p for m, p in zip(c.max_size, c.patch_size, strict=True)]
        if any(s % p for s, p in zip(stream.shape[2:], c.patch_size, strict=True)):
            raise ValueError(
                f"{name}: (T, H, W) {tuple(stream.shape[2:])} not divisible by the patch"
            )
        if any(g > m for g, m in zip(grid, limit, strict=True)):
            raise ValueError(f"{name}: {grid} patches exceed the RoPE table {limit} (T, H, W)")
        return grid[0], grid[1], grid[2]

    def forward(
        self,
        target: Tensor,
        input: Tensor,
        timestep: Tensor,
        encoder_hidden_states: Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[Tensor]:
        """The target stream's velocity (noise minus clean) in rectified-flow form.

        Args:
            target: (B, 52, T, H, W) stream v0: the view being generated (its rgb channels hold
                c_in * x_t), in latent cells.
            input: (B, 52, T', H', W') stream v1: the input video, all channels clean.
            timestep: (B,) t = sigma / (sigma + 1) in [0, 1], shared by both streams.
            encoder_hidden_states: (B, L, text_embed_dim) context; default the stored
                empty-prompt embedding.

        Returns:
            `sample` (B, 52, T, H, W) for the target stream (the input stream's head is not
            computed: the released model discards it).
        """
        c: Any = self.config
        dtype = self.patch_embed.proj.weight.dtype
        b = target.shape[0]
        grid_t = self._check_grid(target, "target")
        grid_i = self._check_grid(input, "input")
        tokens_t = self.patch_embed(target.to(dtype)).flatten(1, 3)
        tokens_i = self.patch_embed_input(input.to(dtype)).flatten(1, 3) + self.view_embedding
        angles = torch.cat(
            [
                rope_angles(*g, head_dim=c.attention_head_dim, rope_scale=c.rope_scale,
                            dtype=dtype, device=target.device)
                for g in (grid_t, grid_i)
            ]
        )  # fmt: skip
        rope = (angles.cos(), angles.sin())
        x = torch.cat([tokens_t, tokens_i], dim=1)

        t = timestep.reshape(-1).to(dtype).expand(b)
        sinusoid = self.time_embed.time_proj(t).to(dtype)  # (B, D), un-normalised
        temb = self.time_embed.t_embedder(sinusoid)  # (B, 3D) AdaLN-LoRA
        emb = rms_norm(sinusoid, self.time_embed.norm)
        context = encoder_hidden_states
        if context is None:
            context = self.empty_prompt_embeds.expand(b, -1, -1)
        context = context.to(dtype)

        for block in self.transformer_blocks:
            x = _block_forward(block, x, context, emb, temb, rope)

        x = self.norm_out(x[:, : tokens_t.shape[1]], sinusoid, temb)
        x = self.proj_out(x)
        p_t, p_h, p_w = c.patch_size
        x = x.unflatten(2, (p_h, p_w, p_t, -1)).unflatten(1, grid_t)
        out = x.permute(0, 7, 1, 6, 2, 4, 3, 5).flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if not return_dict:
            return (out,)
        return Transformer2DModelOutput(sample=out)
