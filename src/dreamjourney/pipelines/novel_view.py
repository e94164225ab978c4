"""Novel-view methods by name, for `dreamjourney eval bench` and anything else that picks one.

Each factory takes the method's options (`eval bench METHOD -o KEY=VALUE`) and returns a
`dreamjourney.eval.bench.NovelViewMethod`. Pipelines are imported when their method is built.
"""

from __future__ import annotations

from collections.abc import Callable

from dreamjourney.errors import InputError
from dreamjourney.eval.bench import CopyInput, NovelViewMethod, WarpInput


def _geometry(**options) -> NovelViewMethod:
    from dreamjourney.pipelines.anyview_geometry import AnyViewGeometryMethod

    return AnyViewGeometryMethod(**options)


def _learned(**options) -> NovelViewMethod:
    from dreamjourney.pipelines.anyview_learned import learned_method

    return learned_method(**options)


def _anyview(**options) -> NovelViewMethod:
    from dreamjourney.pipelines.anyview_official import anyview_method

    return anyview_method(**options)


METHODS: dict[str, Callable[..., NovelViewMethod]] = {
    "copy-input": CopyInput,
    "warp-input": WarpInput,
    "geometry": _geometry,
    "learned": _learned,
    "anyview": _anyview,
}


def register_method(name: str, factory: Callable[..., NovelViewMethod]) -> None:
    """Make `factory(**method_options)` available under `name`."""
    METHODS[name] = factory


def build_method(name: str, **options) -> NovelViewMethod:
    """The method `name` built with `options`; an unknown name is an `InputError`."""
    if name not in METHODS:
        raise InputError(
            f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}", field="METHOD"
        )
    return METHODS[name](**options)
