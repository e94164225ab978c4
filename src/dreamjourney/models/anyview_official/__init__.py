"""The released AnyView model (TRI-ML AnyView-DVS, `anyview_dvs_2b.pt`), our implementation."""

from dreamjourney.models.anyview_official.checkpoint import (
    RELEASE_FILES,
    load_released_transformer,
    read_text_embedding,
)
from dreamjourney.models.anyview_official.scheduler import AnyViewAB2Scheduler
from dreamjourney.models.anyview_official.transformer import (
    CAMS_INPUT_MASK,
    CAMS_OUTPUT_MASK,
    PLUCKER_CHANNELS,
    RGB_CHANNELS,
    RGB_INPUT_MASK,
    RGB_OUTPUT_MASK,
    STREAM_CHANNELS,
    AnyViewCosmosTransformer,
)
from dreamjourney.models.anyview_official.vae import load_wan_vae

__all__ = [
    "CAMS_INPUT_MASK",
    "CAMS_OUTPUT_MASK",
    "PLUCKER_CHANNELS",
    "RELEASE_FILES",
    "RGB_CHANNELS",
    "RGB_INPUT_MASK",
    "RGB_OUTPUT_MASK",
    "STREAM_CHANNELS",
    "AnyViewAB2Scheduler",
    "AnyViewCosmosTransformer",
    "load_released_transformer",
    "load_wan_vae",
    "read_text_embedding",
]
