"""Video files through PyAV: a streaming writer (frames go to disk as they are made), a reader,
and a lossless join of clips (their packets copied, not encoded again).

Frames are float32 (3, H, W) in [0, 1]. Odd sizes are padded by one pixel for H.264 (yuv420p
needs even sizes); the reader returns what the file holds. The same frames always encode to the
same bytes, on any machine: see `x264_options`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path
from dreamjourney.io.images import to_uint8

# x264's output depends on its thread count (frame threads change the rate control's view of
# the future), so a fixed count makes the bytes the same on a 2-core laptop and a 64-core node.
X264_THREADS = 4


@functools.cache
def _host_has_avx512() -> bool:
    from llvmlite import binding  # numba's LLVM: asks the CPU itself, on every OS

    return bool(binding.get_host_cpu_features().get("avx512f", False))


def x264_options(crf: int) -> dict[str, object]:
    """libx264 options that encode the same frames to the same bytes on every run.

    On CPUs with AVX-512, x264's AVX-512 kernels read uninitialised memory in the mb-tree rate
    control, so one process can encode the same frames to different bitstreams (decoded frames
    differed by up to 38/255). There x264 is limited to its AVX2 kernels, which are bit-exact
    with the C code. Elsewhere x264 picks its kernels itself: naming a set the CPU lacks would
    crash it with an illegal instruction.
    """
    options: dict[str, object] = {"crf": str(crf), "threads": str(X264_THREADS)}
    if _host_has_avx512():
        options["x264-params"] = "asm=AVX2"
    return options


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
            stream.options = x264_options(self.crf)
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


def concat_videos(path: str | Path, sources: Sequence[str | Path]) -> int:
    """Join video files made by `VideoWriter` into one MP4 without decoding or encoding them.

    The packets are copied as they are, their timestamps shifted to follow one another, so the
    joined file holds exactly the frames the sources hold. The sources must share the codec,
    its parameters (size, profile) and time base, as clips from `VideoWriter` of one size do.
    Written atomically; returns the number of frames.
    """
    if not sources:
        raise ValueError("no videos to join")
    # B-frames make a clip's decode times lead its presentation times; a clip too short for
    # B-frames leads by less, so every clip's decode times are moved to the longest lead,
    # which keeps them increasing across the joins
    leads = [_decode_lead(source) for source in sources]
    lead = max(leads)
    frames = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        with av.open(str(sources[0])) as container:
            template = container.streams.video[0]
            out_stream = out.add_stream_from_template(template)
            params = _stream_params(template)
        offset = 0  # in the sources' time base
        for source, clip_lead in zip(sources, leads, strict=True):
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                if _stream_params(stream) != params:
                    raise ValueError(
                        f"{source}: its codec parameters or time base differ from {sources[0]}; "
                        "clips can only be joined without re-encoding when they match"
                    )
                end = offset
                for packet in container.demux(stream):
                    if packet.size == 0:  # the demuxer's empty end-of-stream packet
                        continue
                    end = max(end, offset + packet.pts + packet.duration)
                    packet.pts += offset
                    packet.dts += offset - (lead - clip_lead)
                    packet.stream = out_stream
                    out.mux(packet)
                    frames += 1
                offset = end
    return frames


def _stream_params(stream: av.video.stream.VideoStream) -> tuple:
    return (stream.codec_context.extradata, stream.time_base, stream.width, stream.height)


def _decode_lead(path: str | Path) -> int:
    """How far a clip's first decode time precedes its first presentation time (time base)."""
    with av.open(str(path)) as container:
        packet = next(container.demux(container.streams.video[0]))
        return packet.pts - packet.dts


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
