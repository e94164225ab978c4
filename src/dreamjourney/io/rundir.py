"""A run directory: everything needed to inspect, resume or extend a run, kept on disk.

Layout::

    DIR/manifest.json            inputs (image hash), config, seed, backends, versions, segments
    DIR/segments/0003/...        one folder per segment (clips, prompt, cameras)
    DIR/state/world_0004.npz     the world at the start of segment 4 (only the newest is kept)
    DIR/video.mp4, cameras.json, world.ply, contact_sheet.png, trajectory.png

Every file is written atomically. A segment counts as done only once all its files and the
world that follows it are on disk and the manifest says so; the manifest is written last.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text, partial_files

MANIFEST_FORMAT = "dreamjourney.run/1"
SEGMENT_FILES = ("render.mp4", "mask.mp4", "completed.mp4", "prompt.txt", "cameras.json")
_VERSIONED = ("dreamjourney", "torch", "numpy", "diffusers", "transformers", "av", "pydantic")


class RunInputs(BaseModel):
    """What the run was made from."""

    image: str
    image_sha256: str
    image_size: tuple[int, int] = Field(description="(width, height) of the file as read")
    trajectory_sha256: str | None = Field(
        default=None, description="content hash of the trajectory file, if one was given"
    )


class SegmentRecord(BaseModel):
    """One segment's state. `status` becomes "done" only after all its files are on disk."""

    index: int
    status: Literal["pending", "done"] = "pending"
    first_frame: int = Field(description="index in video.mp4 of the segment's first frame")
    stage1_frames: int = 0
    stage2_frames: int = 0
    prompt: str = ""
    points_added: int = 0
    world_points: int = 0
    seconds: dict[str, float] = Field(
        default_factory=dict, description="wall time: stage1, stage2, models, total"
    )
    blank_frames: int = Field(default=0, description="stage I frames whose render was >= 95% holes")

    @property
    def num_frames(self) -> int:
        return self.stage1_frames + self.stage2_frames


class Manifest(BaseModel):
    """The content of `manifest.json`."""

    format: str = MANIFEST_FORMAT
    created: str
    updated: str
    inputs: RunInputs
    config: dict[str, Any] = Field(description="everything that decides the frames")
    seed: int
    num_segments: int = Field(description="segments the run is asked to have (grows on --extend)")
    scene_scale: float | None = Field(default=None, description="median depth of the photo")
    path_scale: float | None = Field(
        default=None, description="world units per unit of the trajectory file, if one was given"
    )
    fov_deg: float | None = Field(
        default=None, description="horizontal field of view of the photo's camera, degrees"
    )
    input_prompt: str | None = Field(default=None, description="caption of the photo")
    backends: dict[str, Any] = Field(default_factory=dict)
    device: str = "cpu"
    versions: dict[str, str] = Field(default_factory=dict)
    segments: list[SegmentRecord] = Field(default_factory=list)

    @property
    def done_segments(self) -> int:
        """Number of leading segments that are done."""
        n = 0
        for record in self.segments:
            if record.status != "done":
                break
            n += 1
        return n

    @property
    def complete(self) -> bool:
        return self.done_segments >= self.num_segments


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """Paths and manifest of one run directory.

    `RunDir.open(path, inputs, config, seed)` creates a fresh run or reopens an existing one of
    the same inputs and config; anything else at `path` is refused with an `InputError`.
    """

    def __init__(self, root: str | Path, manifest: Manifest, *, created: bool = False):
        self.root = Path(root)
        self.manifest = manifest
        self.created = created

    # ----------------------------------------------------------------- paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def video_path(self) -> Path:
        return self.root / "video.mp4"

    @property
    def cameras_path(self) -> Path:
        return self.root / "cameras.json"

    @property
    def ply_path(self) -> Path:
        return self.root / "world.ply"

    @property
    def contact_sheet_path(self) -> Path:
        return self.root / "contact_sheet.png"

    @property
    def trajectory_plot_path(self) -> Path:
        return self.root / "trajectory.png"

    def segment_dir(self, index: int) -> Path:
        return self.root / "segments" / f"{index:04d}"

    def world_state_path(self, index: int) -> Path:
        """The world as it stands at the start of segment `index`."""
        return self.root / "state" / f"world_{index:04d}.npz"

    # ----------------------------------------------------------------- open / save
    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        inputs: RunInputs,
        config: dict[str, Any],
        seed: int,
        num_segments: int,
    ) -> RunDir:
        """Create a new run in `root` or reopen the run of the same inputs and config there.

        Raises `InputError` if `root` is a file, a non-empty directory that is not a run, or a
        run of a different image, trajectory file or config.
        """
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise InputError("is a file, not a directory; choose another --out", source=root)
        manifest_path = root / "manifest.json"
        if manifest_path.is_file():
            run = cls(root, cls._read_manifest(manifest_path))
            run._check_same_run(inputs, config, seed)
            return run
        if root.is_dir() and any(root.iterdir()):
            raise InputError(
                "is a non-empty directory without a manifest.json (not a run directory); "
                "refusing to write into it, choose another --out",
                source=root,
            )
        now = _now()
        manifest = Manifest(
            created=now,
            updated=now,
            inputs=inputs,
            config=config,
            seed=seed,
            num_segments=num_segments,
            versions=package_versions(),
        )
        run = cls(root, manifest, created=True)
        run.save()
        return run

    @staticmethod
    def _read_manifest(path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"cannot read the run manifest ({exc})", source=path) from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise InputError(f"not a {MANIFEST_FORMAT} manifest", source=path, field="format")
        try:
            return Manifest.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError(
                f"invalid run manifest: {first['msg']}", source=path, field=where
            ) from None

    def _check_same_run(self, inputs: RunInputs, config: dict[str, Any], seed: int) -> None:
        old = self.manifest
        where = self.root
        advice = "; choose another --out (it is never overwritten)"
        if old.inputs.image_sha256 != inputs.image_sha256:
            raise InputError(
                f"holds a run of a different image ({old.inputs.image}){advice}", source=where
            )
        if old.inputs.trajectory_sha256 != inputs.trajectory_sha256:
            raise InputError(f"holds a run of a different trajectory file{advice}", source=where)
        if old.seed != seed:
            raise InputError(f"holds a run with seed {old.seed}, not {seed}{advice}", source=where)
        for key in sorted(set(old.config) | set(config)):
            if old.config.get(key) != config.get(key):
                raise InputError(
                    f"holds a run with a different config ({key}: {old.config.get(key)!r} there, "
                    f"{config.get(key)!r} now){advice}",
                    source=where,
                )

    def remove_partial_files(self) -> None:
        """Delete the temporary files of writes that a killed run never finished."""
        for leftover in partial_files(self.root):
            leftover.unlink(missing_ok=True)

    def save(self) -> None:
        """Write manifest.json atomically."""
        self.manifest.updated = _now()
        atomic_write_text(self.manifest_path, self.manifest.model_dump_json(indent=1))

    # ----------------------------------------------------------------- segments
    def segment_files_present(self, index: int, *, animated: bool) -> bool:
        folder = self.segment_dir(index)
        names = (*SEGMENT_FILES, "animated.mp4") if animated else SEGMENT_FILES
        return all((folder / name).is_file() for name in names)

    def resume_point(self) -> int:
        """Index of the first segment to (re)make: done segments whose files are all present."""
        for record in self.manifest.segments:
            animated = record.stage2_frames > 0
            if record.status != "done" or not self.segment_files_present(
                record.index, animated=animated
            ):
                return record.index
        return len(self.manifest.segments)

    def mark_done(self, record: SegmentRecord) -> None:
        """Record a finished segment (its files must already be on disk) and save the manifest."""
        if not self.segment_files_present(record.index, animated=record.stage2_frames > 0):
            raise RuntimeError(f"segment {record.index} is missing files; cannot mark it done")
        record.status = "done"
        segments = [s for s in self.manifest.segments if s.index < record.index]
        self.manifest.segments = [*segments, record]
        self.save()

    def drop_old_states(self, keep: int) -> None:
        """Delete world states other than the one at the start of segment `keep`."""
        folder = self.root / "state"
        if not folder.is_dir():
            return
        for path in folder.glob("world_*.npz"):
            if path != self.world_state_path(keep):
                path.unlink(missing_ok=True)
