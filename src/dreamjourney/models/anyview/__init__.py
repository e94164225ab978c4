"""The learned AnyView model: a two-stream camera-conditioned video diffusion transformer."""

from dreamjourney.models.anyview.conditioning import PluckerLayout, latent_frame_indices, ray_maps
from dreamjourney.models.anyview.transformer import AnyViewTransformer, AnyViewTransformerOutput

__all__ = [
    "AnyViewTransformer",
    "AnyViewTransformerOutput",
    "PluckerLayout",
    "latent_frame_indices",
    "ray_maps",
]
