"""The learned AnyView model: ray conditioning, transformer, pipeline, Wan init, training."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from diffusers import (
    AutoencoderKLCogVideoX,
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    WanTransformer3DModel,
)

from dreamjourney.camera import Cameras, look_at
from dreamjourney.data import save_scene, synth_scene
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.models.anyview import (
    AnyViewTransformer,
    PluckerLayout,
    latent_frame_indices,
    ray_maps,
)
from dreamjourney.models.anyview.transformer import AnyViewTransformerOutput
from dreamjourney.pipelines.anyview_learned import (
    AnyViewNovelView,
    AnyViewPipeline,
    load_anyview_pipeline,
)
from dreamjourney.training.anyview import flow_matching_loss, sample_sigmas, train_anyview
from dreamjourney.training.config import load_train_config
from dreamjourney.training.data import ClipDataset

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "anyview_tiny.toml"
TINY = {
    "patch_size": (1, 4, 4),
    "num_layers": 2,
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "ffn_dim": 32,
    "freq_dim": 16,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids OpenMP spin-waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def orbit(n: int, *, width=32, height=16, radius=2.0, phase=0.0, offset=(0.0, 0.0, 0.0)) -> Cameras:
    angles = phase + torch.linspace(0, 0.6, n)
    eye = torch.stack([radius * angles.sin(), torch.zeros(n), -radius * angles.cos()], -1)
    eye = eye + torch.tensor(offset)
    return Cameras.create(look_at(eye, torch.zeros(n, 3)), width=width, height=height, fov_deg=60)


def sample(pipe, video, cams_in, cams_tgt, seed=0, steps=3):
    gen = torch.Generator().manual_seed(seed)
    return pipe(video, cams_in, cams_tgt, num_inference_steps=steps, generator=gen).frames


# ----------------------------------------------------------------------------- conditioning
def test_ray_maps_are_relative_to_first_target_camera_and_scaled():
    target = orbit(3, phase=0.4)
    inp = orbit(3, phase=-0.2, offset=(0.3, -0.1, 0.2))
    layout = PluckerLayout(order="dm", pixel_offset=0.5, moment_scale=0.5, clamp=None)
    rays_in, rays_tgt = ray_maps(inp, target, input_grid=(8, 4), scene_scale=2.0, layout=layout)
    assert rays_in.shape == rays_tgt.shape == (6, 3, 4, 8)
    # Target frame 0 is the identity: directions are K^-1 (u, v, 1) normalised, moments zero.
    grid = target[0].resize(8, 4)
    v, u = torch.meshgrid(torch.arange(4) + 0.5, torch.arange(8) + 0.5, indexing="ij")
    d = torch.stack([(u - grid.K[0, 0, 2]) / grid.fx, (v - grid.K[0, 1, 2]) / grid.fy], 0)
    d = torch.nn.functional.normalize(torch.cat([d, torch.ones(1, 4, 8)]), dim=0)
    assert torch.allclose(rays_tgt[:3, 0], d, atol=1e-5)
    assert rays_tgt[3:, 0].abs().max() < 1e-5
    # Input frame 1: origin = its centre in target-0 coordinates, scaled by 0.5 / 2.
    rel = torch.linalg.inv(target.c2w[0]) @ inp.c2w[1]
    dirs = torch.nn.functional.normalize(
        torch.einsum("ij,jhw->ihw", rel[:3, :3], torch.cat([d[:2] / d[2:], torch.ones(1, 4, 8)])),
        dim=0,
    )
    grid_in = inp[1].resize(8, 4)
    assert torch.allclose(grid_in.K, grid.K)
    moment = torch.linalg.cross(rel[:3, 3, None, None].expand(3, 4, 8), dirs, dim=0) * 0.25
    assert torch.allclose(rays_in[:3, 1], dirs, atol=1e-5)
    assert torch.allclose(rays_in[3:, 1], moment, atol=1e-5)
    clamped, _ = ray_maps(inp, target, input_grid=(8, 4), layout=PluckerLayout(moment_scale=100.0))
    assert clamped[3:].abs().max() == pytest.approx(1.0)


def test_latent_frames_use_the_last_frame_of_each_vae_group():
    assert latent_frame_indices(9, 4).tolist() == [0, 4, 8]
    assert latent_frame_indices(3, 1).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        latent_frame_indices(8, 4)


# ----------------------------------------------------------------------------- transformer
def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = AnyViewTransformer(in_channels=3, **TINY)
    args = [torch.randn(1, 3, 2, 8, 8), torch.tensor([300.0]), torch.randn(1, 3, 2, 8, 8)]
    args += [torch.randn(1, 6, 2, 8, 8), torch.randn(1, 6, 2, 8, 8)]
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        if checkpointing:
            model.enable_gradient_checkpointing()
        out = model(*args).sample
        assert out.shape == (1, 3, 2, 8, 8)
        (out**2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_from_pretrained_wan_copies_weights_and_zero_inits_new_channels(tmp_path):
    torch.manual_seed(0)
    wan = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
        out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32,
    )  # fmt: skip
    wan.save_pretrained(tmp_path / "wan")
    model = AnyViewTransformer.from_pretrained_wan(tmp_path / "wan", moment_scale=0.25)
    cfg = model.config
    assert (cfg.num_layers, cfg.num_attention_heads, cfg.in_channels, cfg.moment_scale) == (
        2, 2, 4, 0.25,
    )  # fmt: skip
    src, dst = wan.state_dict(), model.state_dict()
    for name in [
        "blocks.1.attn1.to_q.weight",
        "blocks.0.attn1.norm_k.weight",
        "blocks.1.ffn.net.0.proj.weight",
        "blocks.0.scale_shift_table",
        "condition_embedder.time_embedder.linear_2.weight",
        "condition_embedder.time_proj.bias",
        "proj_out.weight",
        "scale_shift_table",
    ]:
        assert torch.equal(src[name], dst[name]), name
    for stream in ("input", "target"):
        weight = dst[f"patch_embedding.{stream}.weight"]
        assert weight.shape == (24, 4 + 6, 1, 2, 2)
        assert torch.equal(weight[:, :4], src["patch_embedding.weight"])
        assert not weight[:, 4:].any()
    assert not dst["view_embedding"].any()
    # Zero-initialised ray channels: the fresh model ignores the cameras entirely.
    x, cond = torch.randn(1, 4, 2, 4, 4), torch.randn(1, 4, 2, 4, 4)
    with torch.no_grad():
        a = model(
            x, torch.tensor([500.0]), cond, torch.randn(1, 6, 2, 4, 4), torch.zeros(1, 6, 2, 4, 4)
        )
        b = model(
            x, torch.tensor([500.0]), cond, torch.zeros(1, 6, 2, 4, 4), torch.randn(1, 6, 2, 4, 4)
        )
    assert torch.equal(a.sample, b.sample)


# ----------------------------------------------------------------------------- pipeline
@pytest.fixture
def pixel_pipe():
    torch.manual_seed(0)
    return AnyViewPipeline(
        AnyViewTransformer(in_channels=3, **TINY), FlowMatchEulerDiscreteScheduler()
    )


def latent_pipeline(vae: str = "wan") -> AnyViewPipeline:
    """A tiny random pipeline in the latent space of a tiny "wan" VAE (per-channel latent
    statistics 0.1 and 2, so normalising matters) or "cogvideox" VAE (scaling factor 0.7); both
    compress time 4x and space 8x."""
    torch.manual_seed(0)
    if vae == "wan":
        model = AutoencoderKLWan(
            base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
            temperal_downsample=[False, True, True], latents_mean=[0.1] * 4, latents_std=[2.0] * 4,
        )  # fmt: skip
    else:
        model = AutoencoderKLCogVideoX(
            block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1,
            norm_num_groups=2, temporal_compression_ratio=4, scaling_factor=0.7,
        )  # fmt: skip
    transformer = AnyViewTransformer(in_channels=4, **{**TINY, "patch_size": (1, 2, 2)})
    return AnyViewPipeline(transformer, FlowMatchEulerDiscreteScheduler(), model)


def exact_velocity(x0: torch.Tensor, train_timesteps: int = 1000):
    """A stand-in transformer that knows the clean target `x0` (B, C, F, h, w): on the straight
    path x = (1 - sigma) x0 + sigma noise (timestep = sigma * `train_timesteps`) the velocity
    noise - x0 is (x - x0) / sigma exactly."""

    def forward(hidden_states, timestep, *conditioning, return_dict=True):
        sigma = timestep.float().reshape(-1, 1, 1, 1, 1) / train_timesteps
        velocity = (hidden_states.float() - x0) / sigma
        return AnyViewTransformerOutput(sample=velocity) if return_dict else (velocity,)

    return forward


def test_sampler_lands_on_the_target_when_the_velocity_is_exact(pixel_pipe, monkeypatch):
    """Sampling integrates the velocity training teaches (noise - x0) with the timestep scale
    training uses: given the exact velocity, the sampler ends on x0, and the training loss of
    that velocity is zero."""
    cams, video = orbit(3), torch.rand(3, 3, 16, 32)
    target = torch.rand(3, 3, 16, 32)  # the frames the target cameras should see
    x0 = pixel_pipe.encode_video(target.transpose(0, 1)[None])
    pixel_pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    monkeypatch.setattr(pixel_pipe.transformer, "forward", exact_velocity(x0))
    out = sample(pixel_pipe, video, cams, cams, steps=4)
    assert torch.allclose(out, target, atol=1e-4)
    rays_in, rays_tgt = pixel_pipe.camera_rays(cams, cams)
    batch = {
        "input_video": video.transpose(0, 1)[None], "target_video": target.transpose(0, 1)[None],
        "input_rays": rays_in[None], "target_rays": rays_tgt[None],
    }  # fmt: skip
    for sampling in ("uniform", "logit_normal"):
        loss = flow_matching_loss(
            pixel_pipe, exact_velocity(x0), batch, torch.Generator().manual_seed(0),
            timestep_sampling=sampling, shift=3.0,
        )  # fmt: skip
        assert float(loss) < 1e-8


def test_pixel_pipeline_shapes_and_target_cameras_reach_the_output(pixel_pipe):
    cams = orbit(3)
    video = torch.rand(3, 3, 16, 32)
    out = sample(pixel_pipe, video, cams, cams)
    assert out.shape == (3, 3, 16, 32) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    arr = pixel_pipe(video, cams, cams, num_inference_steps=2, output_type="np").frames
    assert arr.shape == (3, 16, 32, 3)
    assert torch.equal(sample(pixel_pipe, video, cams, cams), out)  # seeded: reproducible
    moved = sample(pixel_pipe, video, cams, orbit(3, phase=1.0))
    assert (moved - out).abs().mean() > 1e-3
    moved_input = sample(pixel_pipe, video, orbit(3, phase=-1.0), cams)
    assert (moved_input - out).abs().mean() > 1e-3
    wider = sample(pixel_pipe, video, cams, orbit(3, width=48, height=32))
    assert wider.shape == (3, 3, 32, 48)


def test_pipeline_rejects_bad_inputs_with_named_fields(pixel_pipe):
    cams, video = orbit(3), torch.rand(3, 3, 16, 32)
    with pytest.raises(InputError, match=r"target_cameras.*2 cameras for 3 video frames"):
        pixel_pipe(video, cams, cams[:2])
    with pytest.raises(InputError, match=r"input_cameras.*are 32x16 but the video is 32x24"):
        pixel_pipe(torch.rand(3, 3, 24, 32), cams, cams)
    with pytest.raises(InputError, match=r"target_cameras.*multiple of 4"):
        pixel_pipe(video, cams, orbit(3, width=30))
    with pytest.raises(InputError, match="output_type"):
        pixel_pipe(video, cams, cams, output_type="pil")


def test_latent_pipeline_with_wan_vae_round_trips_through_save_pretrained(tmp_path):
    pipe = latent_pipeline("wan")
    vae = pipe.vae
    assert pipe.compression == (4, 8)
    cams, video = orbit(5), torch.rand(5, 3, 16, 32)
    clip = video.transpose(0, 1)[None]
    with torch.no_grad():
        z = vae.encode(clip * 2 - 1).latent_dist.mode()
        assert torch.allclose(pipe.encode_video(clip), (z - 0.1) / 2.0, atol=1e-6)
        # decoding undoes the normalisation: the VAE's own decoding of z
        decoded = (vae.decode(z).sample / 2 + 0.5).clamp(0, 1)
        assert torch.allclose(pipe.decode_latents((z - 0.1) / 2.0), decoded, atol=1e-5)
    out = sample(pipe, video, cams, cams, steps=2)
    assert out.shape == (5, 3, 16, 32)
    with pytest.raises(InputError, match="1 \\+ 4k"):
        pipe(video[:4], cams[:4], cams[:4])
    pipe.save_pretrained(tmp_path / "p")
    loaded = AnyViewPipeline.from_pretrained(tmp_path / "p")
    assert isinstance(loaded.vae, AutoencoderKLWan)
    assert torch.allclose(sample(loaded, video, cams, cams, steps=2), out, atol=1e-5)


def test_novel_view_adapter_takes_any_size_and_frame_count(pixel_pipe, tmp_path):
    method = AnyViewNovelView(pixel_pipe, num_inference_steps=2, seed=1)
    cams_in, cams_tgt = orbit(3, width=30, height=18), orbit(3, width=22, height=14, phase=0.5)
    video = torch.rand(3, 3, 18, 30)
    out = method(video, cams_in, cams_tgt)
    assert out.shape == (3, 3, 14, 22)
    assert torch.equal(method(video, cams_in, cams_tgt), out)
    # Depth sets the scene scale (median 4 instead of 1): the model sees other moments.
    depth = torch.full((3, 18, 30), 4.0)
    assert not torch.equal(method(video, cams_in, cams_tgt, input_depth=depth), out)
    out = AnyViewNovelView(latent_pipeline("wan"), num_inference_steps=1)(
        torch.rand(3, 3, 18, 30), cams_in, cams_in
    )
    assert out.shape == (3, 3, 18, 30)


class _ReturnsATuple:
    """A pipeline that ignores `return_dict` (the adapter must say so, even under `python -O`)."""

    compression = (1, 1)
    transformer = SimpleNamespace(config={"patch_size": (1, 4, 4)})

    def __call__(self, video, *args, **kwargs):
        return (video,)


def test_novel_view_adapter_raises_on_a_pipeline_without_frames():
    cams = orbit(3)
    with pytest.raises(TypeError, match="_ReturnsATuple returned tuple, expected AnyViewPipeline"):
        AnyViewNovelView(_ReturnsATuple())(torch.rand(3, 3, 16, 32), cams, cams)


def test_cogvideox_vae_latent_space():
    pipe = latent_pipeline("cogvideox")
    vae = pipe.vae
    assert pipe.compression == (4, 8)
    cams, video = orbit(5), torch.rand(5, 3, 16, 32)
    clip = video.transpose(0, 1)[None]
    with torch.no_grad():
        z = vae.encode(clip * 2 - 1).latent_dist.mode()
        assert torch.allclose(pipe.encode_video(clip), z * 0.7, atol=1e-6)
        decoded = (vae.decode(z).sample / 2 + 0.5).clamp(0, 1)
        assert torch.allclose(pipe.decode_latents(z * 0.7), decoded, atol=1e-5)
    assert sample(pipe, video, cams, cams, steps=1).shape == (5, 3, 16, 32)


def test_load_anyview_pipeline_for_the_command_line(pixel_pipe, tmp_path):
    tiny = load_anyview_pipeline(None, preset="tiny")
    cams = orbit(2, width=32, height=16)
    assert sample(tiny, torch.rand(2, 3, 16, 32), cams, cams, steps=1).shape == (2, 3, 16, 32)
    with pytest.raises(MissingWeightsError, match=r"--model.*dreamjourney train anyview"):
        load_anyview_pipeline(None, preset="offline")
    with pytest.raises(MissingWeightsError, match=r"anyview.*not found.*nope"):
        load_anyview_pipeline(str(tmp_path / "nope"))
    pixel_pipe.save_pretrained(tmp_path / "p")
    loaded = load_anyview_pipeline(str(tmp_path / "p"))
    video = torch.rand(2, 3, 16, 32)
    assert torch.allclose(
        sample(loaded, video, cams, cams), sample(pixel_pipe, video, cams, cams), atol=1e-5
    )


def test_learned_method_runs_in_the_benchmark(tmp_path, pixel_pipe):
    from dreamjourney.eval.bench import run_bench
    from dreamjourney.pipelines.novel_view import build_method

    save_scene(synth_scene(7, cameras=2, frames=3, width=32, height=32), tmp_path / "scenes" / "s")
    pixel_pipe.save_pretrained(tmp_path / "model")
    opts = {"model": str(tmp_path / "model"), "num_inference_steps": 2}
    method = build_method("learned", **opts)
    results = run_bench(method, tmp_path / "scenes", tmp_path / "out", name="learned", videos=False)
    assert 0 < results["overall"]["psnr"] < 60


def test_cli_learned_gives_the_benchmark_frames(tmp_path, monkeypatch, capsys):
    """Same input, same frames: the command conditions the model as the benchmark (and training)
    do, with camera moves in units of the scene scale (here the input's depth, about 4)."""
    from dreamjourney.cli import main
    from dreamjourney.data import load_scene
    from dreamjourney.io.video import read_video, write_video
    from dreamjourney.pipelines.novel_view import build_method

    save_scene(synth_scene(2, cameras=2, frames=3, width=32, height=32), tmp_path / "s")
    scene = load_scene(tmp_path / "s")  # the frames as the command reads them (8-bit PNG)
    a, b = scene.streams.values()
    s = tmp_path / "s"
    monkeypatch.setattr(sys, "argv", [
        "dreamjourney", "anyview", str(s / a.name / "rgb"), "--method", "learned",
        "--preset", "tiny", "--steps", "2", "--seed", "4", "--out", str(tmp_path / "out"),
        "--input-cameras", str(s / a.name / "cameras.json"), "--depth", str(s / a.name / "depth.npy"),
        "--trajectory", str(s / b.name / "cameras.json"), "--target-frame", "world",
    ])  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    method = build_method("learned", preset="tiny", num_inference_steps=2, seed=4)
    bench = method(a.frames, a.cameras, b.cameras, input_depth=a.depth)
    write_video(tmp_path / "bench.mp4", bench)  # the same encoder, for byte-equal frames
    cli, _ = read_video(tmp_path / "out" / "video.mp4")
    assert torch.equal(cli, read_video(tmp_path / "bench.mp4")[0])
    # the scene scale is what makes them agree: the moments at scale 1 give other frames
    unscaled = method(a.frames, a.cameras, b.cameras)
    write_video(tmp_path / "unscaled.mp4", unscaled)
    assert (read_video(tmp_path / "unscaled.mp4")[0] - cli).abs().mean() > 0.01


# ----------------------------------------------------------------------------- training
def tiny_config(tmp_path: Path, **overrides):
    return load_train_config(TINY_CONFIG, output_dir=str(tmp_path), **overrides)


def test_training_noise_levels_follow_the_scheduler_shift():
    """sigma = shift u / (1 + (shift - 1) u) for u uniform: P(sigma <= s) = s / (shift - (shift - 1) s),
    the time shift the sampler's scheduler applies (more steps at high noise for shift > 1)."""
    sigmas = sample_sigmas(200_000, "uniform", 3.0, torch.Generator().manual_seed(0))
    assert 0 < sigmas.min() and sigmas.max() < 1
    for s in (0.25, 0.5, 0.75, 0.9):
        assert float((sigmas <= s).float().mean()) == pytest.approx(s / (3 - 2 * s), abs=0.005)
    centred = sample_sigmas(200_000, "logit_normal", 1.0, torch.Generator().manual_seed(0))
    assert float(centred.median()) == pytest.approx(0.5, abs=0.01)


def test_clip_pairs_follow_the_domain_kind(tmp_path):
    cfg = tiny_config(tmp_path)
    scenes = [synth_scene(0, cameras=3, frames=6, width=32, height=32)]
    for source in cfg.data:
        ds = ClipDataset(
            [(source, scenes)], frames=4, width=16, height=16, temporal_stride=1,
            spatial_stride=1, layout=PluckerLayout(), seed=3, length=6,
        )  # fmt: skip
        for i in range(6):
            item = ds[i]
            assert item["input_video"].shape == (3, 4, 16, 16)
            assert item["target_rays"].shape == (6, 4, 16, 16)
            same = torch.equal(item["input_video"], item["target_video"])
            assert same == (source.kind == "monocular")
        assert torch.equal(ds[2]["target_video"], ds[2]["target_video"])
    # Domains are drawn by weight (dynamic 2 : monocular 1): a third of clips are monocular.
    mixed = ClipDataset(
        [(source, scenes) for source in cfg.data], frames=2, width=8, height=8,
        temporal_stride=1, spatial_stride=4, layout=PluckerLayout(), seed=0, length=600,
    )  # fmt: skip
    same = [
        torch.equal(c["input_video"], c["target_video"]) for c in map(mixed.__getitem__, range(600))
    ]
    assert [s.weight for s in cfg.data] == [2.0, 1.0]
    assert sum(same) / len(same) == pytest.approx(1 / 3, abs=0.06)
    with pytest.raises(InputError, match="clips need 8 synchronised frames"):
        ClipDataset(
            [(cfg.data[0], scenes)], frames=8, width=16, height=16, temporal_stride=1,
            spatial_stride=1, layout=PluckerLayout(), seed=0, length=1,
        )  # fmt: skip


def test_tiny_training_lowers_validation_loss_and_reloads(tmp_path):
    cfg = tiny_config(tmp_path, steps=30, validate_every=30, checkpoint_every=30)
    result = train_anyview(cfg)
    assert result.step == 30 and len(result.losses) == 30
    (s0, first), (s1, last) = result.val_losses[0], result.val_losses[-1]
    assert (s0, s1) == (0, 30)
    assert last < 0.8 * first, result.val_losses
    assert (tmp_path / "checkpoints" / "step-0000030").is_dir()
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))
    loaded = AnyViewPipeline.from_pretrained(result.pipeline_dir)
    scene = synth_scene(5, cameras=2, frames=4, width=16, height=16)
    a, b = scene.streams.values()
    expected = sample(result.pipeline, a.frames, a.cameras, b.cameras)
    assert torch.allclose(sample(loaded, a.frames, a.cameras, b.cameras), expected, atol=1e-5)


def test_resume_continues_at_the_checkpoint_step_like_an_uninterrupted_run(tmp_path):
    full = train_anyview(tiny_config(tmp_path / "full", steps=6, checkpoint_every=3))
    first = train_anyview(tiny_config(tmp_path / "split", steps=3, checkpoint_every=3))
    assert first.losses == pytest.approx(full.losses[:3], abs=1e-6)
    resumed = train_anyview(
        tiny_config(tmp_path / "split", steps=6, checkpoint_every=3, resume="latest"),
    )
    assert resumed.resumed_from == tmp_path / "split" / "checkpoints" / "step-0000003"
    assert resumed.step == 6 and len(resumed.losses) == 3
    assert resumed.losses == pytest.approx(full.losses[3:], abs=1e-5)
    for p, q in zip(
        resumed.pipeline.transformer.parameters(),
        full.pipeline.transformer.parameters(),
        strict=True,
    ):
        assert torch.allclose(p, q, atol=1e-5)


class _Trap:
    """Unpickling this touches `path`: what an unsafe load of a planted file would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_resume_unpickles_nothing_it_does_not_trust(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train_anyview(tiny_config(run, steps=2, checkpoint_every=2))
    ckpt = run / "checkpoints" / "step-0000002"
    assert json.loads((ckpt / "trainer_state.json").read_text()) == {
        "format": "dreamjourney.train-checkpoint/1", "step": 2, "ema_optimization_step": 2,
    }  # fmt: skip
    assert (ckpt / "ema.safetensors").is_file() and not list(ckpt.glob("custom_checkpoint_*"))
    # a save cut short (no trainer_state.json) is not the latest checkpoint
    (run / "checkpoints" / "step-0000009").mkdir()
    sentinel = tmp_path / "unpickled"
    trap = pickle.dumps(_Trap(sentinel))
    pickle.loads(trap)  # the trap works ...
    assert sentinel.exists()
    sentinel.unlink()
    # ... but the resume path unpickles nothing freely: accelerate reads its RNG states with
    # weights_only=True (and carries on without them when they are refused)
    (ckpt / "random_states_0.pkl").write_bytes(trap)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    resumed = train_anyview(tiny_config(run, steps=3, checkpoint_every=3, resume="latest"))
    assert resumed.resumed_from == ckpt and resumed.step == 3
    assert calls and set(calls) == {True}, calls
    assert not sentinel.exists()
    # a trap where a state is needed, or a pickle of an object we no longer register, is refused
    for name, refusal in [("optimizer.bin", "[Ww]eights only"), ("custom_checkpoint_0.pkl", "")]:
        planted = ckpt / name
        kept = planted.read_bytes() if planted.exists() else None
        planted.write_bytes(trap)
        with pytest.raises(
            InputError, match=rf"step-0000002: cannot load the checkpoint: {refusal}"
        ):
            train_anyview(tiny_config(run, steps=4, resume=str(ckpt)))
        assert not sentinel.exists()
        if kept is None:
            planted.unlink()
        else:
            planted.write_bytes(kept)


def test_resume_refuses_a_directory_that_is_not_our_checkpoint(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "optimizer.bin").write_bytes(b"anything")
    with pytest.raises(
        InputError, match=r"foreign: not a dreamjourney training checkpoint \(trainer_state.json"
    ):
        train_anyview(tiny_config(tmp_path / "run", resume=str(foreign)))
    (foreign / "trainer_state.json").write_text(json.dumps({"format": "other/1", "step": 3}))
    with pytest.raises(InputError, match=r"trainer_state.json \[format\]: expected 'dreamjourney"):
        train_anyview(tiny_config(tmp_path / "run", resume=str(foreign)))
    state = {"format": "dreamjourney.train-checkpoint/1", "step": -3}
    (foreign / "trainer_state.json").write_text(json.dumps(state))
    with pytest.raises(InputError, match=r"\[step\]: must be a step count, got -3"):
        train_anyview(tiny_config(tmp_path / "run", resume=str(foreign)))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_config_formats_agree_and_errors_name_the_field(tmp_path):
    import tomllib
    import yaml

    raw = tomllib.loads(TINY_CONFIG.read_text())
    (tmp_path / "c.json").write_text(json.dumps(raw))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    configs = [
        load_train_config(p) for p in (TINY_CONFIG, tmp_path / "c.json", tmp_path / "c.yaml")
    ]
    assert configs[0] == configs[1] == configs[2]
    bad = {**raw, "data": [{**raw["data"][0], "weight": -1}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"bad.json \[data.0.weight\]: .*greater than 0"):
        load_train_config(tmp_path / "bad.json")
    both = {**raw, "validation": {**raw["validation"], "path": "scenes"}}
    (tmp_path / "both.json").write_text(json.dumps(both))
    with pytest.raises(InputError, match=r"validation.*exactly one of 'path' and 'synthetic'"):
        load_train_config(tmp_path / "both.json")
    with pytest.raises(InputError, match=r"resume.*no such checkpoint"):
        train_anyview(tiny_config(tmp_path, resume=str(tmp_path / "nope")))


def test_distributed_backend_is_passed_to_accelerate(tmp_path):
    try:
        import deepspeed  # noqa: F401

        pytest.skip("DeepSpeed is installed here")
    except ImportError:
        pass
    with pytest.raises(InputError, match=r"distributed.*DeepSpeed is not installed"):
        train_anyview(tiny_config(tmp_path, distributed="deepspeed"))


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    import tomllib

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**tomllib.loads(TINY_CONFIG.read_text()), "steps": "many"}))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "dreamjourney", "train", "anyview", "--config", str(bad)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bad.json" in lines[0] and "valid integer" in lines[0]
    assert not (tmp_path / "x").exists()


def test_latent_space_training_from_a_pretrained_wan(tmp_path):
    latent_pipeline("wan").vae.save_pretrained(tmp_path / "vae")
    for channels in (4, 8):
        WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
            in_channels=channels, out_channels=channels, text_dim=16, freq_dim=16, ffn_dim=32,
            num_layers=1, rope_max_seq_len=32,
        ).save_pretrained(tmp_path / f"wan{channels}")  # fmt: skip
    model = {
        "pretrained_wan": str(tmp_path / "wan4"),
        "vae": {"kind": "wan", "path": str(tmp_path / "vae")},
    }
    cfg = tiny_config(tmp_path / "run", steps=2, frames=5, width=32, height=32, model=model)
    result = train_anyview(cfg)
    assert result.step == 2 and result.pipeline.compression == (4, 8)
    loaded = AnyViewPipeline.from_pretrained(result.pipeline_dir)
    assert isinstance(loaded.vae, AutoencoderKLWan) and loaded.transformer.config.num_layers == 1
    bad = tiny_config(tmp_path / "bad", frames=5, width=32, height=32,
                      model={**model, "pretrained_wan": str(tmp_path / "wan8")})  # fmt: skip
    with pytest.raises(InputError, match=r"pretrained_wan.*8 channels.*has 4"):
        train_anyview(bad)
    odd = tiny_config(tmp_path / "odd", frames=4, width=32, height=32, model=model)
    with pytest.raises(InputError, match=r"config.*4 frames; the model needs 1 \+ 4k"):
        train_anyview(odd)


@pytest.mark.parametrize(
    ("model", "option"),
    [
        ({"pretrained_wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "pretrained_subfolder": "transformer"},
         "[model] pretrained_wan"),
        ({"vae": {"kind": "wan", "path": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "subfolder": "vae"}},
         "[model.vae] path"),
    ],
)  # fmt: skip
def test_training_finds_weights_offline_or_says_where_to_put_them(
    tmp_path, monkeypatch, model, option
):
    """Training resolves pretrained weights like every backend: local directory or the local
    hub cache, never a download at run time."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as info:
        train_anyview(tiny_config(tmp_path / "run", model=model))
    message = str(info.value)
    assert "'Wan-AI/Wan2.1-T2V-1.3B-Diffusers' not found" in message
    assert str(tmp_path / "hub") in message and f"`{option} = " in message


def test_cli_trains_from_scene_folders(tmp_path):
    import tomllib

    for i in range(2):
        save_scene(
            synth_scene(i, cameras=2, frames=5, width=16, height=16), tmp_path / "scenes" / f"s{i}"
        )
    raw = tomllib.loads(TINY_CONFIG.read_text())
    raw["data"] = [{"name": "folders", "kind": "dynamic", "path": str(tmp_path / "scenes")}]
    raw["validation"] = {**raw["data"][0], "name": "val"}
    (tmp_path / "c.json").write_text(json.dumps(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "dreamjourney",
        "train",
        "anyview",
        "--config",
        str(tmp_path / "c.json"),
    ]
    run = [*cmd, "--output-dir", str(tmp_path / "run"), "--steps", "2"]
    proc = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "trained to step 2" in proc.stdout and "validation loss at step 2" in proc.stdout
    assert (tmp_path / "run" / "pipeline" / "model_index.json").is_file()
    proc = subprocess.run([*run[:-1], "3", "--resume", "latest"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout and "step-0000002" in proc.stdout
    assert "trained to step 3" in proc.stdout
