"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A reader (or a resumed run) sees either the old file or the complete new one, never a part.
The file gets the permissions of any new file (0666 less the user's umask), not the 0600 of a
temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces `path` only if the block succeeds.

    The temporary file keeps `path`'s suffix so that writers which choose a codec or a format
    from the file name (OpenCV, PyAV, NumPy) behave as they would for `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux), since setting
    it to read it back races with other threads creating files."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def partial_files(folder: str | Path) -> list[Path]:
    """The temporary files of `atomic_path` left in `folder` (and below) by a killed process."""
    return sorted(p for p in Path(folder).rglob(".*.tmp*") if p.is_file())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
