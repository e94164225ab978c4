"""Geometry engine: unproject, exact point rasterization with hole masks, depth alignment, World.

Pure tensor code (CPU or CUDA); file I/O only for its own formats (world .npz, PLY).
"""

from dreamjourney.scene.align import DepthAlignment, align_depth
from dreamjourney.scene.heuristic_depth import heuristic_depth
from dreamjourney.scene.pointcloud import PointCloud, unproject
from dreamjourney.scene.raster import RenderOutput, rasterize, render_padded
from dreamjourney.scene.world import World, load_ply, save_ply

__all__ = [
    "DepthAlignment",
    "PointCloud",
    "RenderOutput",
    "World",
    "align_depth",
    "heuristic_depth",
    "load_ply",
    "rasterize",
    "render_padded",
    "save_ply",
    "unproject",
]
