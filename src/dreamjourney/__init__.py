"""dreamjourney: camera-controlled generative video of 3D and 4D scenes."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # `__version__` on first use: importlib.metadata costs a fifth of a second, which
    # `dreamjourney --help` need not pay
    if name != "__version__":
        raise AttributeError(f"module 'dreamjourney' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dreamjourney")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+source"
