"""The one error type users see.

Anything that is wrong with what a user gave us (a file, a flag, a value) raises `InputError`
with a single line that names the file or option and the problem. The CLI prints that line
and exits with status 2, without a traceback. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

import warnings
from pathlib import Path


class InputError(ValueError):
    """Bad user input. `str(error)` is the complete one-line message."""

    def __init__(self, message: str, *, source: str | Path | None = None, field: str | None = None):
        where = ""
        if source is not None:
            where = f"{source}"
            if field:
                where += f" [{field}]"
            where += ": "
        elif field:
            where = f"{field}: "
        super().__init__(f"{where}{message}".replace("\n", " "))
        self.source = source
        self.field = field


class MissingWeightsError(InputError):
    """A backend's weights are neither on disk nor in the local Hugging Face cache."""


class InputWarning(UserWarning):
    """Something in the user's input is used but not fully: a lens distortion that our pinhole
    cameras drop, frames that came out blank. The CLI prints it as one line on stderr."""


def warn_input(message: str, *, source: str | Path | None = None, field: str | None = None) -> None:
    """Issue an `InputWarning` worded like an `InputError` (naming the file and field)."""
    text = str(InputError(message, source=source, field=field))
    warnings.warn(InputWarning(text), stacklevel=2)
