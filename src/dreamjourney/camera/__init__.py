"""Cameras, trajectories, camera file formats and Plücker ray maps (OpenCV axes, c2w poses)."""

from dreamjourney.camera.cameras import Cameras, intrinsics_from_fov, look_at, pixel_centers
from dreamjourney.camera.plucker import plucker_rays

__all__ = ["Cameras", "intrinsics_from_fov", "look_at", "pixel_centers", "plucker_rays"]
