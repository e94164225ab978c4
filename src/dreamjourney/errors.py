"""The one error type users see.

Anything that is wrong with what a user gave us (a file, a flag, a value) raises `InputError`
with a single line that names the file or option and the problem. The CLI prints that line
and exits with status 2, without a traceback. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

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
