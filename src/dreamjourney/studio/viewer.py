"""The studio's 3D view, in viser (nerfstudio's viewer engine): the photo's lifted world, the
path (a line coloured start green -> end red, and camera frusta along it), a gizmo per keyframe
but keyframe 0 (the photo's view), the camera at the timeline's frame (with its preview frame
on it), and flying along the path.

viser serves its own page and websocket on its own port; the studio's page embeds it in an
iframe. Poses go in as they are: viser's frusta and cameras use OpenCV axes like ours, and the
scene's up is -y.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import viser
import viser.transforms as vtf

from dreamjourney.camera import Cameras, look_at
from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image, to_uint8
from dreamjourney.io.plots import MAX_FRUSTA, spread, thin

if TYPE_CHECKING:
    from dreamjourney.studio.session import Studio

MAX_POINTS = 200_000


def _wxyz(c2w: np.ndarray) -> np.ndarray:
    return vtf.SO3.from_matrix(c2w[:3, :3]).wxyz


def _colour(u: float) -> tuple[int, int, int]:
    """Green at the start of the path, red at its end."""
    return (round(40 + 200 * u), round(180 * (1 - u) + 30), 60)


class Viewer:
    """A viser server showing one `Studio`'s world and path; redraws on `show`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.server = viser.ViserServer(host=host, port=port, verbose=False, label="dreamjourney")
        self.server.scene.set_up_direction("-y")
        self.server.gui.configure_theme(
            control_layout="collapsible",
            control_width="small",
            show_logo=False,
            show_share_button=False,
        )
        self._studio: Studio | None = None
        self._world_key: int | None = None
        self._gizmos: list[Any] = []
        self._frusta: list[Any] = []
        self._cameras: Cameras | None = None
        self._scale = 1.0
        self._flight = 0
        self._lock = threading.RLock()
        self.server.on_client_connect(self._place_client)

    @property
    def port(self) -> int:
        return self.server.get_port()

    def stop(self) -> None:
        self.server.stop()

    # ------------------------------------------------------------------ drawing
    def show(self, studio: Studio) -> None:
        """Redraw the world (if it changed), the path, its frusta and the keyframe gizmos."""
        with self._lock:
            self._studio = studio
            scene = studio.scene()
            if scene is None:
                return
            lifted, cameras = scene
            self._cameras, self._scale = cameras, lifted.scale
            if self._world_key != id(lifted.world):
                self._world_key = id(lifted.world)
                self._draw_world(lifted.world.cloud.points.numpy(), lifted.world.cloud.colors.numpy(),
                                 lifted.scale / float(lifted.camera.fx[0]))  # fmt: skip
            self._draw_path(cameras, lifted.scale)
            keys = (
                studio.settings.path.keyframes if studio.settings.path.mode == "keyframes" else []
            )
            # keyframe 0 is the photo's view: it has no gizmo
            self._draw_gizmos([(k.position, k.look_at) for k in keys[1:]], lifted.scale)

    def _draw_world(self, points: np.ndarray, colors: np.ndarray, pixel: float) -> None:
        points, colors = thin(points, colors, MAX_POINTS)
        self.server.scene.add_point_cloud(
            "/world",
            points=points.astype(np.float32),
            colors=(np.clip(colors, 0, 1) * 255).astype(np.uint8),
            point_size=1.5 * pixel,
            point_shape="square",
        )

    def _draw_path(self, cameras: Cameras, scale: float) -> None:
        centers = cameras.centers.numpy()
        n = len(cameras)
        if n > 1:
            u = np.linspace(0, 1, n - 1)
            segments = np.stack([centers[:-1], centers[1:]], axis=1)
            colours = np.array([_colour(float(v)) for v in u], dtype=np.uint8)
            self.server.scene.add_line_segments(
                "/path/line",
                points=segments,
                colors=np.repeat(colours[:, None], 2, axis=1),
                thickness=3.0,
                thickness_units="screen",
            )
        for handle in self._frusta:
            handle.remove()
        picks = spread(n, MAX_FRUSTA)  # the frusta of the path picture (trajectory.png)
        vfov = np.radians(cameras.fov_deg("vertical").numpy())
        c2w = cameras.c2w.numpy()
        self._frusta = [
            self.server.scene.add_camera_frustum(
                f"/path/frustum_{i}",
                fov=float(vfov[i]),
                aspect=cameras.width / cameras.height,
                scale=0.06 * scale,
                color=_colour(i / max(n - 1, 1)),
                wxyz=_wxyz(c2w[i]),
                position=c2w[i, :3, 3],
            )
            for i in picks
        ]

    def _draw_gizmos(self, keys: list[tuple[Any, Any]], scale: float) -> None:
        if len(keys) != len(self._gizmos):
            for handle in self._gizmos:
                handle.remove()
            self._gizmos = []
            for i in range(len(keys)):
                handle = self.server.scene.add_transform_controls(
                    f"/keyframes/{i + 1}", scale=0.15 * scale, depth_test=False
                )
                handle.on_update(self._on_gizmo(i + 1))
                self._gizmos.append(handle)
        for handle, (position, target) in zip(self._gizmos, keys, strict=True):
            try:
                c2w = look_at(list(position), list(target)).numpy()
            except ValueError:
                c2w = np.eye(4)
            with self.server.atomic():
                handle.position = np.asarray(position, dtype=float)
                handle.wxyz = _wxyz(c2w)

    def _on_gizmo(self, index: int):
        def moved(event: Any) -> None:
            if getattr(event, "phase", "end") != "end" or self._studio is None:
                return
            target = event.target
            rotation = vtf.SO3(np.asarray(target.wxyz)).as_matrix()
            with contextlib.suppress(InputError):  # the keyframe may be deleted meanwhile
                self._studio.move_keyframe(index, np.asarray(target.position), rotation)

        return moved

    # ------------------------------------------------------------------ timeline and flight
    def set_cursor(self, frame: int, image_path: str | None = None) -> None:
        """Mark camera `frame` of the path (yellow, larger), with `image_path` on it."""
        with self._lock:
            if self._cameras is None:
                return
            cameras = self._cameras
            i = min(max(frame, 0), len(cameras) - 1)
            c2w = cameras.c2w[i].numpy()
            image = to_uint8(load_image(image_path)) if image_path else None
            self.server.scene.add_camera_frustum(
                "/cursor",
                fov=float(np.radians(cameras.fov_deg("vertical")[i])),
                aspect=cameras.width / cameras.height,
                scale=0.1 * self._scale,
                color=(250, 200, 0),
                image=image,
                wxyz=_wxyz(c2w),
                position=c2w[:3, 3],
            )

    def fly(self, fps: float = 24.0) -> int:
        """Move every open 3D view along the path at `fps` (in the background), then back to
        where it was; a new flight stops the last one. Returns the number of frames."""
        with self._lock:
            if self._cameras is None:
                return 0
            cameras = self._cameras
            self._flight += 1
            flight = self._flight

        def run() -> None:
            c2w = cameras.c2w.numpy()
            vfov = np.radians(cameras.fov_deg("vertical").numpy())
            clients = list(self.server.get_clients().values())
            views = [(c.camera.wxyz, c.camera.position, c.camera.fov) for c in clients]
            for i in range(len(cameras)):
                if flight != self._flight:
                    return
                for client in clients:
                    with client.atomic():
                        client.camera.wxyz = _wxyz(c2w[i])
                        client.camera.position = c2w[i, :3, 3]
                        client.camera.fov = float(vfov[i])
                time.sleep(1.0 / fps)
            time.sleep(0.5)
            if flight == self._flight:  # back to where each view was
                for client, (wxyz, position, fov) in zip(clients, views, strict=True):
                    with client.atomic():
                        client.camera.wxyz, client.camera.position = wxyz, position
                        client.camera.fov = fov

        threading.Thread(target=run, daemon=True).start()
        return len(cameras)

    def _place_client(self, client: Any) -> None:
        """A new view starts behind and above the photo's camera, looking into the scene."""
        s = self._scale
        client.camera.position = (0.3 * s, -0.4 * s, -0.9 * s)
        client.camera.look_at = (0.0, 0.0, 1.0 * s)
        client.camera.up_direction = (0.0, -1.0, 0.0)
