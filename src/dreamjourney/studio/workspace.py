"""The studio's workspace: the one folder it reads and writes, and the uploads into it.

Every path the page names is relative to the workspace and is refused when it is absolute,
holds a `..` part, or resolves (through symlinks) to a place outside; the studio's own folders
below are refused the same way when a symlink leads one outside. Uploads are streamed to a
temporary file, cut off at the size limit, checked by the reader of their kind (a photo is
decoded, a video decoded to its end, a camera file loaded) and only then given their name.

Layout (created on demand)::

    WORKSPACE/uploads/        uploaded photos, videos, camera files
    WORKSPACE/studio/         the studio's own files: state.json, keyframes.json, paths/,
                              previews/, jobs/
    WORKSPACE/runs/NAME/      run directories (the same as `dreamjourney journey --out`)
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Literal

from dreamjourney.camera.formats import load_cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image
from dreamjourney.io.rundir import sha256_file
from dreamjourney.io.video import read_video

Kind = Literal["photo", "video", "cameras"]
SUFFIXES: dict[str, Kind] = {
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"), "photo"),
    **dict.fromkeys((".mp4", ".mov", ".webm", ".mkv", ".avi"), "video"),
    **dict.fromkeys((".json", ".txt"), "cameras"),
}
DEFAULT_UPLOAD_LIMIT = 200 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
# folders of the studio's own outputs, not offered as inputs
_OWN = ("studio", "runs")


class UploadTooLarge(InputError):
    """An upload went past the workspace's size limit (HTTP 413)."""


class Workspace:
    """Paths inside `root`, and uploads into `root/uploads` of at most `upload_limit` bytes."""

    def __init__(self, root: str | Path, *, upload_limit: int = DEFAULT_UPLOAD_LIMIT):
        self.root = Path(root).resolve()
        self.upload_limit = upload_limit
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def studio_dir(self) -> Path:
        return self.resolve("studio", must_exist=False)

    @property
    def runs_dir(self) -> Path:
        return self.resolve("runs", must_exist=False)

    def resolve(self, relative: str, *, must_exist: bool = True) -> Path:
        """The absolute path of `relative` (POSIX separators), refused unless inside the root."""
        if not relative or "\x00" in relative or "\\" in relative:
            raise InputError("not a workspace path", source=relative or "''")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or re.match(r"^[A-Za-z]:", relative):
            raise InputError("absolute paths are refused; give a path inside the workspace",
                             source=relative)  # fmt: skip
        if ".." in pure.parts:
            raise InputError("'..' is refused; give a path inside the workspace", source=relative)
        path = (self.root / pure).resolve()
        if path != self.root and self.root not in path.parents:
            raise InputError("leads outside the workspace (a symlink?); refused", source=relative)
        if must_exist and not path.exists():
            raise InputError("no such file in the workspace", source=relative)
        return path

    def relative(self, path: Path) -> str:
        """`path` (inside the root) as the POSIX path the page uses."""
        return path.resolve().relative_to(self.root).as_posix()

    def list_inputs(self) -> list[dict[str, str | int]]:
        """Photos, videos and camera files in the workspace (not in the studio's own folders),
        sorted by path; symlinks that lead outside are left out."""
        found: list[dict[str, str | int]] = []
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            if here == self.root:
                dirs[:] = [d for d in dirs if d not in _OWN]
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                kind = SUFFIXES.get(Path(name).suffix.lower())
                if kind is None or name.startswith("."):
                    continue
                relative = (here / name).relative_to(self.root).as_posix()
                try:
                    path = self.resolve(relative)
                except InputError:
                    continue
                found.append({"path": relative, "kind": kind, "bytes": path.stat().st_size})
        return sorted(found, key=lambda item: str(item["path"]))

    async def save_upload(self, name: str, chunks: AsyncIterator[bytes]) -> tuple[str, Kind]:
        """Stream an upload into `uploads/`, check it, and return its workspace path and kind.

        The file keeps `name` unless a different file already has it (then `-1`, `-2`, ...
        is added); an identical file is reused. Raises `UploadTooLarge` past the limit and
        `InputError` for a bad name or a file its reader refuses; nothing is left behind.
        """
        if not _NAME.match(name) or name.endswith("."):
            raise InputError(
                "file names may hold only letters, digits, '.', '_' and '-'", source=name
            )
        kind = SUFFIXES.get(Path(name).suffix.lower())
        if kind is None:
            raise InputError(
                f"unsupported file type; expected one of {', '.join(sorted(SUFFIXES))}",
                source=name,
            )
        folder = self.resolve("uploads", must_exist=False)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload.", suffix=Path(name).suffix)
        tmp = Path(tmp_name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.upload_limit:
                        raise UploadTooLarge(
                            f"larger than the upload limit of {_megabytes(self.upload_limit)}",
                            source=name,
                        )
                    f.write(chunk)
            if size == 0:
                raise InputError("the upload is empty", source=name)
            _check(tmp, kind, name)
            return self.relative(_place(tmp, folder / name)), kind
        finally:
            tmp.unlink(missing_ok=True)


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def _check(path: Path, kind: Kind, name: str) -> None:
    """Read the file as its kind would be read by a run; a refusal names the upload."""
    try:
        if kind == "photo":
            load_image(path)
        elif kind == "video":
            read_video(path)
        else:
            load_cameras(path)
    except InputError as exc:
        raise refusal(exc, path, kind, name) from None


def refusal(exc: InputError, path: Path, kind: Kind, name: str) -> InputError:
    """The reader's refusal `exc` of the file at `path` as one line about `name`, its name in
    the workspace (the absolute path is not shown)."""
    message = str(exc).replace(f"{path}: ", "").replace(str(path), name)
    return InputError(f"not a valid {kind} file: {message}", source=name)


def _place(tmp: Path, target: Path) -> Path:
    """Rename `tmp` to `target`, or to `stem-N.suffix` if another file has that name; an
    identical file already there is kept and returned instead."""
    digest = sha256_file(tmp)
    stem, suffix = target.stem, target.suffix
    for n in range(1000):
        candidate = target if n == 0 else target.with_name(f"{stem}-{n}{suffix}")
        if candidate.exists():
            if candidate.is_file() and sha256_file(candidate) == digest:
                return candidate
            continue
        os.replace(tmp, candidate)
        return candidate
    raise InputError("too many uploads of this name; rename the file", source=target.name)
