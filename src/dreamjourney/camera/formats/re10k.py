"""RealEstate10K camera txt (used by CameraCtrl, pixelSplat and many camera-control models).

Line 1 is the source video URL. Every other line has 19 numbers: timestamp (microseconds);
fx fy cx cy divided by the image width / height; two zeros; a 3x4 world-to-camera [R|t] row by
row, OpenCV axes. The file holds no image size: we write ours into line 1
(``# dreamjourney width=W height=H``, which readers skip as the URL) and read it back; for other
files the size is taken as 640 px wide with square pixels (fx = fy), which fixes the height.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.validate import check_rotation
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text

DEFAULT_WIDTH = 640
_SIZE = re.compile(r"width=(\d+)\s+height=(\d+)")


def _rows(text: str) -> tuple[str, list[tuple[int, list[str]]]]:
    """(first line, [(line number, fields)] of the other non-empty lines)."""
    lines = text.splitlines()
    rows = [(n + 1, line.split()) for n, line in enumerate(lines) if n > 0 and line.strip()]
    first = lines[0] if lines else ""
    if len(first.split()) == 19:  # no URL line
        rows.insert(0, (1, first.split()))
    return first, rows


def sniff(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() != ".txt":
        return False
    try:
        _, rows = _rows(path.read_text())
    except (OSError, UnicodeDecodeError):
        return False
    return bool(rows) and all(len(fields) == 19 for _, fields in rows)


def load(path: Path) -> Cameras:
    try:
        first, rows = _rows(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=path) from None
    if not rows:
        raise InputError("no camera lines", source=path)
    values = []
    for n, fields in rows:
        if len(fields) != 19:
            raise InputError(
                f"expected 19 numbers, got {len(fields)}", source=path, field=f"line {n}"
            )
        try:
            row = torch.tensor([float(x) for x in fields], dtype=torch.float64)
        except ValueError:
            raise InputError("not all fields are numbers", source=path, field=f"line {n}") from None
        if not bool(torch.isfinite(row).all()):
            raise InputError("contains NaN or infinite values", source=path, field=f"line {n}")
        if row[1] <= 0 or row[2] <= 0:
            raise InputError("focal lengths must be positive", source=path, field=f"line {n}")
        check_rotation(row[7:].reshape(3, 4)[:, :3], path, f"line {n}")
        values.append(row)
    data = torch.stack(values)
    match = _SIZE.search(first)
    if match:
        width, height = int(match.group(1)), int(match.group(2))
    else:
        width = DEFAULT_WIDTH
        height = max(1, round(width * float(data[0, 1] / data[0, 2])))
    K = torch.zeros(len(data), 3, 3, dtype=torch.float64)
    K[:, 0, 0], K[:, 1, 1] = data[:, 1] * width, data[:, 2] * height
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = data[:, 3] * width, data[:, 4] * height, 1.0
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(data), 1, 1)
    w2c[:, :3, :] = data[:, 7:].reshape(-1, 3, 4)
    R, t = w2c[:, :3, :3], w2c[:, :3, 3:]
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(data), 1, 1)
    c2w[:, :3, :3] = R.transpose(1, 2)
    c2w[:, :3, 3:] = -R.transpose(1, 2) @ t
    return Cameras(K.float(), c2w.float(), width, height, (data[:, 0] / 1e6).float())


def save(cameras: Cameras, path: Path, *, fps: float = 24.0) -> None:
    K, w2c = cameras.K.double(), cameras.w2c.double()
    W, H = cameras.width, cameras.height
    lines = [f"# dreamjourney width={W} height={H}"]
    for i in range(len(cameras)):
        stamp = round(float(cameras.times[i]) * 1e6)
        intr = [K[i, 0, 0] / W, K[i, 1, 1] / H, K[i, 0, 2] / W, K[i, 1, 2] / H]
        numbers = [*(float(x) for x in intr), 0.0, 0.0, *w2c[i, :3, :].reshape(-1).tolist()]
        lines.append(" ".join([str(stamp), *(repr(x) for x in numbers)]))
    atomic_write_text(path, "\n".join(lines) + "\n")
