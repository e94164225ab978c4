"""Video files through PyAV: a streaming writer (frames go to disk as they are made) and a reader.

Frames are float32 (3, H, W) in [0, 1]. Odd sizes are padded by one pixel for H.264 (yuv420p
needs even sizes); the reader returns what the file holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path
from dreamjourney.io.images import to_uint8


def video_size(width: int, height: int) -> tuple[int, int]:
    """The size an H.264 (yuv420p) file stores for width x height frames: odd sides are padded
    by one pixel."""
    return width + width % 2, height + height % 2


class VideoWriter:
    """Write frames one at a time to an H.264 MP4; the file appears atomically on `close()`.

    Use as a context manager. `crf` 18 is visually lossless for these clips.
    """

    def __init__(self, path: str | Path, *, fps: float = 24.0, crf: int = 18):
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.frames_written = 0
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        self._stream: av.video.stream.VideoStream | None = None

    def write(self, frame: Tensor) -> None:
        """Append one (3, H, W) float frame."""
        rgb = to_uint8(frame)
        h, w = rgb.shape[:2]
        if self._stream is None:
            stream = self._container.add_stream(
                "libx264", rate=Fraction(self.fps).limit_denominator(1001)
            )
            stream.width, stream.height = video_size(w, h)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf)}
            self._stream = stream
        stream = self._stream
        if video_size(w, h) != (stream.width, stream.height):
            raise ValueError(f"frame size {w}x{h} differs from the video's first frame")
        if w % 2 or h % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)
        self.frames_written += 1

    def write_all(self, frames: Iterable[Tensor]) -> None:
        for frame in frames:
            self.write(frame)

    def close(self, *, commit: bool = True) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        if commit and self.frames_written:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)


def write_video(path: str | Path, frames: Iterable[Tensor], *, fps: float = 24.0) -> None:
    """Write a whole (T, 3, H, W) tensor or an iterable of frames."""
    with VideoWriter(path, fps=fps) as writer:
        writer.write_all(frames)


def iter_video(path: str | Path) -> Iterator[Tensor]:
    """Decode frames one by one as (3, H, W) float32."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such video file", source=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("has no video stream", source=path)
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                yield torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot decode video ({exc})", source=path) from None


def read_video(path: str | Path, *, max_frames: int | None = None) -> tuple[Tensor, float]:
    """Read a video -> frames (T, 3, H, W) float32 and its frame rate."""
    path = Path(path)
    fps = video_fps(path)
    frames = []
    for frame in iter_video(path):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise InputError("has no decodable frames", source=path)
    return torch.stack(frames), fps


def video_fps(path: str | Path) -> float:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("has no video stream", source=path)
            rate = (
                container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
            )
            return float(rate) if rate else 24.0
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode video ({exc})", source=path) from None
