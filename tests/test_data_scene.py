"""The 4D scene format, the AnyView and DyCheck adapters, and their error messages."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.data import (
    detect_layout,
    load_any_scene,
    load_anyview_scene,
    load_dycheck_scene,
    load_scene,
    save_scene,
    synth_scene,
)
from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8


@pytest.fixture(scope="module")
def scene():
    return synth_scene(5, cameras=3, frames=3, width=40, height=32)


def quantised(frames):
    return torch.from_numpy(np.stack([to_uint8(f) for f in frames])).permute(0, 3, 1, 2) / 255.0


def assert_same_scene(a, b, *, check_scale=True):
    assert a.name == b.name and a.fps == b.fps and a.input_camera == b.input_camera
    assert a.camera_names == b.camera_names
    if check_scale:
        assert a.scene_scale == pytest.approx(b.scene_scale)
    for name in a.camera_names:
        sa, sb = a.streams[name], b.streams[name]
        assert torch.equal(quantised(sa.frames), sb.frames)  # PNG is exact at 8 bits
        assert torch.equal(sa.depth, sb.depth)
        assert torch.allclose(sa.cameras.K, sb.cameras.K)
        assert torch.allclose(sa.cameras.c2w, sb.cameras.c2w, atol=1e-6)
        assert torch.allclose(sa.cameras.times, sb.cameras.times)


def test_native_round_trip(scene, tmp_path):
    save_scene(scene, tmp_path / "s")
    assert detect_layout(tmp_path / "s") == "native"
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(
        [*scene.camera_names, "scene.json"]
    )
    assert_same_scene(scene, load_scene(tmp_path / "s"))
    assert_same_scene(scene, load_any_scene(tmp_path / "s"))


def test_anyview_round_trip_and_layout(scene, tmp_path):
    save_scene(scene, tmp_path / "a", layout="anyview")
    root = tmp_path / "a"
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["info"]["storage"] == "frames" and meta["cameras"] == scene.camera_names
    assert meta["resolution"] == [32, 40] and meta["num_frames"] == 3
    assert meta["extrinsics"]["transform"] == "cam2world"
    assert meta["specific"]["roles"]["input"] == scene.input_camera
    cam = scene.camera_names[1]
    assert (root / "rgb" / cam / "0000000002.png").is_file()
    with np.load(root / "lowdim" / cam / "0000000002.npz") as npz:
        assert set(npz.files) >= {"intrinsics", "extrinsics", "timestep", "camera"}
        assert int(npz["timestep"]) == 2 and str(npz["camera"]) == cam
        assert np.allclose(npz["extrinsics"], scene.streams[cam].cameras.c2w[2].numpy(), atol=1e-6)
    assert detect_layout(root) == "anyview"
    assert_same_scene(scene, load_anyview_scene(root))


def test_anyview_world2cam_and_default_roles(scene, tmp_path):
    root = tmp_path / "a"
    save_scene(scene, root, layout="anyview")
    meta = json.loads((root / "metadata.json").read_text())
    meta["extrinsics"]["transform"] = "world2cam"
    del meta["specific"]
    (root / "metadata.json").write_text(json.dumps(meta))
    for npz_path in (root / "lowdim").rglob("*.npz"):
        with np.load(npz_path) as npz:
            data = dict(npz)
        data["extrinsics"] = np.linalg.inv(data["extrinsics"])
        np.savez(npz_path, **data)
    loaded = load_anyview_scene(root)
    # without roles the first camera is the input (no "cam1" here); scale from the depth
    assert loaded.input_camera == scene.camera_names[0]
    assert loaded.scene_scale == pytest.approx(scene.scene_scale)
    for name in scene.camera_names:
        assert torch.allclose(
            loaded.streams[name].cameras.c2w, scene.streams[name].cameras.c2w, atol=1e-5
        )


def test_anyview_videos_storage(scene, tmp_path):
    from dreamjourney.io.video import write_video

    root = tmp_path / "v"
    names = scene.camera_names
    for name in names:
        s = scene.streams[name]
        write_video(root / "rgb" / f"{name}.mp4", s.frames, fps=scene.fps)
        (root / "lowdim").mkdir(exist_ok=True)
        np.savez(
            root / "lowdim" / f"{name}.npz",
            intrinsics=s.cameras.K.numpy(),
            extrinsics=s.cameras.c2w.numpy(),
            timestep=np.arange(len(s)),
        )
    meta = {"info": {"storage": "videos"}, "cameras": names, "framerate": 12}
    (root / "metadata.json").write_text(json.dumps(meta))
    loaded = load_any_scene(root)
    s = loaded.streams[names[2]]
    assert s.frames.shape == (3, 3, 32, 40) and s.depth is None
    assert torch.allclose(s.cameras.times, torch.tensor([0, 1 / 12, 2 / 12]))
    assert torch.allclose(s.cameras.c2w, scene.streams[names[2]].cameras.c2w)
    assert (s.frames - scene.streams[names[2]].frames).abs().mean() < 0.05  # lossy H.264


def _dycheck_camera(R, position, f, cx, cy, size):
    return {
        "orientation": R.tolist(),
        "position": position.tolist(),
        "focal_length": f,
        "pixel_aspect_ratio": 1.25,
        "principal_point": [cx, cy],
        "image_size": size,
        "skew": 0.0,
        "radial_distortion": [0.0, 0.0, 0.0],
        "tangential_distortion": [0.0, 0.0],
    }


def _rotation(yaw):
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def write_dycheck(root, *, cams=(0, 1), times=(0, 1, 2)):
    """A DyCheck iPhone directory at 1x = 64x48 with only a 2x (32x24) rgb and depth folder."""
    (root / "camera").mkdir(parents=True)
    (root / "rgb" / "2x").mkdir(parents=True)
    (root / "depth" / "2x").mkdir(parents=True)
    (root / "extra.json").write_text(json.dumps({"factor": 2, "fps": 15.0}))
    truth = {}
    for cam in cams:
        for t in times:
            R = _rotation(0.3 * cam + 0.05 * t)
            position = np.array([0.5 * cam, -0.2, -3.0 + 0.1 * t])
            frame = f"{cam}_{t:05d}"
            data = _dycheck_camera(R, position, 60.0, 33.0, 23.0, [64, 48])
            (root / "camera" / f"{frame}.json").write_text(json.dumps(data))
            rgb = np.full((24, 32, 3), 40 * cam + 10 * t, dtype=np.uint8)
            Image.fromarray(rgb).save(root / "rgb" / "2x" / f"{frame}.png")
            np.save(
                root / "depth" / "2x" / f"{frame}.npy", np.full((24, 32, 1), 2.0 + t, np.float32)
            )
            truth[frame] = (R, position)
    return truth


def test_dycheck_adapter_geometry(tmp_path):
    truth = write_dycheck(tmp_path / "d")
    assert detect_layout(tmp_path / "d") == "dycheck"
    scene = load_any_scene(tmp_path / "d")
    assert scene.camera_names == ["0", "1"] and scene.input_camera == "0" and scene.fps == 15.0
    assert scene.scene_scale == pytest.approx(2.0)
    s = scene.streams["1"]
    assert s.frames.shape == (3, 3, 24, 32) and s.depth.shape == (3, 24, 32)
    assert torch.allclose(s.cameras.times, torch.tensor([0.0, 1 / 15, 2 / 15]))
    assert s.frames[2, 0, 0, 0].item() == pytest.approx(60 / 255)
    # a world point projected the DyCheck way (1x pixels, w2c = [R | -R position]) then halved
    X = np.array([0.3, 0.4, 2.0])
    R, position = truth["1_00002"]
    x = R @ (X - position)
    u1 = 60.0 * x[0] / x[2] + 33.0
    v1 = 60.0 * 1.25 * x[1] / x[2] + 23.0
    uv, z = s.cameras[2].project(torch.tensor(X[None], dtype=torch.float32))
    assert torch.allclose(uv[0, 0], torch.tensor([u1 / 2, v1 / 2], dtype=torch.float32), atol=1e-4)
    assert z.item() == pytest.approx(x[2], abs=1e-5)


def test_dycheck_bad_camera_names_file_and_field(tmp_path):
    write_dycheck(tmp_path / "d")
    path = tmp_path / "d" / "camera" / "1_00001.json"
    data = json.loads(path.read_text())
    data["orientation"] = [[1, 0, 0], [0, 2, 0], [0, 0, 1]]
    path.write_text(json.dumps(data))
    with pytest.raises(
        InputError, match=r"1_00001\.json \[orientation\]: rotation is not orthonormal"
    ):
        load_dycheck_scene(tmp_path / "d")
    data["orientation"] = np.eye(3).tolist()
    data["radial_distortion"] = [0.1, 0, 0]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"1_00001\.json \[radial_distortion\]: non-zero"):
        load_dycheck_scene(tmp_path / "d")


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"fps": None}, r"scene\.json \[fps\]: must be a finite number"),
        ({"scene_scale": -1}, r"scene\.json \[scene_scale\]: must be positive"),
        ({"input_camera": "nope"}, r"scene\.json \[input_camera\]: 'nope' is not one of"),
        ({"cameras": ["ok", "../x"]}, r"scene\.json \[cameras\[1\]\]: camera name '\.\./x'"),
        ({"format": "other/1"}, r"scene\.json \[format\]: expected 'dreamjourney\.scene/1'"),
    ],
)
def test_bad_scene_json_names_file_and_field(scene, tmp_path, changes, pattern):
    save_scene(scene, tmp_path / "s")
    _edit_json(tmp_path / "s" / "scene.json", **changes)
    with pytest.raises(InputError, match=pattern):
        load_scene(tmp_path / "s")


def test_bad_stream_files_name_file(scene, tmp_path):
    root = tmp_path / "s"
    save_scene(scene, root)
    cam = scene.camera_names[1]
    np.save(root / cam / "depth.npy", np.ones((2, 32, 40), np.float32))
    with pytest.raises(InputError, match=rf"{cam}/depth\.npy: depth has shape \(2, 32, 40\)"):
        load_scene(root)
    np.save(root / cam / "depth.npy", -np.ones((3, 32, 40), np.float32))
    with pytest.raises(InputError, match=r"depth\.npy: depth has \d+ negative values"):
        load_scene(root)
    np.save(root / cam / "depth.npy", np.ones((3, 32, 40), np.float32))
    frame = root / cam / "rgb" / "00001.png"
    kept = frame.read_bytes()
    frame.unlink()
    with pytest.raises(InputError, match=rf"{cam}/rgb: 2 PNG frames but 3 cameras"):
        load_scene(root)
    frame.write_bytes(kept)
    _edit_json(root / cam / "cameras.json", width=41)
    with pytest.raises(InputError, match=r"00000\.png: image is 40x32, expected 41x32"):
        load_scene(root)


def test_bad_anyview_npz_names_file_and_field(scene, tmp_path):
    root = tmp_path / "a"
    save_scene(scene, root, layout="anyview")
    npz_path = root / "lowdim" / scene.camera_names[0] / "0000000001.npz"
    np.savez(npz_path, extrinsics=np.eye(4))
    with pytest.raises(InputError, match=r"0000000001\.npz \[intrinsics\]: is missing"):
        load_anyview_scene(root)
    np.savez(npz_path, extrinsics=np.diag([1.0, 1.0, -1.0, 1.0]), intrinsics=np.eye(3))
    with pytest.raises(
        InputError, match=r"0000000001\.npz \[extrinsics\]: rotation is a reflection"
    ):
        load_anyview_scene(root)


def test_save_refuses_non_empty_folder_and_keeps_it(scene, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="exists and is not empty"):
        save_scene(scene, target)
    assert (target / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary left over
    save_scene(scene, target, overwrite=True)
    assert not (target / "precious.txt").exists() and load_scene(target).name == scene.name


def test_load_any_scene_rejects_unknown_folder(tmp_path):
    with pytest.raises(InputError, match=r"not a scene: expected scene\.json"):
        load_any_scene(tmp_path)


@pytest.mark.parametrize(
    ("layout", "meta"), [("native", "scene.json"), ("anyview", "metadata.json")]
)
def test_metadata_that_is_not_a_json_object_names_the_file(scene, tmp_path, layout, meta):
    save_scene(scene, tmp_path / "s", layout=layout)
    (tmp_path / "s" / meta).write_text('["a", "list"]')
    with pytest.raises(InputError, match=rf"s/{meta}: must be a JSON object$"):
        load_any_scene(tmp_path / "s")
    (tmp_path / "s" / meta).write_text('{"cameras": [')
    with pytest.raises(InputError, match=rf"s/{meta}: not valid JSON"):
        load_any_scene(tmp_path / "s")
