"""World: fusing new pixels only, dynamic regions, voxel dedup, memory budget, files."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from plyfile import PlyData

from dreamjourney.camera import Cameras, look_at, pixel_centers
from dreamjourney.scene import World, load_ply
from scene_analytic import render_truth

SIZE = 48


def camera(eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, 3.0), time=0.0):
    c2w = look_at(torch.tensor(eye), torch.tensor(target))
    return Cameras.create(c2w, width=SIZE, height=SIZE, fov_deg=60, times=[time])


def frame(cam):
    image, depth = render_truth(cam)
    return image[0], depth[0]


def test_same_view_twice_adds_nothing():
    world = World()
    cam = camera()
    assert world.add_frame(*frame(cam), cam) == SIZE * SIZE
    assert world.add_frame(*frame(cam), cam) == 0
    assert len(world) == SIZE * SIZE


def test_new_view_adds_only_its_holes():
    world = World()
    start, moved = camera(), camera(eye=(0.6, 0.0, 0.0), target=(0.6, 0.0, 3.0))
    world.add_frame(*frame(start), start)
    holes = (~world.render(moved).mask[0]).sum().item()
    assert holes > 50
    assert world.add_frame(*frame(moved), moved, time=1.0) == holes
    assert world.render(moved).mask.all()
    assert (world.cloud.times == 1.0).sum().item() == holes


def test_path_returning_to_start_renders_the_start_view():
    world = World()
    start = camera()
    image, depth = frame(start)
    world.add_frame(image, depth, start)
    for i, x in enumerate([0.3, 0.6, 0.9, 0.6, 0.3]):
        cam = camera(eye=(x, -0.1 * i, 0.2), target=(0.0, 0.0, 3.0))
        world.add_frame(*frame(cam), cam, time=float(i + 1))
    back = world.render(start)
    assert back.mask.all()
    same = (back.image[0] == image).all(0) & (back.depth[0] == depth)
    # The only changes: one-pixel fringes where a face seen edge-on from the start was filled in
    # later, on the box's silhouette.
    d = depth[None, None]
    silhouette = (F.max_pool2d(d, 3, 1, 1) > 1.1 * -F.max_pool2d(-d, 3, 1, 1))[0, 0]
    assert (same | silhouette).all()
    assert (~same).sum() < 0.02 * SIZE * SIZE


def test_dynamic_mask_replaces_the_moving_region():
    world = World()
    cam = camera()
    image, depth = frame(cam)
    world.add_frame(image, depth, cam)
    moved = image.clone()
    moved[:, 10:20, 10:20] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    near = depth.clone()
    near[10:20, 10:20] = 1.0  # an object came close
    dynamic = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    dynamic[10:20, 10:20] = True
    assert world.add_frame(moved, near, cam, time=2.0, dynamic_mask=dynamic) == 100
    out = world.render(cam)
    assert torch.equal(out.image[0], moved)
    assert torch.allclose(out.depth[0], near)
    assert len(world) == SIZE * SIZE + 100  # the static background behind the object stayed
    # the object leaves: its points go, the background there is taken afresh from the frame
    assert world.add_frame(image, depth, cam, time=3.0, dynamic_mask=dynamic) == 100
    assert len(world) == SIZE * SIZE
    out = world.render(cam)
    assert torch.equal(out.image[0], image)
    assert (world.cloud.times == 3.0).sum() == 100


def test_voxel_grid_keeps_one_point_per_cell():
    cam = camera()
    image, depth = frame(cam)
    fine, coarse = World(), World(voxel_size=0.2)
    fine.add_frame(image, depth, cam)
    coarse.add_frame(image, depth, cam)
    assert 0 < len(coarse) < len(fine) // 3
    cells = torch.floor(coarse.cloud.points / 0.2).long()
    assert len(torch.unique(cells, dim=0)) == len(coarse)
    moved = camera(eye=(0.05, 0.0, 0.0), target=(0.05, 0.0, 3.0))
    before = len(coarse)
    coarse.add_frame(*frame(moved), moved, new_only=False)
    cells = torch.floor(coarse.cloud.points / 0.2).long()
    assert len(torch.unique(cells, dim=0)) == len(coarse) >= before


def test_memory_budget_holds_on_a_long_path_evicting_far_and_old_points():
    budget = 3000
    world = World(max_points=budget)
    for i in range(40):
        x = 0.25 * i
        cam = camera(eye=(x, 0.0, 0.0), target=(x, 0.0, 3.0), time=float(i))
        world.add_frame(*frame(cam), cam, time=float(i))
        assert len(world) <= budget
    assert world.evicted > 0
    # what is kept is what the newest camera needs: it still sees a mostly complete view
    assert world.render(cam).mask.float().mean() > 0.9
    assert world.cloud.times.min() > 20


def test_a_frame_adds_nothing_in_the_free_space_of_an_observed_view(tmp_path):
    # the photo sees a wall at z = 4 across its view; a generated frame from the side puts
    # surfaces at x = 0.5 and -2.5: what lies in front of the wall (seen from the photo) is in
    # the photo's free space and is moved back along its ray until it is behind the wall; what
    # lies behind the wall, or outside the photo's view, stays where it is
    photo = camera()
    wall = torch.full((SIZE, SIZE), 4.0)
    world = World()
    world.add_frame(torch.full((3, SIZE, SIZE), 0.5), wall, photo, new_only=False, observed=True)
    side = camera(eye=(3.0, 0.0, 5.0), target=(0.0, 0.0, 5.0))  # looks along -x
    depth = torch.full((SIZE, SIZE), 2.5)  # the plane x = 0.5
    depth[:, SIZE // 2 :] = 5.5  # x = -2.5: partly outside the photo's view
    uv = pixel_centers(SIZE, SIZE).reshape(1, -1, 2)

    def seen_by_photo(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (uv_photo,), (z_photo,) = photo.project(side.unproject(uv, d.reshape(1, -1)))
        return (z_photo > 0) & ((uv_photo >= 0) & (uv_photo < SIZE)).all(-1), z_photo

    inside, z_photo = seen_by_photo(depth)
    expected = inside & (z_photo < 4.0 * 0.95)
    assert expected.any() and (inside & ~expected).any() and (~inside).any()
    free = world.in_free_space(depth, side)
    assert torch.equal(free.reshape(-1), expected)

    moved = world.behind_free_space(depth, side)
    assert torch.equal(moved[~free], depth[~free]) and (moved[free] > depth[free]).all()
    assert not world.in_free_space(moved, side).any()
    inside, z_photo = seen_by_photo(moved)
    assert (z_photo[free.reshape(-1) & inside] >= 4.0 * 0.95).all()
    assert world.add_frame(torch.rand(3, SIZE, SIZE), depth, side, new_only=False) == SIZE**2
    assert len(world.observed) == 1  # a generated frame keeps no free space of its own
    world.save(tmp_path / "world.npz")
    loaded = World.load(tmp_path / "world.npz")
    assert torch.equal(loaded.in_free_space(depth, side), free)


def test_save_load_round_trip(tmp_path):
    world = World(max_points=10_000, voxel_size=0.01, age_horizon=3.0)
    cam = camera()
    world.add_frame(*frame(cam), cam, time=0.5)
    world.save(tmp_path / "world.npz")
    loaded = World.load(tmp_path / "world.npz")
    assert (loaded.max_points, loaded.voxel_size, loaded.age_horizon) == (10_000, 0.01, 3.0)
    for name in ("points", "colors", "radii", "times", "axes"):
        assert torch.equal(getattr(loaded.cloud, name), getattr(world.cloud, name))
    assert torch.equal(loaded.render(cam).image, world.render(cam).image)
    assert World.load(tmp_path / "world.npz").voxel_size == 0.01
    plain = World()
    plain.save(tmp_path / "empty.npz")
    assert World.load(tmp_path / "empty.npz").voxel_size is None
    # a world saved before observed views were kept loads with none
    with np.load(tmp_path / "world.npz") as data:
        older = {k: data[k] for k in data.files if not k.startswith("observed")}
    np.savez(tmp_path / "older.npz", **older)
    assert World.load(tmp_path / "older.npz").observed == []


def test_ply_has_positions_and_8bit_colours(tmp_path):
    world = World()
    cam = camera()
    world.add_frame(*frame(cam), cam, time=2.0)
    world.save_ply(tmp_path / "world.ply")
    ply = PlyData.read(str(tmp_path / "world.ply"))
    vertex = ply["vertex"]
    assert not ply.text and vertex.count == len(world)
    assert vertex["red"].dtype == np.uint8
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    np.testing.assert_allclose(xyz, world.cloud.points.numpy(), rtol=1e-6)
    back = load_ply(tmp_path / "world.ply")
    assert torch.allclose(back.colors, world.cloud.colors, atol=0.5 / 255 + 1e-6)
    assert (back.times == 2.0).all()


def test_median_depth():
    world = World()
    cam = camera()
    image, depth = frame(cam)
    world.add_frame(image, depth, cam)
    assert world.median_depth(cam) == pytest.approx(depth.median().item(), rel=1e-3)
    away = camera(target=(0.0, 0.0, -3.0))
    with pytest.raises(ValueError):
        world.median_depth(away)


def test_a_grown_cloud_appends_its_rasterizer_columns_exactly():
    from dreamjourney.scene import raster_cpu
    from dreamjourney.scene.pointcloud import PointCloud

    g = torch.Generator().manual_seed(3)

    def cloud(n: int, axes: bool = True) -> PointCloud:
        return PointCloud(
            torch.rand(n, 3, generator=g),
            torch.rand(n, 3, generator=g),
            torch.rand(n, generator=g),
            torch.rand(n, generator=g),
            torch.rand(n, 2, 3, generator=g) if axes else None,
        )

    for parts in ([cloud(50), cloud(7)], [cloud(50), cloud(0, axes=False), cloud(3)],
                  [cloud(20, axes=False), cloud(4, axes=False)], [cloud(20), cloud(4, axes=False)]):  # fmt: skip
        parts[0].columns()  # made, as a rendered world's are
        grown = PointCloud.cat(parts)
        fresh = raster_cpu.columns(grown.points, grown.radii, grown.axes)
        assert torch.equal(grown.columns(), fresh)
