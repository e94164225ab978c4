"""Random-weight models of the real architectures, built in-process from small configs.

Every builder returns an object with `save_pretrained`, so the `tiny` preset and the tests
save it to a directory and load it back through the same `from_pretrained` code a user's
real weights go through. Outputs are noise: these models exist to run every code path on a
CPU in seconds, never to make pictures.

`ensure_tiny(name)` builds a named model once into the tiny cache
(`$DREAMJOURNEY_TINY_DIR`, default `~/.cache/dreamjourney/tiny/<name>`) and returns its path.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

TINY_SEED = 0
_WORDS = [
    "a", "the", "of", "and", "in", "on", "is", "with", "photo", "video", "scene", "sky", "water",
    "tree", "trees", "cloud", "clouds", "move", "moves", "moving", "gently", "slowly", "wind",
    "flows", "drift", "sway", "high", "quality", "detailed", "cinematic", "{", "}", "[", "]",
    ":", ",", ".", '"', "objects", "prompt", "motion", "user", "assistant", "system", "\n",
]  # fmt: skip


def tiny_tokenizer(
    extra_special: list[str] | None = None,
    max_length: int = 32,
    special_ids: dict[str, int] | None = None,
) -> Any:
    """A word-level fast tokenizer over a small vocabulary (unknown words map to `<unk>`).

    Whitespace and punctuation split words; `extra_special` tokens are added as special
    tokens (e.g. the vision markers of a multimodal model); `special_ids` gives some of them
    the ids a real model's config names (e.g. its image token id).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "</s>", *(extra_special or [])]
    vocab = {tok: i for i, tok in enumerate(specials + _WORDS)} | (special_ids or {})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="</s>",
        model_max_length=max_length,
        additional_special_tokens=extra_special or [],
    )
    return tok


def _t5_encoder(kind: str, d_model: int = 16) -> Any:
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config_cls: Any = UMT5Config if kind == "umt5" else T5Config
    config = config_cls(
        vocab_size=len(_WORDS) + 8,
        d_model=d_model,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
    )
    cls = UMT5EncoderModel if kind == "umt5" else T5EncoderModel
    return cls(config).eval()


def _wan_vae() -> Any:
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def _wan_scheduler() -> Any:
    """The scheduler Wan 2.1 checkpoints ship: UniPC on flow sigmas, shift 3.0 (480P)."""
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )


_WAN_HEADS, _WAN_HEAD_DIM = 2, 12


def _wan_transformer(cls_name: str = "WanTransformer3DModel", **extra: Any) -> Any:
    import diffusers

    cls = getattr(diffusers, cls_name)
    return cls(
        patch_size=(1, 2, 2),
        num_attention_heads=_WAN_HEADS,
        attention_head_dim=_WAN_HEAD_DIM,
        text_dim=16,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        **extra,
    )


def wan_vace() -> Any:
    """`WanVACEPipeline` with a 2-layer transformer and a 3-channel-base VAE."""
    from diffusers import WanVACEPipeline

    torch.manual_seed(TINY_SEED)
    return WanVACEPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=_t5_encoder("umt5"),
        vae=_wan_vae(),
        scheduler=_wan_scheduler(),
        transformer=_wan_transformer(
            "WanVACETransformer3DModel", vace_layers=[0], vace_in_channels=96
        ),
    )


# CLIP ViT-H/14 at 224 px gives Wan 257 image tokens of 1280 dims; here 28 px / 14 -> 5 of 4.
_CLIP_SIZE, _CLIP_PATCH, _CLIP_DIM = 28, 14, 4
_CLIP_TOKENS = (_CLIP_SIZE // _CLIP_PATCH) ** 2 + 1


def _wan_i2v(pos_embed_seq_len: int | None) -> Any:
    """A Wan 2.1 I2V-layout pipeline with the real structural flags: CLIP image tokens go
    through their own key/value projections (`image_dim`, `added_kv_proj_dim` = the model
    width) and, for first-last-frame models, get learned positions (`pos_embed_seq_len`)."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(TINY_SEED)
    vision = CLIPVisionConfig(
        hidden_size=_CLIP_DIM,
        projection_dim=_CLIP_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=_CLIP_SIZE,
        intermediate_size=16,
        patch_size=_CLIP_PATCH,
    )
    processor = CLIPImageProcessor(crop_size=_CLIP_SIZE, size=_CLIP_SIZE)
    return WanImageToVideoPipeline(
        tokenizer=tiny_tokenizer(),
        text_encoder=_t5_encoder("umt5"),
        vae=_wan_vae(),
        scheduler=_wan_scheduler(),
        image_encoder=CLIPVisionModel(vision).eval(),
        image_processor=processor,
        transformer=_wan_transformer(
            in_channels=36,
            image_dim=_CLIP_DIM,
            added_kv_proj_dim=_WAN_HEADS * _WAN_HEAD_DIM,
            pos_embed_seq_len=pos_embed_seq_len,
        ),
    )


def wan_i2v() -> Any:
    """`WanImageToVideoPipeline` in the Wan2.1 I2V layout (one conditioning image)."""
    return _wan_i2v(pos_embed_seq_len=None)


def wan_flf2v() -> Any:
    """`WanImageToVideoPipeline` in the Wan2.1 FLF2V layout: two conditioning images whose CLIP
    tokens carry learned positions (`pos_embed_seq_len` = 2 x tokens, 514 in the real model)."""
    return _wan_i2v(pos_embed_seq_len=2 * _CLIP_TOKENS)


def cogvideox_i2v() -> Any:
    """`CogVideoXImageToVideoPipeline` with CogVideoX-5b-I2V's structural flags: rotary and
    learned positional embeddings, so it runs only at its sample size (8x8 latents = 64x64 px
    here, 60x90 = 480x720 in the real model) and frame count (17 here, 49 there)."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    torch.manual_seed(TINY_SEED)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=8,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=16,
        num_layers=1,
        sample_width=8,
        sample_height=8,
        sample_frames=17,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
        use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    return CogVideoXImageToVideoPipeline(
        tokenizer=tiny_tokenizer(max_length=16),
        text_encoder=_t5_encoder("t5"),
        vae=vae,
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(),
    )


def ltx_i2v() -> Any:
    """`LTXImageToVideoPipeline` with an 8-channel latent space."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(TINY_SEED)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=16,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    return LTXImageToVideoPipeline(
        tokenizer=tiny_tokenizer(max_length=16),
        text_encoder=_t5_encoder("t5"),
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


def easyanimate() -> Any:
    """`EasyAnimateInpaintPipeline` in the V5.1 InP layout: a Qwen2-VL text encoder, a mask
    channel resized into the latents, noise on the reference video, RMS-normed text input."""
    from diffusers import (
        AutoencoderKLMagvit,
        EasyAnimateInpaintPipeline,
        EasyAnimateTransformer3DModel,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(TINY_SEED)
    tokenizer = qwen_tokenizer(max_length=32)
    latent = 4
    transformer = EasyAnimateTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=2 * latent + 1,  # latents, the mask resized to one channel, masked video
        out_channels=latent,
        patch_size=2,
        time_embed_dim=16,
        text_embed_dim=32,
        num_layers=1,
        mmdit_layers=1,
        sample_width=8,
        sample_height=8,
        add_norm_text_encoder=True,
        resize_inpaint_mask_directly=True,
        add_noise_in_inpaint_model=True,
        enable_text_attention_mask=True,
    )
    vae = AutoencoderKLMagvit(
        block_out_channels=(8, 8, 8, 8),
        latent_channels=latent,
        layers_per_block=1,
        norm_num_groups=2,
    )
    vae.register_to_config(cache_mag_vae=True)  # type: ignore[attr-defined]  # V5.1's config sets it; the pipeline reads it
    text_encoder = Qwen2VLForConditionalGeneration(
        Qwen2VLConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "rope_parameters": {
                    "rope_type": "default",
                    "mrope_section": [2, 2, 4],
                    "rope_theta": 10000.0,
                },
            },
            vision_config={"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2},
        )
    ).eval()
    return EasyAnimateInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
    )


class _Bundle:
    """A transformers model with its processor (an object or a plain JSON config), saved side by side."""

    def __init__(self, *parts: Any, files: dict[str, dict] | None = None):
        self.parts = parts
        self.files = files or {}

    def save_pretrained(self, path: str | Path) -> None:
        for part in self.parts:
            part.save_pretrained(path)
        for name, content in self.files.items():
            (Path(path) / name).write_text(json.dumps(content, indent=2))


def depth_anything() -> Any:
    """`DepthAnythingForDepthEstimation` on a 2-layer DINOv2 backbone, with its image processor."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(TINY_SEED)
    backbone_options: dict[str, Any] = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=28,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    backbone = Dinov2Config(**backbone_options)
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        reassemble_factors=[4, 2],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    processor = DPTImageProcessor(
        size={"height": 28, "width": 28},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
    )
    return _Bundle(DepthAnythingForDepthEstimation(config).eval(), processor)


def depth_pro() -> Any:
    """`DepthProForDepthEstimation` with a field-of-view head, on tiny DINOv2 encoders."""
    from transformers import DepthProConfig, DepthProForDepthEstimation

    torch.manual_seed(TINY_SEED)
    sub = {
        "model_type": "dinov2",
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "patch_size": 4,
        "image_size": 16,
    }
    config = DepthProConfig(
        fusion_hidden_size=8,
        patch_size=16,
        scaled_images_ratios=[0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.2],
        scaled_images_feature_dims=[8, 8],
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        image_model_config=sub,
        patch_model_config=sub,
        fov_model_config=sub,
        use_fov_model=True,
        num_fov_head_layers=1,
    )
    # DepthProImageProcessor needs torchvision; the backend reads this file itself.
    processor = {
        "size": {"height": 32, "width": 32},
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
    }
    return _Bundle(
        DepthProForDepthEstimation(config).eval(), files={"preprocessor_config.json": processor}
    )


QWEN_SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]  # fmt: skip
_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer(max_length: int = 4096, special_ids: dict[str, int] | None = None) -> Any:
    """The tiny tokenizer with Qwen's vision markers (ids from `special_ids` where given) and
    chat template."""
    tokenizer = tiny_tokenizer(QWEN_SPECIAL, max_length=max_length, special_ids=special_ids)
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer


def qwen25_vl() -> Any:
    """`Qwen2_5_VLForConditionalGeneration` with a 1-layer vision tower, its tokenizer and image processor."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
    )

    torch.manual_seed(TINY_SEED)
    tokenizer = qwen_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 2, 4]},
            "rope_parameters": {
                "rope_type": "default",
                "mrope_section": [2, 2, 4],
                "rope_theta": 10000.0,
            },
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56 * 4)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _Bundle(model, tokenizer, processor)


BUILDERS: dict[str, Callable[[], Any]] = {
    "depth-anything": depth_anything,
    "depth-pro": depth_pro,
    "wan-vace": wan_vace,
    "wan-i2v": wan_i2v,
    "wan-flf2v": wan_flf2v,
    "cogvideox-i2v": cogvideox_i2v,
    "ltx-i2v": ltx_i2v,
    "easyanimate": easyanimate,
    "qwen2.5-vl": qwen25_vl,
}


def tiny_dir() -> Path:
    """Where tiny models are saved: `$DREAMJOURNEY_TINY_DIR` or `~/.cache/dreamjourney/tiny`."""
    env = os.environ.get("DREAMJOURNEY_TINY_DIR")
    return Path(env) if env else Path.home() / ".cache" / "dreamjourney" / "tiny"


def ensure_tiny(name: str) -> Path:
    """Build tiny model `name` (a key of `BUILDERS`) once and return the directory it is saved in.

    The model is saved into a temporary sibling directory and renamed into place, so a
    concurrent or interrupted build never leaves a half-written model behind.
    """
    path = tiny_dir() / name
    if not (path / ".complete").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{name}."))
        try:
            BUILDERS[name]().save_pretrained(tmp)
            (tmp / ".complete").write_text("ok\n")
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except OSError:
            if not (path / ".complete").exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path
