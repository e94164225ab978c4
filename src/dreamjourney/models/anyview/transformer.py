"""The AnyView transformer: a camera-conditioned two-stream video diffusion transformer.

The input video (clean) and the target video (noisy) are two token streams. Each stream has its
own 3D patch embedding over [video channels, 6 Plücker channels] and a learned view embedding;
the tokens of both streams are concatenated and go through joint self-attention blocks
(Wan-style blocks without text cross-attention: adaLN modulation from the timestep, RMS-normed
q/k, 3D RoPE, torch SDPA). Only the target stream has an output head: the loss is flow matching
on the target alone, so an input head would never receive a gradient.

Positional encoding: 3D RoPE (frame, row, column) computed per stream on its own token grid, so
the same moment in both streams shares its temporal position; the view embedding tells the
streams apart. One timestep embedding (the target's noise level) modulates every token.

Block and embedding parameters are named like diffusers' `WanTransformer3DModel`, so
`from_pretrained_wan` copies a pretrained Wan transformer's weights by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from dreamjourney.models.weights import load_pretrained

STREAMS = ("input", "target")


@dataclass
class AnyViewTransformerOutput(BaseOutput):
    """sample: (B, C, F, h, w) the predicted flow-matching velocity (noise - clean) of the target."""

    sample: Tensor


def _apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved channel pairs of x (B, L, heads, D) by angles given as (1, L, 1, D)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2).type_as(x)


class AnyViewAttention(nn.Module):
    """Multi-head self-attention with RMS-normed queries/keys, RoPE and torch SDPA."""

    def __init__(self, dim: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        q = self.norm_q(self.to_q(x)).unflatten(2, (self.heads, -1))
        k = self.norm_k(self.to_k(x)).unflatten(2, (self.heads, -1))
        v = self.to_v(x).unflatten(2, (self.heads, -1))
        q, k = _apply_rope(q, *rope), _apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        out = out.transpose(1, 2).flatten(2)
        return self.to_out[1](self.to_out[0](out))


class AnyViewBlock(nn.Module):
    """Joint self-attention + feed-forward, both modulated (shift, scale, gate) by the timestep."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, eps: float):
        super().__init__()
        self.norm1 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.attn1 = AnyViewAttention(dim, heads, eps)
        self.ffn = FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate")
        self.norm3 = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.scale_shift_table = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x: Tensor, temb: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        """x: (B, L, D) tokens; temb: (B, 6, D) modulation; rope: cos, sin (1, L, 1, head_dim)."""
        shift, scale, gate, c_shift, c_scale, c_gate = (
            self.scale_shift_table + temb.float()
        ).chunk(6, dim=1)
        h = (self.norm1(x.float()) * (1 + scale) + shift).type_as(x)
        x = (x.float() + self.attn1(h, rope) * gate).type_as(x)
        h = (self.norm3(x.float()) * (1 + c_scale) + c_shift).type_as(x)
        return (x.float() + self.ffn(h).float() * c_gate).type_as(x)


class TimeEmbedding(nn.Module):
    """Sinusoidal timestep features -> MLP -> (B, D) embedding and (B, 6, D) block modulation."""

    def __init__(self, dim: int, freq_dim: int):
        super().__init__()
        self.timesteps_proj = Timesteps(freq_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedder = TimestepEmbedding(in_channels=freq_dim, time_embed_dim=dim)
        self.act_fn = nn.SiLU()
        self.time_proj = nn.Linear(dim, 6 * dim)

    def forward(self, timestep: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        freqs = self.timesteps_proj(timestep)
        temb = self.time_embedder(freqs.to(self.time_embedder.linear_1.weight.dtype)).type(dtype)
        return temb, self.time_proj(self.act_fn(temb)).unflatten(1, (6, -1))


class AnyViewTransformer(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """Two-stream camera-conditioned video transformer (flow matching on the target stream).

    Args:
        in_channels: video channels per cell: 3 in pixel space, the VAE's latent channels else.
        plucker_channels: ray-map channels per cell (6: direction and moment).
        patch_size: (t, h, w) 3D patch of the embedding.
        num_layers, num_attention_heads, attention_head_dim, ffn_dim: transformer size.
        freq_dim: sinusoidal timestep features.
        eps: norm epsilon.
        rope_max_seq_len: largest grid extent (in patches) along any axis.
        plucker_order, plucker_pixel_offset, moment_scale, moment_clamp: the ray-map layout the
            model is trained with (see `dreamjourney.models.anyview.PluckerLayout`).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["AnyViewBlock"]  # type: ignore[assignment,misc]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 16,
        plucker_channels: int = 6,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        num_layers: int = 30,
        num_attention_heads: int = 12,
        attention_head_dim: int = 128,
        ffn_dim: int = 8960,
        freq_dim: int = 256,
        eps: float = 1e-6,
        rope_max_seq_len: int = 1024,
        plucker_order: str = "dm",
        plucker_pixel_offset: float = 0.0,
        moment_scale: float = 0.125,
        moment_clamp: float | None = 1.0,
    ):
        super().__init__()
        dim = num_attention_heads * attention_head_dim
        patch = (int(patch_size[0]), int(patch_size[1]), int(patch_size[2]))
        self.rope = WanRotaryPosEmbed(attention_head_dim, patch, rope_max_seq_len)
        self.patch_embedding = nn.ModuleDict(
            {
                s: nn.Conv3d(in_channels + plucker_channels, dim, kernel_size=patch, stride=patch)
                for s in STREAMS
            }
        )
        self.view_embedding = nn.Parameter(torch.zeros(len(STREAMS), dim))
        self.condition_embedder = TimeEmbedding(dim, freq_dim)
        self.blocks = nn.ModuleList(
            [AnyViewBlock(dim, ffn_dim, num_attention_heads, eps) for _ in range(num_layers)]
        )
        self.norm_out = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.proj_out = nn.Linear(dim, in_channels * math.prod(patch))
        self.scale_shift_table = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)
        self.gradient_checkpointing = False

    def _embed(self, stream: str, video: Tensor, rays: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.cat([video, rays.to(video)], dim=1)
        cos, sin = self.rope(x)
        tokens = self.patch_embedding[stream](x).flatten(2).transpose(1, 2)
        tokens = tokens + self.view_embedding[STREAMS.index(stream)].to(tokens)
        return tokens.contiguous(), cos, sin

    def forward(
        self,
        hidden_states: Tensor,
        timestep: Tensor,
        input_video: Tensor,
        input_rays: Tensor,
        target_rays: Tensor,
        return_dict: bool = True,
    ) -> AnyViewTransformerOutput | tuple[Tensor]:
        """Predict the velocity of the noisy target stream.

        Args:
            hidden_states: (B, C, F, h, w) noisy target video (latents or pixels in [-1, 1]).
            timestep: (B,) or scalar, flow-matching time in [0, 1000] (sigma * 1000).
            input_video: (B, C, F', h', w') clean input video in the same space.
            input_rays, target_rays: (B, 6, F', h', w') and (B, 6, F, h, w) Plücker maps.
        Returns:
            `AnyViewTransformerOutput.sample` (B, C, F, h, w), or a 1-tuple.
        """
        b, _, f, h, w = hidden_states.shape
        p_t, p_h, p_w = self.config["patch_size"]
        if timestep.ndim == 0:
            timestep = timestep.expand(b)
        inp, cos_i, sin_i = self._embed("input", input_video, input_rays)
        tgt, cos_t, sin_t = self._embed("target", hidden_states, target_rays)
        n_target = tgt.shape[1]
        x = torch.cat([tgt, inp], dim=1)
        rope = (torch.cat([cos_t, cos_i], dim=1), torch.cat([sin_t, sin_i], dim=1))
        temb, modulation = self.condition_embedder(timestep, x.dtype)
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, modulation, rope)
            else:
                x = block(x, modulation, rope)
        x = x[:, :n_target]
        shift, scale = (self.scale_shift_table.to(temb) + temb[:, None]).chunk(2, dim=1)
        x = self.proj_out((self.norm_out(x.float()) * (1 + scale) + shift).type_as(x))
        x = x.reshape(b, f // p_t, h // p_h, w // p_w, p_t, p_h, p_w, -1)
        out = x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, -1, f, h, w)
        if not return_dict:
            return (out,)
        return AnyViewTransformerOutput(sample=out)

    @classmethod
    def from_pretrained_wan(
        cls, wan: str | Path | nn.Module, *, subfolder: str | None = None, **overrides
    ) -> AnyViewTransformer:
        """An AnyView transformer initialised from a diffusers `WanTransformer3DModel`.

        The architecture (layers, heads, widths, patch size, latent channels) follows the Wan
        config unless `overrides` change it. Every parameter whose name and shape match is
        copied: attention, feed-forward, modulation tables, timestep embedding, output norm and
        head. Both streams' patch embeddings copy Wan's weights for the video channels; channels
        Wan does not have (the 6 Plücker channels, and any extra video channels) start at zero,
        as does the view embedding, so the fresh model ignores cameras until trained.
        Wan's text cross-attention has no counterpart and is dropped.

        Args:
            wan: a loaded WanTransformer3DModel, or a local directory or hub id already in the
                local cache (`dreamjourney.models.weights.load_pretrained`: never downloads).
            subfolder: e.g. "transformer" when `wan` is a whole pipeline's directory.
        """
        source_model: Any = wan
        if not isinstance(wan, nn.Module):
            from diffusers import WanTransformer3DModel

            source_model = load_pretrained(
                WanTransformer3DModel,
                str(wan),
                role="Wan transformer",
                option="[model] pretrained_wan",
                subfolder=subfolder,
            )
        wc = source_model.config
        config = {
            "in_channels": wc.out_channels or wc.in_channels,
            "patch_size": tuple(wc.patch_size),
            "num_layers": wc.num_layers,
            "num_attention_heads": wc.num_attention_heads,
            "attention_head_dim": wc.attention_head_dim,
            "ffn_dim": wc.ffn_dim,
            "freq_dim": wc.freq_dim,
            "eps": wc.eps,
            "rope_max_seq_len": wc.rope_max_seq_len,
            **overrides,
        }
        model = cls(**config)
        source = source_model.state_dict()
        target = model.state_dict()
        with torch.no_grad():
            for name, value in target.items():
                if name in source and source[name].shape == value.shape:
                    value.copy_(source[name])
            src_patch_w, src_patch_b = (
                source["patch_embedding.weight"],
                source["patch_embedding.bias"],
            )
            for stream in STREAMS:
                weight = target[f"patch_embedding.{stream}.weight"]
                if weight.shape[2:] != src_patch_w.shape[2:]:
                    raise ValueError(
                        f"patch size {tuple(weight.shape[2:])} differs from the Wan model's "
                        f"{tuple(src_patch_w.shape[2:])}"
                    )
                weight.zero_()
                n = min(model.config.in_channels, src_patch_w.shape[1])
                weight[:, :n] = src_patch_w[:, :n]
                target[f"patch_embedding.{stream}.bias"].copy_(src_patch_b)
            target["view_embedding"].zero_()
        model.load_state_dict(target)
        return model
