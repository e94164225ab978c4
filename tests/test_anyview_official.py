"""The released AnyView model: checkpoint layout, forward quirks, sampler, inputs, pipeline."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_cosmos import CosmosRotaryPosEmbed

from anyview_release import (
    fake_checkpoint_state,
    fake_release,
    released_keys,
    text_embedding,
    write_checkpoint,
)
from dreamjourney.camera import Cameras
from dreamjourney.data.anyview_protocol import (
    clip_length,
    moment_scale_for,
    resize_lanczos,
    snap_shape,
)
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.models.anyview_official import (
    AnyViewAB2Scheduler,
    AnyViewCosmosTransformer,
    load_released_transformer,
)
from dreamjourney.models.anyview_official.checkpoint import (
    convert_released_state_dict,
    released_config,
)
from dreamjourney.models.anyview_official.transformer import rope_angles
from dreamjourney.pipelines.anyview_official import (
    AnyViewOfficialPipeline,
    load_anyview_official,
    pipeline_from_release,
    plucker_video,
    window_plan,
)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return fake_release(tmp_path_factory.mktemp("release"))


# ----------------------------------------------------------------------------- checkpoint
def test_full_size_key_list_maps_onto_the_model_on_the_meta_device():
    keys = released_keys()
    state = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    config = released_config(state, source="full")
    assert config == {
        "num_attention_heads": 16,
        "attention_head_dim": 128,
        "num_layers": 28,
        "mlp_ratio": 4.0,
        "text_embed_dim": 1024,
        "adaln_lora_dim": 256,
    }
    with torch.device("meta"):
        model = AnyViewCosmosTransformer(**config)
    expected = {k: v for k, v in model.state_dict().items() if k != "empty_prompt_embeds"}
    converted = convert_released_state_dict(state, expected, source="full")
    assert converted.keys() == expected.keys()
    # every released tensor but the dropped ones becomes one of ours, 1:1
    dropped = [k for k in keys if k.startswith(("accum_", "pos_embedder.", "t_embedder.1.",
               "final_layer_newviews.")) or k.endswith("sattn_rope")]  # fmt: skip
    assert len(converted) == len(keys) - len(dropped)
    used = sum(math.prod(keys[k]) for k in keys if k not in dropped)
    # 1,976,190,976 released parameters - the base timestep embedder (16,777,216) - the input
    # view's output head (1,998,848)
    assert sum(p.numel() for p in model.parameters()) == used == 1_957_414_912
    assert model.empty_prompt_embeds.shape == (1, 512, 1024)


def test_fake_release_loads_strictly_into_the_right_parameters(release):
    model = load_released_transformer(release, release.parent / "default_text_emb.pt")
    state = fake_checkpoint_state()
    ours = model.state_dict()
    assert model.dtype == torch.bfloat16 and model.config.num_layers == 2
    pairs = {
        "x_embedder.proj.1.weight": "patch_embed.proj.weight",
        "x_embedder_newviews.0.proj.1.weight": "patch_embed_input.proj.weight",
        "view_embs_newviews.0": "view_embedding",
        # the embedder the model uses is the input view's, not the base one
        "t_embedder_newviews.0.1.linear_2.weight": "time_embed.t_embedder.linear_2.weight",
        "t_embedding_norm.weight": "time_embed.norm.weight",
        "blocks.1.cross_attn.k_proj.weight": "transformer_blocks.1.attn2.to_k.weight",
        "blocks.0.self_attn.output_proj.weight": "transformer_blocks.0.attn1.to_out.0.weight",
        "blocks.1.mlp.layer2.weight": "transformer_blocks.1.ff.net.2.weight",
        "blocks.0.adaln_modulation_cross_attn.2.weight": "transformer_blocks.0.norm2.linear_2.weight",
        "final_layer.adaln_modulation.2.weight": "norm_out.linear_2.weight",
    }
    for released, mine in pairs.items():
        assert torch.equal(ours[mine], state[released]), released
    assert not torch.equal(
        ours["time_embed.t_embedder.linear_1.weight"], state["t_embedder.1.linear_1.weight"]
    )
    assert torch.equal(model.empty_prompt_embeds.float(), text_embedding().bfloat16().float())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop", "missing tensor blocks.1.cross_attn.v_proj.weight"),
        ("drop_unused", "missing tensor final_layer_newviews.0.linear.weight"),
        ("extra", "unexpected tensor blocks.0.lora_A.weight"),
        ("shape", r"\[blocks.0.mlp.layer1.weight\]: shape \(256, 32\), expected \(256, 64\)"),
    ],
)
def test_a_wrong_or_missing_key_is_a_one_line_error(tmp_path, release, change, message):
    state = fake_checkpoint_state()
    if change == "drop":
        del state["blocks.1.cross_attn.v_proj.weight"]
    elif change == "drop_unused":
        del state["final_layer_newviews.0.linear.weight"]
    elif change == "extra":
        state["blocks.0.lora_A.weight"] = torch.zeros(2)
    else:
        state["blocks.0.mlp.layer1.weight"] = torch.zeros(256, 32)
    path = write_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(InputError, match=message) as err:
        load_released_transformer(path, release.parent / "default_text_emb.pt")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_sattn_rope_may_be_absent_and_extra_state_is_ignored(tmp_path, release):
    state = {k: v for k, v in fake_checkpoint_state().items() if "sattn_rope" not in k}
    path = write_checkpoint(tmp_path / "no_rope.pt", state)  # also writes an _extra_state key
    model = load_released_transformer(path, release.parent / "default_text_emb.pt")
    assert model.config.num_layers == 2
    with pytest.raises(MissingWeightsError, match="not found"):
        load_released_transformer(tmp_path / "absent.pt", release.parent / "default_text_emb.pt")


# ----------------------------------------------------------------------------- forward quirks
def _reference_forward(model, target, inp, t):
    """The released forward written out in plain float64 torch from the published facts."""
    w = {k: v.double() for k, v in model.state_dict().items()}
    c = model.config
    heads, hd = c.num_attention_heads, c.attention_head_dim

    def patchify(x):
        b, ch, f, h, wd = x.shape  # tokens in (t, h, w) order, features (c, pt, ph, pw)
        x = x.reshape(b, ch, f, 1, h // 2, 2, wd // 2, 2).permute(0, 2, 4, 6, 1, 3, 5, 7)
        return x.reshape(b, f * (h // 2) * (wd // 2), ch * 4)

    def angles(f, h, wd):
        dim_h = hd // 6 * 2
        dim_t = hd - 2 * dim_h
        rows = []
        for ti in range(f):
            for hi in range(h):
                for wi in range(wd):
                    parts = []
                    for pos, dim, scale in ((ti, dim_t, 1.0), (hi, dim_h, 3.0), (wi, dim_h, 3.0)):
                        theta = 10000.0 * scale ** (dim / (dim - 2))
                        parts += [pos / theta ** (2 * i / dim) for i in range(dim // 2)]
                    rows.append(parts + parts)
        return torch.tensor(rows, dtype=torch.float64)

    def rope(x, ang):  # x (B, L, heads, hd); GPT-NeoX half split
        x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
        rot = torch.cat([-x2, x1], dim=-1)
        return x * ang.cos()[None, :, None] + rot * ang.sin()[None, :, None]

    def rms(x, weight):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight

    def ln(x):
        return F.layer_norm(x, x.shape[-1:], eps=1e-6)

    tokens_t = patchify(target) @ w["patch_embed.proj.weight"].T
    tokens_i = patchify(inp) @ w["patch_embed_input.proj.weight"].T + w["view_embedding"]
    ang = torch.cat([angles(target.shape[2], target.shape[3] // 2, target.shape[4] // 2),
                     angles(inp.shape[2], inp.shape[3] // 2, inp.shape[4] // 2)])  # fmt: skip
    x = torch.cat([tokens_t, tokens_i], dim=1)
    half = x.shape[-1] // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    sinus = torch.cat([torch.cos(t * freqs), torch.sin(t * freqs)])[None]  # cos half first
    lora = F.silu(sinus @ w["time_embed.t_embedder.linear_1.weight"].T)
    lora = lora @ w["time_embed.t_embedder.linear_2.weight"].T
    emb = rms(sinus, w["time_embed.norm.weight"])
    context = w["empty_prompt_embeds"]

    def modulation(prefix):
        m = F.silu(emb) @ w[f"{prefix}.linear_1.weight"].T @ w[f"{prefix}.linear_2.weight"].T
        return [v[:, None] for v in (m + lora).chunk(3, dim=-1)]

    def attention(prefix, h, ctx, ang=None):
        ctx = h if ctx is None else ctx
        q = (h @ w[f"{prefix}.to_q.weight"].T).unflatten(-1, (heads, hd))
        k = (ctx @ w[f"{prefix}.to_k.weight"].T).unflatten(-1, (heads, hd))
        v = (ctx @ w[f"{prefix}.to_v.weight"].T).unflatten(-1, (heads, hd))
        q, k = rms(q, w[f"{prefix}.norm_q.weight"]), rms(k, w[f"{prefix}.norm_k.weight"])
        if ang is not None:
            q, k = rope(q, ang), rope(k, ang)
        att = torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd), dim=-1)
        out = torch.einsum("bhqk,bkhd->bqhd", att, v).flatten(-2)
        return out @ w[f"{prefix}.to_out.0.weight"].T

    for n in range(c.num_layers):
        p = f"transformer_blocks.{n}"
        sa_shift, sa_scale, g_sa = modulation(f"{p}.norm1")
        ca_shift, ca_scale, _g_ca = modulation(f"{p}.norm2")
        mlp_shift, mlp_scale, g_mlp = modulation(f"{p}.norm3")
        x = x + g_sa * attention(f"{p}.attn1", ln(x) * (1 + sa_scale) + sa_shift, None, ang)
        h = ln(x) * (1 + ca_scale) + ca_shift
        x = x + g_mlp * attention(f"{p}.attn2", h, context)  # the gate quirk
        h = ln(x) * (1 + mlp_scale) + mlp_shift
        mlp = F.gelu(h @ w[f"{p}.ff.net.0.proj.weight"].T) @ w[f"{p}.ff.net.2.weight"].T
        x = x + g_mlp * mlp

    fin = F.silu(sinus) @ w["norm_out.linear_1.weight"].T @ w["norm_out.linear_2.weight"].T
    shift, scale = (fin + lora[:, : 2 * x.shape[-1]]).chunk(2, dim=-1)  # un-normalised sinus
    x = ln(x[:, : tokens_t.shape[1]]) * (1 + scale[:, None]) + shift[:, None]
    x = x @ w["proj_out.weight"].T
    b, ch, f, h, wd = target.shape
    x = x.reshape(b, f, h // 2, wd // 2, 2, 2, 1, ch)  # (p1 p2 t C) per token
    return x.permute(0, 7, 1, 6, 2, 4, 3, 5).reshape(b, ch, f, h, wd)


def test_forward_matches_a_direct_computation_with_the_released_quirks():
    torch.manual_seed(0)
    model = AnyViewCosmosTransformer(
        num_attention_heads=2, attention_head_dim=12, num_layers=2, text_embed_dim=8,
        text_length=3, adaln_lora_dim=4,
    ).double()  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        model.empty_prompt_embeds.copy_(torch.randn(1, 3, 8))
    # two streams of different sizes: a landscape target and a portrait input
    target = torch.randn(1, 52, 2, 4, 6, dtype=torch.float64)
    inp = torch.randn(1, 52, 2, 6, 2, dtype=torch.float64)
    t = 0.7
    ours = model(target, inp, torch.tensor([t], dtype=torch.float64)).sample
    expected = _reference_forward(model, target, inp, t)
    assert ours.shape == target.shape and expected.abs().mean() > 0.1
    # float32 inside both (sinusoid, RMSNorms, RoPE, as the release): agreement to ~1e-6
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_rope_angles_match_diffusers_in_float32_and_are_built_in_the_model_dtype():
    rope = CosmosRotaryPosEmbed(hidden_size=128, rope_scale=(1.0, 3.0, 3.0))
    cos, sin = rope(torch.zeros(1, 52, 3, 10, 14), fps=None)  # latent grid -> 3 x 5 x 7 patches
    ang = rope_angles(3, 5, 7, head_dim=128, rope_scale=(1.0, 3.0, 3.0), dtype=torch.float32)
    assert torch.equal(ang.cos(), cos) and torch.equal(ang.sin(), sin)
    bf16 = rope_angles(1, 1, 120, head_dim=128, rope_scale=(1.0, 3.0, 3.0), dtype=torch.bfloat16)
    fp32 = rope_angles(1, 1, 120, head_dim=128, rope_scale=(1.0, 3.0, 3.0), dtype=torch.float32)
    # the release casts its RoPE buffers to bfloat16: exponent, frequency and angle are rounded
    theta = 10000.0 * 3.0 ** (42 / 40)
    for pos, i in ((119, 0), (119, 7), (77, 13)):
        exponent = torch.tensor(2 * i / 42).bfloat16()
        freq = 1.0 / (theta**exponent)
        angle = torch.tensor(float(pos)).bfloat16() * freq
        assert freq.dtype == angle.dtype == torch.bfloat16
        assert bf16[pos, 22 + 21 + i] == angle.float() == bf16[pos, 64 + 22 + 21 + i]
    assert (bf16 - fp32).abs().max() > 0.1  # not a rounding detail at the far positions


# ----------------------------------------------------------------------------- sampler
def test_karras_sigmas_as_released():
    sched = AnyViewAB2Scheduler()
    sched.set_timesteps(35)
    s = sched.sigmas
    assert s.dtype == torch.float64 and len(s) == 36
    assert s[0] == 80.0 and s[-1] == pytest.approx(0.002, rel=1e-12)
    assert [round(float(v), 2) for v in s[1:3]] == [68.33, 58.14]
    assert float(s[-2]) == pytest.approx(0.00392871, rel=1e-5)


def test_ab2_sampler_on_a_hand_worked_two_step_example():
    sched = AnyViewAB2Scheduler()
    sched.set_timesteps(2)  # sigmas 80, 2.515218976147159, 0.002
    assert float(sched.sigmas[1]) == pytest.approx(2.51521897614715858, rel=1e-14)
    x = torch.tensor([1.0])
    x1 = sched.step(torch.tensor([0.5]), 0, x)  # Euler in x0 form
    assert float(x1) == pytest.approx(0.515720118600919741, rel=1e-7)
    # AB2: h = 7.136968, c = -0.484753, b1 = 0.388582, b2 = -0.248578 (worked in mpmath)
    x2 = sched.step(
        torch.tensor([0.25]), 1, torch.tensor([0.515720118600919741]), torch.tensor([0.5])
    )
    assert x2.dtype == torch.float32
    assert float(x2) == pytest.approx(-0.193311420518818483, rel=1e-6)


def test_sampling_loop_evaluates_36_times_resets_inputs_and_seeds_as_released(monkeypatch):
    pipe = _tiny_pipeline()
    calls = []
    real = pipe.transformer.forward

    def spy(target, inp, timestep, **kw):
        calls.append((target.clone(), inp.clone(), float(timestep)))
        return real(target, inp, timestep, **kw)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    decoded = []
    real_decode = pipe.decode
    monkeypatch.setattr(pipe, "decode", lambda z: decoded.append(z) or real_decode(z))
    video, cams_in, cams_out = _clip(5)
    pipe(video, cams_in, cams_out, num_inference_steps=35, seed=3, long_side=32)
    sigmas = AnyViewAB2Scheduler()
    sigmas.set_timesteps(35)
    assert [c[2] for c in calls] == pytest.approx([s / (s + 1) for s in sigmas.sigmas.tolist()])
    first_target = calls[0][0]
    noise = np.random.RandomState(300).standard_normal(first_target[:, :16].numel())
    c_in = 1 / (1 + 80.0)
    expected = torch.from_numpy(noise.astype(np.float32)).reshape(first_target[:, :16].shape) * 80
    torch.testing.assert_close(first_target[:, :16], expected * c_in)
    for target, inp, _ in calls:  # everything but the target's rgb latent is the clean input
        torch.testing.assert_close(target[:, 16:], first_target[:, 16:], rtol=0, atol=0)
        torch.testing.assert_close(inp, calls[0][1], rtol=0, atol=0)
    assert first_target[:, 16].eq(0).all() and first_target[:, 17].eq(1).all()
    assert first_target[:, 50].eq(1).all() and first_target[:, 51].eq(0).all()
    assert calls[0][1][:, 16].eq(1).all() and calls[0][1][:, 17].eq(0).all()
    assert len(decoded) == 1  # the output is the x0 of the final evaluation at sigma_min


# ----------------------------------------------------------------------------- inputs
def test_grid_snapping_clip_length_and_moment_scales():
    assert [snap_shape(*s) for s in ((1920, 1080), (1440, 1080), (1920, 1280), (1920, 886))] == [
        (576, 304), (576, 432), (576, 384), (576, 256)]  # fmt: skip
    assert snap_shape(1080, 1920) == (304, 576) and snap_shape(576, 304) == (576, 304)
    assert [clip_length(n) for n in (1, 4, 5, 40, 41, 200)] == [1, 1, 5, 37, 41, 41]
    assert [moment_scale_for(n) for n in ("waymo_FL", "kubric5d", "droid_ID_LR", None)] == [
        1 / 16, 1 / 32, 1 / 8, 1 / 8]  # fmt: skip


def test_lanczos_resize_of_8bit_frames_is_pil_and_same_size_is_unchanged():
    from PIL import Image

    rng = np.random.default_rng(0)
    frames_u8 = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    frames = torch.from_numpy(frames_u8).permute(0, 3, 1, 2).float() / 255
    out = resize_lanczos(frames, 16, 12)
    expected = np.asarray(Image.fromarray(frames_u8[1]).resize((16, 12), Image.LANCZOS))
    assert torch.equal(out[1], torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    assert resize_lanczos(frames, 40, 30) is not None and torch.equal(
        resize_lanczos(frames, 40, 30), frames
    )


def test_plucker_maps_reanchor_in_float64_scale_intrinsics_per_axis_and_clamp():
    # native 640x360, non-square pixels; frame 1 has another K that must be ignored (frame 0's)
    K0 = torch.tensor([[500.0, 0, 320], [0, 400, 180], [0, 0, 1]])
    K = torch.stack([K0, K0 * 2])
    K[1, 2, 2] = 1
    far = torch.eye(4, dtype=torch.float64)
    far[:3, 3] = torch.tensor([1e4, -2e4, 3e3])
    c2w = far.expand(2, 4, 4).clone()
    c2w[1, 0, 3] += 0.5  # frame 1: half a unit to the right of frame 0
    cams = Cameras(K, c2w.float(), 640, 360, torch.arange(2.0))
    maps = plucker_video(cams, far, (32, 18), moment_scale=4.0)
    assert maps.dtype == torch.bfloat16 and maps.shape == (2, 6, 18, 32)
    sx, sy = 32 / 640, 18 / 360
    for u, v in ((0, 0), (31, 17), (7, 11)):
        ray = torch.tensor([(u - 320 * sx) / (500 * sx), (v - 180 * sy) / (400 * sy), 1.0])
        d = ray / ray.norm()
        torch.testing.assert_close(maps[0, :3, v, u].float(), d, atol=4e-3, rtol=0)
        assert maps[0, 3:, v, u].eq(0).all()  # the reference camera: origin 0, no moment
        m = torch.linalg.cross(torch.tensor([0.5, 0.0, 0.0]), d) * 4.0  # re-anchored exactly
        torch.testing.assert_close(maps[1, 3:, v, u].float(), m.clamp(-1, 1), atol=1e-2, rtol=0)
    assert maps[1, 3:].abs().max() == 1.0  # |m| up to 2 before the clamp
    skewed = Cameras(torch.tensor([[500.0, 3, 320], [0, 400, 180], [0, 0, 1]]), c2w[:1].float(),
                     640, 360, torch.zeros(1))  # fmt: skip
    with pytest.raises(InputError, match="skew"):
        plucker_video(skewed, far, (32, 18), moment_scale=1.0)


def test_windows_cover_long_videos_and_each_is_anchored_to_its_first_target(monkeypatch):
    assert window_plan(41) == [(0, 41, 0)]
    assert window_plan(45) == [(0, 41, 0), (4, 41, 37)]
    assert window_plan(100) == [(0, 41, 0), (41, 41, 0), (59, 41, 23)]
    assert window_plan(3) == [(0, 1, 0), (1, 1, 0), (2, 1, 0)]
    pipe = _tiny_pipeline()
    seen = []

    def fake_window(frames, cams_in, cams_out, grid, **kw):
        seen.append(cams_out.c2w[0].clone())
        return torch.full((len(frames), 3, grid[1], grid[0]), float(len(seen)))

    monkeypatch.setattr(pipe, "sample_window", fake_window)
    video, cams_in, cams_out = _clip(7)
    out = pipe(video, cams_in, cams_out, max_frames=5, long_side=32).frames
    assert out[:5].eq(1).all() and out[5:].eq(2).all()  # window 2 covers 2..6, keeps 5 and 6
    torch.testing.assert_close(seen[1], cams_out.c2w[2])


# ----------------------------------------------------------------------------- pipeline
def _tiny_pipeline():
    from dreamjourney.pipelines.anyview_official import tiny_anyview_official_pipeline

    return tiny_anyview_official_pipeline()  # float32: bfloat16 convolutions are slow on a CPU


def _clip(t, width=40, height=24):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(t, 3, height, width, generator=g)
    c2w = torch.eye(4).expand(t, 4, 4).clone()
    cams_in = Cameras.create(c2w, width=width, height=height, fov_deg=60)
    c2w_out = c2w.clone()
    c2w_out[:, 0, 3] = torch.linspace(0, 0.4, t)
    cams_out = Cameras.create(c2w_out, width=48, height=32, fov_deg=50)
    return video, cams_in, cams_out


def test_release_files_and_converted_folder_give_the_same_frames(release, tmp_path):
    from dreamjourney.models.weights import MemoryOptions
    from dreamjourney.pipelines.anyview_official import convert_release

    direct = pipeline_from_release(release)
    assert direct.transformer.dtype == direct.vae.dtype == torch.bfloat16  # as released
    fp32 = MemoryOptions(dtype="float32")  # bfloat16 convolutions are slow on a CPU
    direct = load_anyview_official(str(release), memory=fp32)
    video, cams_in, cams_out = _clip(5)
    kwargs = {"num_inference_steps": 2, "long_side": 32}
    out = direct(video, cams_in, cams_out, **kwargs)
    assert snap_shape(48, 32, 32) == (32, 32)
    assert out.frames.shape == (5, 3, 32, 32) and out.cameras.width == out.cameras.height == 32
    assert 0 <= out.frames.min() and out.frames.max() <= 1
    convert_release(release, tmp_path / "conv")
    loaded = load_anyview_official(str(tmp_path / "conv"))
    assert (
        isinstance(loaded, AnyViewOfficialPipeline) and loaded.transformer.dtype == torch.bfloat16
    )
    loaded = load_anyview_official(str(tmp_path / "conv"), memory=fp32)
    assert torch.equal(loaded(video, cams_in, cams_out, **kwargs).frames, out.frames)
    assert not torch.equal(direct(video, cams_in, cams_out, seed=1, **kwargs).frames, out.frames)
    with pytest.raises(InputError, match="not an empty folder"):
        convert_release(release, tmp_path / "conv")
    with pytest.raises(MissingWeightsError, match="--model"):
        load_anyview_official(None)
