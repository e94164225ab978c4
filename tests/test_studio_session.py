"""The studio's workspace confinement, path editing and preview, in process (no server)."""

from __future__ import annotations

import asyncio
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import fit_image, load_image
from dreamjourney.models.depth import HeuristicDepth
from dreamjourney.models.protocols import DepthResult
from dreamjourney.models.registry import build_backends
from dreamjourney.pipelines.journey import JourneyPipeline
from dreamjourney.studio.jobs import Jobs, JobSpec
from dreamjourney.studio.session import Studio
from dreamjourney.studio.workspace import UploadTooLarge, Workspace

W, H = 64, 48


@pytest.fixture
def studio(tmp_path) -> Studio:
    """A workspace with a small photo (sky, ground, a red box), opened at 64x48, 2 x 4 frames."""
    a = np.zeros((96, 128, 3), np.uint8)
    a[:40] = [90, 140, 220]
    a[40:] = [60, 140, 50]
    a[50:80, 40:70] = [200, 40, 30]
    (tmp_path / "ws").mkdir()
    Image.fromarray(a).save(tmp_path / "ws" / "photo.png")
    s = Studio(Workspace(tmp_path / "ws"))
    s.update({"input": "photo.png", "width": W, "height": H, "segments": 2, "frames": 4})
    return s


def test_resolve_refuses_paths_out_of_the_workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path, root / "out")
    os.symlink(root / "sub", root / "inside")
    ws = Workspace(root)
    assert ws.resolve("sub/a.png") == (root / "sub" / "a.png").resolve()
    assert ws.resolve("inside/a.png") == (root / "sub" / "a.png").resolve()  # symlink within
    refusals = {
        "../secret.txt": "'..' is refused",
        "sub/../../secret.txt": "'..' is refused",
        str(tmp_path / "secret.txt"): "absolute paths are refused",
        "out/secret.txt": "leads outside the workspace",
        "sub\\..\\..\\secret.txt": "not a workspace path",
        "": "not a workspace path",
        "nope.png": "no such file in the workspace",
    }
    for path, message in refusals.items():
        with pytest.raises(InputError, match=message):
            ws.resolve(path)
    assert "out/secret.txt" not in [f["path"] for f in ws.list_inputs()]


async def _chunks(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_uploads_are_checked_limited_and_leave_nothing_behind(tmp_path):
    ws = Workspace(tmp_path / "ws", upload_limit=5000)
    good = tmp_path / "good.png"
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(good)
    data = good.read_bytes()
    assert asyncio.run(ws.save_upload("p.png", _chunks(data))) == ("uploads/p.png", "photo")
    assert asyncio.run(ws.save_upload("p.png", _chunks(data)))[0] == "uploads/p.png"  # same file
    other = tmp_path / "other.png"
    Image.fromarray(np.full((16, 16, 3), 30, np.uint8)).save(other)
    assert asyncio.run(ws.save_upload("p.png", _chunks(other.read_bytes())))[0] == "uploads/p-1.png"
    assert (tmp_path / "ws" / "uploads" / "p-1.png").read_bytes() == other.read_bytes()
    cases = [
        ("bad.png", b"this is not a png" * 10, InputError, "bad.png: not a valid photo file"),
        ("big.png", b"\0" * 6000, UploadTooLarge, "larger than the upload limit"),
        ("../evil.png", data, InputError, "file names may hold only"),
        ("run.exe", data, InputError, "unsupported file type"),
        ("empty.png", b"", InputError, "the upload is empty"),
        ("cams.json", b'{"format": "dreamjourney.cameras/1"', InputError, "not a valid cameras"),
    ]
    for name, payload, error, message in cases:
        with pytest.raises(error, match=message):
            asyncio.run(ws.save_upload(name, _chunks(payload)))
    assert sorted(p.name for p in (tmp_path / "ws" / "uploads").iterdir()) == ["p-1.png", "p.png"]


def test_preset_path_starts_at_the_photo_and_preview_renders_it(studio):
    studio.update({**studio.settings.model_dump(), "path": {"preset": "pan-right"}})
    cameras = studio.cameras()
    assert len(cameras) == 2 * 4 + 1 and (cameras.width, cameras.height) == (W, H)
    assert torch.equal(cameras.c2w[0], torch.eye(4))
    scale = studio.state()["path"]["scene_scale"]
    # pan-right moves `distance` (0.5) scene scales along +x over the whole path
    assert cameras.centers[-1].tolist() == pytest.approx([0.5 * scale, 0, 0], abs=1e-5)
    result = studio.preview()
    out = studio.workspace.resolve(result["dir"])
    assert result["frames"] == len(cameras) and len(result["holes"]) == len(cameras)
    first = load_image(out / "frames" / "000000.png")
    photo = fit_image(load_image(studio.workspace.root / "photo.png"), W, H)
    assert torch.allclose(first, photo, atol=1.5 / 255)  # frame 0 is the photo itself
    for i, share in enumerate(result["holes"]):
        mask = np.asarray(Image.open(out / "masks" / f"{i:06d}.png")) > 127
        assert share == pytest.approx(1 - mask.mean(), abs=1e-6)
    assert result["holes"][0] == 0 and result["holes"][-1] > 0.01  # panning opens holes
    assert studio.last_preview() == out
    assert studio.preview()["dir"] == result["dir"]  # cached by content


def test_keyframes_from_a_preset_keep_the_path_and_move(studio):
    studio.update({**studio.settings.model_dump(), "path": {"preset": "arc-right"}})
    before = studio.cameras()
    state = studio.add_keyframe(4)
    keys = state["settings"]["path"]["keyframes"]
    assert state["settings"]["path"]["mode"] == "keyframes"
    assert [k["time"] for k in keys] == pytest.approx([0, 4 / 24, 8 / 24], abs=1e-6)
    after = studio.cameras()
    for frame in (0, 4, 8):  # the new path passes through the old one's cameras at the keys
        assert after.centers[frame].tolist() == pytest.approx(
            before.centers[frame].tolist(), abs=1e-4
        )
        assert after.forward[frame].tolist() == pytest.approx(
            before.forward[frame].tolist(), abs=1e-4
        )
    assert json.loads(studio.keyframes_path.read_text())["format"] == "dreamjourney.keyframes/1"
    # a gizmo drag: the key moves to the new position and looks along the gizmo's +z
    R = look_at([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])[:3, :3].numpy()
    studio.move_keyframe(1, np.array([0.2, -0.1, 0.3]), R)
    key = studio.settings.path.keyframes[1]
    old = keys[1]
    distance = np.linalg.norm(np.subtract(old["look_at"], old["position"]))
    assert key.position == pytest.approx((0.2, -0.1, 0.3))
    direction = np.subtract(key.look_at, key.position)
    assert direction == pytest.approx(distance * np.array([1, 0, 1]) / np.sqrt(2))
    moved = studio.cameras()
    assert moved.centers[4].tolist() == pytest.approx([0.2, -0.1, 0.3], abs=1e-5)
    assert moved.forward[4].tolist() == pytest.approx([2**-0.5, 0, 2**-0.5], abs=1e-5)
    with pytest.raises(InputError, match="no keyframe 7"):
        studio.move_keyframe(7, np.zeros(3), np.eye(3))
    # keyframe 0 is the photo's view, as the first camera of any camera file is for `journey`
    message = "keyframes: keyframe 0 is the photo's view: position 0 0 0, looking along"
    with pytest.raises(InputError, match=message):
        studio.move_keyframe(0, np.array([0.1, 0.0, 0.0]), np.eye(3))
    settings = studio.settings.model_dump()
    for change in ({"position": (0.1, 0, 0)}, {"look_at": (1.0, 0, 1.0)}):
        settings["path"]["keyframes"][0] = {**keys[0], **change}
        with pytest.raises(InputError, match=message):
            studio.update(settings)
    settings["path"]["keyframes"][0] = keys[0]
    assert studio.settings.path.keyframes[0].position == (0, 0, 0)
    settings["path"]["keyframes"][0]["fov"] = 40.0  # its field of view is the photo's
    studio.update(settings)
    assert float(studio.cameras().fov_deg()[0]) == pytest.approx(40.0, abs=1e-4)


def test_a_camera_file_opens_as_keyframes(studio):
    c2w = look_at(
        torch.tensor([[0.0, 0, 0], [0.5, 0, 0], [1.0, -0.2, 0.5]]), torch.tensor([0.0, 0, 3])
    )
    path = studio.workspace.root / "path" / "camera_path.json"
    path.parent.mkdir()
    save_cameras(Cameras.create(c2w, width=W, height=H, fov_deg=50), path, format="nerfstudio")
    state = studio.load_camera_file("path/camera_path.json")
    keys = state["settings"]["path"]["keyframes"]
    # placed as `journey --trajectory` places a file (`fit_path`; these cameras turn too little
    # for a common focus): the farthest camera half a scene scale (the photo's median depth)
    # from the start
    scale = 0.5 * state["path"]["scene_scale"] / float(np.linalg.norm([1.0, -0.2, 0.5]))
    expected = c2w[:, :3, 3].numpy() * scale
    assert np.allclose([k["position"] for k in keys], expected, atol=1e-5)
    assert [k["fov"] for k in keys] == pytest.approx([50, 50, 50], abs=1e-3)
    cameras = studio.cameras()
    assert cameras.centers[-1].tolist() == pytest.approx(expected[-1].tolist(), abs=1e-5)
    with pytest.raises(InputError, match=r"'\.\.' is refused"):
        studio.load_camera_file("../photo.png")


def test_bad_settings_are_one_line_errors(studio):
    base = studio.settings.model_dump()
    cases = [
        ({"segments": 0}, "segments: Input should be greater than or equal to 1"),
        ({"backends": "nope"}, "backends: unknown preset 'nope'"),
        ({"path": {"preset": "loop"}}, "path.preset: unknown trajectory preset 'loop'"),
        ({"input": "../x.png"}, "'..' is refused"),
        ({"input": "photo.txt"}, "no such file"),
    ]
    for change, message in cases:
        with pytest.raises(InputError, match=message):
            studio.update({**base, **change})
    assert studio.settings.model_dump() == base  # nothing kept from a refused update
    studio.update({**base, "path": {"preset": "orbit", "options": {"sweep": 3}}})
    assert "unknown option for preset 'orbit'" in studio.state()["path"]["error"]


def test_run_spec_flies_the_path_shown(studio):
    spec = studio.run_spec()
    file_cameras = load_cameras(spec.config["trajectory"])
    assert torch.allclose(file_cameras.c2w, studio.cameras().c2w)
    assert Path(spec.out).parent == studio.workspace.runs_dir
    assert studio.run_spec().name == spec.name  # the same settings reopen the same run
    studio.update({**studio.settings.model_dump(), "seed": 1})
    assert studio.run_spec().name != spec.name


def test_a_gizmo_drag_in_the_3d_view_moves_its_keyframe(studio):
    from types import SimpleNamespace

    vtf = pytest.importorskip(
        "viser.transforms", reason="the studio extra is not installed: no viser (3D view)"
    )

    from dreamjourney.studio.viewer import Viewer

    viewer = Viewer(port=0)
    try:
        studio.on_change = viewer.show
        studio.update({**studio.settings.model_dump(), "path": {"preset": "arc-right"}})
        studio.add_keyframe(4)
        cameras = studio.cameras()
        assert len(viewer._gizmos) == 2  # keyframes 1 and 2: keyframe 0 is the photo's view
        assert np.allclose(viewer._frusta[-1].position, cameras.centers[-1].numpy(), atol=1e-6)
        handle = viewer._gizmos[0]
        assert np.allclose(handle.position, cameras.centers[4].numpy(), atol=1e-5)
        R = look_at([0.0, 0.0, 0.0], [1.0, 0.0, 1.0])[:3, :3].numpy()
        handle.position = np.array([0.2, -0.1, 0.3])
        handle.wxyz = vtf.SO3.from_matrix(R).wxyz
        viewer._on_gizmo(1)(SimpleNamespace(phase="update", target=handle))
        assert studio.settings.path.keyframes[1].position != pytest.approx((0.2, -0.1, 0.3))
        viewer._on_gizmo(1)(SimpleNamespace(phase="end", target=handle))  # on release
        assert studio.settings.path.keyframes[1].position == pytest.approx((0.2, -0.1, 0.3))
        moved = studio.cameras()
        assert moved.forward[4].tolist() == pytest.approx([2**-0.5, 0, 2**-0.5], abs=1e-5)
        assert len(viewer._gizmos) == 2  # redrawn in place, not recreated under the mouse
        assert viewer._gizmos[0] is handle
    finally:
        viewer.stop()


class _FocalDepth:
    """Pop-up depth with a focal length of 40 px, as Depth Pro gives one."""

    def estimate(self, image: torch.Tensor) -> DepthResult:
        return DepthResult(depth=HeuristicDepth().estimate(image).depth, metric=True, focal_px=40.0)


def test_the_photo_camera_takes_the_depth_models_focal_unless_a_fov_is_set(studio):
    backends = build_backends("offline")
    backends.depth = _FocalDepth()
    studio._pipelines[("offline", "cpu")] = JourneyPipeline(backends)  # as `journey` would
    studio._lifted.clear()  # lifted by the fixture with the heuristic depth
    studio.update(studio.settings.model_dump())
    assert studio.settings.fov is None
    assert float(studio.cameras().K[0, 0, 0]) == pytest.approx(40.0, rel=1e-5)
    studio.update({**studio.settings.model_dump(), "fov": 50.0})
    assert float(studio.cameras().K[0, 0, 0]) == pytest.approx(
        32 / math.tan(math.radians(25)), rel=1e-5
    )


def test_jobs_list_no_file_being_written(tmp_path):
    """A progress file mid-write (the worker's atomic temp file beside it) is not a run."""
    jobs = Jobs(tmp_path)
    spec = JobSpec(name="a", image="x.png", out=str(tmp_path / "a"), preset="offline",
                   config={}, segments=1, seed=0)  # fmt: skip
    (tmp_path / "a.json").write_text(spec.model_dump_json())
    (tmp_path / "a.progress.json").write_text("{}")
    (tmp_path / ".a.progress.k2j4.tmp.json").write_text("{")
    assert jobs.names() == ["a"]


def test_a_cancel_swallowed_by_a_library_still_stops_the_worker(tmp_path, monkeypatch):
    """SIGTERM raises `Cancelled` wherever the main thread is; inside a callback from C code
    a library may swallow it. The next progress hook must raise it again, not run on to
    "done"."""
    from dreamjourney.studio import worker

    monkeypatch.setattr(worker, "_cancel_asked", False)
    progress = worker.ProgressWriter(tmp_path / "job.progress.json")
    progress.segment_start(0)
    progress.model_step(1, 4)
    try:  # the handler's raise, lost in a library
        worker._cancel(15, None)
    except worker.Cancelled:
        pass
    for hook in (lambda: progress.model_step(2, 4), lambda: progress.segment_start(1),
                 lambda: progress.model_start("completer"), lambda: progress.finishing("video")):  # fmt: skip
        with pytest.raises(worker.Cancelled):
            hook()
    assert json.loads((tmp_path / "job.progress.json").read_text())["segment"] == 0
