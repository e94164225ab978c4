"""The jobs of a batch: a folder of photos and videos, or a JSONL file with one job a line.

A job is one command line of `dreamjourney journey` or `dreamjourney anyview` without its
`--out` and the options the batch sets for every job (preset, config, device, resume), so a
job's run directory is exactly what the single command makes. A JSONL line::

    {"id": "garden-orbit", "command": "journey", "input": "photos/garden.png",
     "trajectory": "orbit", "seed": 3, "options": {"segments": 4, "frames": 16, "no_motion": true}}

`id` (the run directory's name under the batch's --out) defaults to the input's file stem;
`command` defaults to journey for a photo and anyview for a video or a folder of frames;
`options` are the command's long flags without the dashes (`motion_frames` or `motion-frames`),
`true` adds a flag, `false` leaves it out. Relative paths are relative to the JSONL file's
folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dreamjourney.camera.trajectories import PRESETS as TRAJECTORY_PRESETS
from dreamjourney.errors import InputError
from dreamjourney.io.clips import IMAGE_SUFFIXES

COMMANDS = ("journey", "anyview")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# Options the batch sets itself, the same for every job.
RESERVED = ("out", "preset", "config", "device", "resume", "extend", "quiet", "help")
SUMMARY_NAME = "batch.json"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_OPTION = re.compile(r"^[a-z][a-z0-9_-]*$")

Value = str | int | float | bool | None | list[str | int | float]


@dataclass(frozen=True)
class Job:
    """One command of a batch.

    id: the name of its run directory under the batch's output folder.
    command: `journey` or `anyview`.
    input: the photo, video or folder of frames (absolute path).
    args: the command's options after the input, without --out and the batch's own.
    where: where the job was given, for messages (`jobs.jsonl line 3`, a file name).
    """

    id: str
    command: str
    input: str
    args: tuple[str, ...]
    where: str

    def argv(
        self, out_dir: str | Path, *, preset: str, config: str | None, device: str
    ) -> list[str]:
        """The full command line (without the program name) that makes this job in `out_dir`."""
        argv = [self.command, self.input, "--out", str(out_dir), *self.args]
        argv += ["--preset", preset, "--device", device]
        if config is not None:
            argv += ["--config", config]
        if self.command == "journey":
            argv += ["--resume", "--quiet"]
        return argv

    def key(self, *, preset: str, config: str | None) -> str:
        """A digest of everything that decides this job's outputs as far as a rerun can tell
        without reading the inputs: the command line and the input's and config's size and
        modification time. A finished job with the same key is not run again."""
        stats = [_stat(self.input), _stat(config) if config else None]
        text = json.dumps([self.command, self.input, self.args, preset, config, stats])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Line(BaseModel):
    """One line of a JSONL jobs file."""

    model_config = ConfigDict(extra="forbid")

    input: str
    id: str | None = None
    command: Literal["journey", "anyview"] | None = None
    trajectory: str | None = None
    seed: int | None = None
    options: dict[str, Value] = {}


def load_jobs(
    source: str | Path,
    *,
    options: dict[str, Any] | None = None,
    command_options: dict[str, dict[str, Any]] | None = None,
) -> list[Job]:
    """The jobs of `source`: a folder (each photo a journey, each video an anyview job; sub-
    folders and hidden files are skipped) or a JSONL file.

    `options` (e.g. `{"trajectory": "orbit", "seed": 3}`) apply to every job, and
    `command_options[command]` to that command's jobs, where the job does not set them itself.
    Raises `InputError` naming the file and line of the first bad job.
    """
    source = Path(source)
    defaults = {c: {**(options or {}), **(command_options or {}).get(c, {})} for c in COMMANDS}
    lines: list[tuple[Any, _Line]]
    if source.is_dir():
        lines = [(str(p), _Line(input=str(p.resolve()))) for p in _media_files(source)]
        if not lines:
            raise InputError("holds no photos or videos", source=source)
        base = source
    elif source.is_file():
        lines = _read_jsonl(source)
        base = source.parent
    else:
        raise InputError("no such folder or jobs file", source=source)
    names = _default_ids(lines, folder=source.is_dir())
    jobs = []
    for (where, line), name in zip(lines, names, strict=True):
        where = where if source.is_dir() else f"{source} line {where}"
        jobs.append(_job(line, name, where, base, defaults))
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.id in seen:
            raise InputError(
                f"job id {job.id!r} is also the id of {seen[job.id].where}", source=job.where
            )
        seen[job.id] = job
    return jobs


def _media_files(folder: Path) -> list[Path]:
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def _read_jsonl(path: Path) -> list[tuple[int, _Line]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the jobs file ({exc})", source=path) from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path} line {number}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg})", source=where) from None
        try:
            lines.append((number, _Line.model_validate(data)))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            raise InputError(first["msg"], source=where, field=field) from None
    if not lines:
        raise InputError("holds no jobs (one JSON object a line)", source=path)
    return lines


def _default_ids(lines: list[tuple[Any, _Line]], *, folder: bool) -> list[str]:
    """Each line's id: its own, else the input's stem; stems that several jobs share get the
    file name (folders) or the line number (JSONL) added."""
    stems = [re.sub(r"[^A-Za-z0-9._-]", "_", Path(line.input).stem) or "job" for _, line in lines]
    stems = [s if _ID.match(s) else f"job{s}" for s in stems]
    counts = Counter(s for s, (_, line) in zip(stems, lines, strict=True) if line.id is None)
    names = []
    for stem, (where, line) in zip(stems, lines, strict=True):
        if line.id is not None:
            names.append(line.id)
        elif counts[stem] > 1:
            names.append(Path(line.input).name if folder else f"{stem}-{where}")
        else:
            names.append(stem)
    return names


def _job(line: _Line, name: str, where: str, base: Path, defaults: dict) -> Job:
    if not _ID.match(name) or name == SUMMARY_NAME:
        raise InputError(
            f"invalid job id {name!r}: letters, digits, '.', '_' and '-', not first a dot",
            source=where,
        )
    source = str((base / line.input).resolve())  # kept when absolute
    command = line.command or _command_for(Path(source), where)
    options = dict(defaults[command])
    for key in ("trajectory", "seed"):
        if getattr(line, key) is not None:
            if key in line.options:
                raise InputError(f"{key} is given twice (also in options)", source=where)
            options[key] = getattr(line, key)
    options.update(line.options)
    return Job(name, command, source, tuple(_option_args(options, base, where)), where)


def _command_for(path: Path, where: str) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "journey"
    if suffix in VIDEO_SUFFIXES or path.is_dir():
        return "anyview"
    raise InputError(
        'cannot tell the command from the input; add "command": "journey" or "anyview"',
        source=where,
    )


def _option_args(options: dict[str, Any], base: Path, where: str) -> list[str]:
    args: list[str] = []
    for key, value in sorted(options.items()):  # one order: one command line, one key
        if not _OPTION.match(key):
            raise InputError(f"invalid option name {key!r}", source=where)
        name = key.replace("_", "-")
        if name in RESERVED:
            raise InputError(f"--{name} is set by the batch for every job", source=where)
        flag = f"--{name}"
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is True:
                args.append(flag)
            elif isinstance(item, dict):
                raise InputError(f"option {key} must be a number, a string or a list", source=where)
            elif item is not False and item is not None:
                text = resolve_path(base, item) if isinstance(item, str) else json.dumps(item)
                args += [flag, text]
    return args


def resolve_path(base: Path, value: str) -> str:
    """A path relative to `base`, made absolute; presets, absolute paths and strings that name
    nothing under `base` are kept as they are."""
    if value in TRAJECTORY_PRESETS or Path(value).is_absolute():
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value


def _stat(path: str | None) -> tuple[int, int] | None:
    try:
        st = Path(path).stat() if path else None
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if st else None
