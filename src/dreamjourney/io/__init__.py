"""Files: atomic writes, images, videos, run directories."""
