"""Unproject and rasterize against an analytic, independently ray-traced scene."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dreamjourney.camera import Cameras, look_at
from dreamjourney.scene import (
    PointCloud,
    RenderOutput,
    raster,
    raster_cpu,
    rasterize,
    render_padded,
    unproject,
)
from scene_analytic import render_truth, seen_from, trace

SIZE = 64


def camera(c2w=None, size=SIZE):
    return Cameras.create(torch.eye(4) if c2w is None else c2w, width=size, height=size, fov_deg=60)


def psnr(a, b, mask):
    mse = ((a - b) ** 2).mean(0)[mask].mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


@pytest.fixture(params=["compiled", "torch"])
def kernel(request):
    """Both rasterizer kernels follow the same rules: the geometry tests run on each."""
    return request.param


@pytest.fixture(scope="module")
def source():
    cam = camera()
    image, depth = render_truth(cam)
    return cam, image[0], depth[0], unproject(image[0], depth[0], cam)


def test_unproject_lands_on_the_traced_surfaces(source):
    cam, _, _, cloud = source
    assert len(cloud) == SIZE * SIZE
    origins, dirs = cam.rays()
    _, hits, _ = trace(origins.reshape(-1, 3), dirs.reshape(-1, 3))
    assert torch.allclose(cloud.points, hits, atol=1e-4)
    # footprint half-axes are half-steps to the neighbouring pixels: in the source view they
    # span half a pixel along x and along y, whatever the slant of the surface
    uv0, _ = cam.project(cloud.points)
    for k in range(2):
        uv1, _ = cam.project(cloud.points + cloud.axes[:, k])
        step = (uv1 - uv0)[0]
        assert step[:, k].min() > 0.5 - 1e-3 and step[:, k].max() < 0.56
        assert step[:, 1 - k].abs().max() < 1e-3
    assert torch.allclose(cloud.radii, cloud.axes.norm(dim=-1).amax(-1))


def test_source_view_reproduces_the_image(source, kernel):
    cam, image, depth, cloud = source
    out = rasterize(cloud, cam, kernel=kernel)
    assert out.mask.all()
    assert psnr(out.image[0], image, out.mask[0]) > 50
    assert torch.allclose(out.depth[0], depth, rtol=1e-5)
    # every pixel is won by its own point
    assert torch.equal(out.index[0].reshape(-1), torch.arange(SIZE * SIZE))


@pytest.mark.parametrize(
    "eye", [(0.5, -0.3, -0.4), (-0.4, 0.2, 0.5), (0.45, 0.15, 1.0)], ids=["back", "side", "forward"]
)
def test_moved_camera_matches_ray_traced_truth(source, eye, kernel):
    src, _, _, cloud = source
    view = camera(look_at(torch.tensor(eye), torch.tensor([0.0, 0.0, 3.0])))
    truth, truth_depth = render_truth(view)
    origins, dirs = view.rays()
    _, hits, _ = trace(origins.reshape(-1, 3), dirs.reshape(-1, 3))
    visible = seen_from(hits, src).reshape(SIZE, SIZE)  # GT surface seen by the source camera
    out = rasterize(cloud, view, kernel=kernel)
    known = out.mask[0]
    both = visible & known
    assert psnr(out.image[0], truth[0], both) > 30
    # depth matches except on one-pixel fringes along silhouettes (depth jumps in the truth)
    d = truth_depth[None]
    silhouette = (F.max_pool2d(d, 3, 1, 1) > 1.1 * -F.max_pool2d(-d, 3, 1, 1))[0, 0]
    rel = (out.depth[0] / truth_depth[0] - 1).abs()
    assert (rel[both & ~silhouette] < 0.02).all()
    # holes exactly where the truth shows surfaces the source never saw, up to one pixel at edges
    v = visible.float()[None, None]
    edge = (F.max_pool2d(v, 3, 1, 1) != -F.max_pool2d(-v, 3, 1, 1))[0, 0]
    assert not ((known != visible) & ~edge).any()
    assert (~known & visible).sum() < 0.01 * visible.sum()
    assert (~visible).sum() > 50  # the view does reveal unseen surfaces


def test_disocclusion_is_not_smeared_over(source, kernel):
    """A sideways move opens a gap beside the box that is wider than a splat: it stays a hole."""
    src, _, _, cloud = source
    view = camera(look_at(torch.tensor([0.8, 0.0, 0.0]), torch.tensor([0.8, 0.0, 4.0])))
    out = rasterize(cloud, view, kernel=kernel)
    origins, dirs = view.rays()
    _, hits, _ = trace(origins.reshape(-1, 3), dirs.reshape(-1, 3))
    unseen = ~seen_from(hits, src).reshape(SIZE, SIZE)
    inner = -F.max_pool2d(-unseen.float()[None, None], 3, 1, 1)[0, 0] > 0  # 1 px inside
    assert inner.sum() > 40
    assert not out.mask[0][inner].any()


def test_nearest_point_wins_regardless_of_order(kernel):
    cam = camera(size=8)
    pts = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.5]])
    colors = torch.eye(3)
    for perm in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        cloud = PointCloud(pts[perm], colors[perm], torch.full((3,), 0.05), torch.zeros(3))
        out = rasterize(cloud, cam, kernel=kernel)
        centre = (slice(None), 4, 4)
        assert out.depth[0][4, 4].item() == pytest.approx(2.0)
        assert torch.equal(out.image[0][centre], colors[1])
        assert out.index[0, 4, 4].item() == perm.index(1)


def test_splat_grows_when_seen_from_nearer(kernel):
    cam = camera(size=32)
    cloud = PointCloud(
        torch.tensor([[0.0, 0.0, 4.0]]), torch.ones(1, 3), torch.tensor([0.2]), torch.zeros(1)
    )
    fx = cam.fx[0].item()
    far = rasterize(cloud, cam, kernel=kernel).mask[0]
    c2w = torch.eye(4)
    c2w[2, 3] = 2.0  # half the distance: twice the size
    near = rasterize(cloud, camera(c2w, 32), kernel=kernel).mask[0]
    # covered pixels: centres within f * r / z of the projected centre (16, 16)
    assert far.sum().item() == (2 * math.floor(fx * 0.2 / 4 + 0.5)) ** 2
    assert near.sum().item() == (2 * math.floor(fx * 0.2 / 2 + 0.5)) ** 2


def test_wide_splat_is_clipped_to_the_image(monkeypatch, kernel):
    """A 10-pixel-wide splat centred at pixel (0.25, 0.25) covers the 5x5 pixels of the image
    whose centres it reaches, and its box makes candidates for those pixels alone (counted in
    the torch kernel; the compiled one walks the same clipped box)."""
    cam = camera(size=16)
    fx, cx = cam.fx[0].item(), cam.K[0, 0, 2].item()
    z = 2.0
    xy = (0.25 - cx) * z / fx
    cloud = PointCloud(
        torch.tensor([[xy, xy, z]]), torch.ones(1, 3), torch.tensor([5.0 * z / fx]), torch.zeros(1)
    )
    counts = []
    real = raster._box_candidates

    def counting(*args, **kwargs):
        out = real(*args, **kwargs)
        counts.append(len(out[0]))
        return out

    monkeypatch.setattr(raster, "_box_candidates", counting)
    mask = rasterize(cloud, cam, kernel=kernel).mask[0]
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[:5, :5] = True
    assert torch.equal(mask, expected)
    assert counts == ([25] if kernel == "torch" else [])


def test_points_behind_or_outside_render_nothing(kernel):
    cam = camera(size=16)
    cloud = PointCloud(
        torch.tensor([[0.0, 0.0, -2.0], [50.0, 0.0, 2.0]]), torch.ones(2, 3), torch.full((2,), 0.1),
        torch.zeros(2),
    )  # fmt: skip
    out = rasterize(cloud, cam, background=0.25, kernel=kernel)
    assert not out.mask.any() and (out.index == -1).all() and (out.depth == 0).all()
    assert (out.image == 0.25).all()
    assert not rasterize(PointCloud.empty(), cam, kernel=kernel).mask.any()


@pytest.mark.parametrize("n", [500, 2000], ids=["few", "many"])
def test_splats_off_the_image_or_behind_make_no_candidates(source, monkeypatch, n):
    """Points beside, behind or at the camera, with footprints capped at MAX_SPLAT_PX, cost
    at most one (dumped) candidate each, or none when they are many (they are dropped), and
    change nothing in the render (the torch kernel, which makes candidates as tensors)."""
    cam, _, _, cloud = source
    g = torch.Generator().manual_seed(0)
    side = torch.rand(n, generator=g) * 0.2 + 0.05  # 0.05-0.25 units from the optical axis...
    ang = torch.rand(n, generator=g) * 2 * math.pi
    z = torch.rand(n, generator=g) * 0.04 - 0.02  # ...and about level with the camera
    beside = torch.stack([side * ang.cos(), side * ang.sin(), z], 1)
    big = PointCloud(beside, torch.rand(n, 3, generator=g), torch.full((n,), 0.05), torch.zeros(n))
    off = PointCloud(beside, big.colors, big.radii, big.times, torch.zeros(n, 2, 3) + 0.03)
    counts = []

    def counting(make):
        def wrapped(*args, **kwargs):
            out = make(*args, **kwargs)
            counts.append(len(out[0]))
            return out

        return wrapped

    for name in ("_candidates", "_box_candidates"):
        monkeypatch.setattr(raster, name, counting(getattr(raster, name)))
    assert not rasterize(big, cam, kernel="torch").mask.any()
    assert sum(counts) == 0
    counts.clear()
    alone = rasterize(cloud, cam, kernel="torch")
    visible = sum(counts)
    counts.clear()
    both = rasterize(PointCloud.cat([cloud, off]), cam, kernel="torch")
    assert sum(counts) == (visible + n if 4 * n <= len(cloud) + n else visible)
    assert torch.equal(both.index, alone.index) and torch.equal(both.image, alone.image)


def test_batched_cameras_equal_single_renders(source, kernel):
    _, _, _, cloud = source
    cams = Cameras.cat(
        [camera(), camera(look_at(torch.tensor([0.3, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0])))]
    )
    batch = rasterize(cloud, cams, kernel=kernel)
    for i in range(2):
        single = rasterize(cloud, cams[i], kernel=kernel)
        assert torch.equal(batch.index[i], single.index[0])
        assert torch.equal(batch.image[i], single.image[0])


def test_render_padded_is_a_wider_view_of_the_same_camera(source, kernel):
    cam, _, _, cloud = source
    out = render_padded(cloud, cam, 5, kernel=kernel)
    assert out.image.shape == (1, 3, SIZE + 10, SIZE + 10)
    assert torch.equal(out.crop(5).image, rasterize(cloud, cam, kernel=kernel).image)
    assert not out.mask[0, :4].any()  # the source saw nothing beyond its frame


def test_unproject_skips_masked_and_invalid_pixels():
    cam = camera(size=4)
    depth = torch.full((4, 4), 2.0)
    depth[0, 0] = 0.0
    depth[0, 1] = float("nan")
    depth[0, 2] = -1.0
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[3, 3] = False
    cloud = unproject(torch.rand(3, 4, 4), depth, cam, mask=mask, time=1.5)
    assert len(cloud) == 12
    assert (cloud.times == 1.5).all()
    ray = unproject(torch.rand(3, 4, 4), torch.full((4, 4), 2.0), cam, depth_kind="ray")
    assert torch.allclose(ray.points.norm(dim=-1), torch.full((16,), 2.0))


def test_grazing_ground_plane_stays_closed_when_approached(kernel):
    """Rows of a ground plane seen at a grazing angle are far apart in the world; footprints
    follow that spacing, so walking forward leaves no stripes of holes."""
    height, step = 0.1, 1.0  # camera height above the ground, then a walk forward

    def ground_hits(cam):
        _, dirs = cam.rays()
        dirs = dirs.reshape(-1, 3)
        t = torch.where(dirs[:, 1] > 1e-6, height / dirs[:, 1], torch.inf)  # y is down
        return t, dirs * torch.where(t.isfinite(), t, 0.0)[:, None]

    cam = camera()
    t, hits = ground_hits(cam)
    depth = torch.where(t < 200, hits[:, 2], 0.0).reshape(SIZE, SIZE)
    cloud = unproject(torch.rand(3, SIZE, SIZE), depth, cam)
    c2w = torch.eye(4)
    c2w[2, 3] = step
    moved = camera(c2w)
    out = rasterize(cloud, moved, kernel=kernel)
    t, hits = ground_hits(moved)
    z_source = hits[:, 2] + step
    bottom = 1.02 * height / math.tan(math.radians(30))  # the nearest ground the source saw
    seen = (t.isfinite() & (z_source < 200) & (z_source > bottom)).reshape(SIZE, SIZE)
    assert seen.sum() > 1000
    assert (~out.mask[0] & seen).sum() < 0.01 * seen.sum()


def test_cloud_cat_and_indexing_keep_footprint_axes_only_when_all_have_them(source):
    _, _, _, cloud = source
    half = cloud[torch.arange(len(cloud)) % 2 == 0]
    assert half.axes is not None and len(half.axes) == len(half)
    both = PointCloud.cat([PointCloud.empty(), half, cloud[:10]])
    assert both.axes is not None and torch.equal(both.axes[: len(half)], half.axes)
    plain = PointCloud(cloud.points[:5], cloud.colors[:5], cloud.radii[:5], cloud.times[:5])
    assert PointCloud.cat([cloud, plain]).axes is None
    with pytest.raises(ValueError):
        PointCloud(cloud.points, cloud.colors, cloud.radii, cloud.times, cloud.axes[:-1])


def kernel_test_scenes(cloud):
    """(cloud, camera) pairs that exercise every branch of both kernels: footprint axes and
    spheres, one-pixel, sub-pixel and capped splats, points behind, beside and off the image."""
    g = torch.Generator().manual_seed(1)
    spheres = PointCloud(cloud.points, cloud.colors, cloud.radii, cloud.times)
    n = 3000
    scattered = PointCloud(
        torch.randn(n, 3, generator=g) * torch.tensor([1.5, 1.5, 2.0]) + torch.tensor([0, 0, 2.0]),
        torch.rand(n, 3, generator=g),
        torch.rand(n, generator=g) * 0.05,
        torch.zeros(n),
        torch.randn(n, 2, 3, generator=g) * 0.02,
    )
    views = [
        camera(),
        camera(look_at(torch.tensor([0.5, -0.3, -0.4]), torch.tensor([0.0, 0.0, 3.0]))),
        camera(look_at(torch.tensor([0.45, 0.15, 1.6]), torch.tensor([0.0, 0.0, 3.0])), 48),
    ]
    return [(c, v) for c in (cloud, spheres, scattered) for v in views]


def test_kernels_give_the_same_pixels(source):
    _, _, _, cloud = source
    for scene, view in kernel_test_scenes(cloud):
        a = rasterize(scene, view, kernel="compiled")
        b = rasterize(scene, view, kernel="torch")
        same = a.index == b.index
        # they may differ only where two candidates are within float32 rounding of each other
        assert same.float().mean() > 0.999
        assert torch.equal(a.image[:, :, same[0]], b.image[:, :, same[0]])
        # the same point's z-depth, up to the last bits: torch projects with a BLAS matmul whose
        # summation order and FMA use depend on the CPU (AVX-512 BLAS differs by 1 ulp)
        torch.testing.assert_close(a.depth[same], b.depth[same], rtol=5e-7, atol=0)


def test_compiled_kernel_does_not_depend_on_how_the_points_are_split(source):
    _, _, _, cloud = source
    for scene, view in kernel_test_scenes(cloud)[::2]:
        renders = []
        for parts in (1, 2, 7):
            out = RenderOutput(
                torch.empty(1, 3, view.height, view.width),
                torch.empty(1, view.height, view.width),
                torch.empty(0),
                torch.empty(1, view.height, view.width, dtype=torch.long),
            )
            raster_cpu.render_cpu(
                scene.columns(), scene.colors, view.K[0], view.w2c[0], out.image[0],
                out.depth[0], out.index[0], background=0.0, near=raster.NEAR,
                max_splat_px=raster.MAX_SPLAT_PX, depth_tolerance=raster.DEPTH_TOLERANCE,
                parts=parts,
            )  # fmt: skip
            renders.append(out)
        for out in renders[1:]:
            assert torch.equal(out.index, renders[0].index)
            assert torch.equal(out.depth, renders[0].depth)
            assert torch.equal(out.image, renders[0].image)


def test_compiled_kernel_culls_broken_points(source):
    """A point with a NaN or infinite coordinate or footprint covers nothing (it is never
    written out of bounds) and leaves the rest of the render as it was."""
    cam, _, _, cloud = source
    bad = PointCloud(
        torch.tensor([[float("nan"), 0, 2], [0, float("inf"), 2], [0, 0, 2], [0.1, 0, 2]]),
        torch.zeros(4, 3),
        torch.full((4,), 0.01),
        torch.zeros(4),
        torch.tensor([0.01, float("nan"), float("-inf"), 0.01])[:, None, None].expand(4, 2, 3),
    )
    alone = rasterize(cloud, cam, kernel="compiled")
    both = rasterize(PointCloud.cat([cloud, bad[:3]]), cam, kernel="compiled")
    assert torch.equal(both.index, alone.index)
    sane = rasterize(bad[3:], cam, kernel="compiled").mask
    everything = rasterize(bad, cam, kernel="compiled")
    assert sane.any() and torch.equal(everything.mask, sane)
    assert (everything.index[sane] == 3).all()


def test_point_columns_are_made_once_per_cloud(source):
    _, _, _, cloud = source
    cols = cloud.columns()
    assert cols is cloud.columns()
    expected = torch.cat([cloud.points.T, cloud.radii[None], cloud.axes.reshape(-1, 6).T])
    assert torch.equal(cols, expected)
    plain = PointCloud(cloud.points, cloud.colors, cloud.radii, cloud.times).columns()
    assert torch.equal(plain, expected[:4])


def test_compiled_kernel_leaves_torch_thread_count_alone():
    """numba's OpenMP pool shares the OpenMP runtime with torch; starting it (first render in
    a process) must not change how many threads torch uses."""
    code = (
        "import torch\n"
        "from dreamjourney.camera import Cameras\n"
        "from dreamjourney.scene import PointCloud, rasterize\n"
        "torch.set_num_threads(1)\n"
        "cloud = PointCloud(torch.rand(9, 3) + 1, torch.rand(9, 3), torch.full((9,), 0.1), "
        "torch.zeros(9))\n"
        "rasterize(cloud, Cameras.create(torch.eye(4), width=8, height=8, fov_deg=60.0))\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["1"]


def test_warm_up_prepares_exactly_what_rendering_uses():
    """`warm_up` (what the commands call under a "loading" message) compiles or loads the
    same specializations a render then uses: rendering after it compiles nothing more."""
    code = (
        "import json\n"
        "import torch\n"
        "from dreamjourney.camera import Cameras\n"
        "from dreamjourney.scene import PointCloud, raster_cpu, rasterize, unproject\n"
        "raster_cpu.warm_up()\n"
        "kernels = (raster_cpu._pack, raster_cpu._splat_pass, raster_cpu._resolve)\n"
        "before = [len(k.signatures) for k in kernels]\n"
        "cam = Cameras.create(torch.eye(4), width=16, height=12, fov_deg=60.0)\n"
        "cloud = unproject(torch.rand(3, 12, 16), torch.full((12, 16), 2.0), cam)\n"
        "spheres = PointCloud(cloud.points, cloud.colors, cloud.radii, cloud.times)\n"
        "assert rasterize(cloud, cam).mask.all() and rasterize(spheres, cam).mask.all()\n"
        "print(json.dumps([before, [len(k.signatures) for k in kernels]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert after == before and min(before) > 0


def test_compiled_kernel_refuses_a_cloud_off_the_cpu():
    cloud = PointCloud.empty(device="meta")  # stands in for a CUDA cloud: no data is touched
    with pytest.raises(ValueError, match="compiled kernel runs on the CPU, the cloud is on meta"):
        rasterize(cloud, camera(size=4), kernel="compiled")
