"""Parsers for option values shared by several commands."""

from __future__ import annotations

import json
import re
from typing import Any

from dreamjourney.errors import InputError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str, *, option: str = "--size") -> tuple[int, int]:
    """'640x480' -> (640, 480); both sides in [8, 8192]."""
    match = _SIZE.match(text)
    if not match:
        raise InputError(f"expected WIDTHxHEIGHT such as 512x512, got {text!r}", field=option)
    width, height = int(match[1]), int(match[2])
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise InputError(f"sides must be between 8 and 8192 pixels, got {text!r}", field=option)
    return width, height


def parse_key_values(pairs: list[str], *, option: str) -> dict[str, Any]:
    """['key=value', ...] -> {key: value}; a value is JSON when it parses as JSON, else a string."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"expected KEY=VALUE with KEY a name, got {pair!r}", field=option)
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options
