"""dreamjourney: camera-controlled generative video of 3D and 4D scenes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dreamjourney")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
