"""Pipelines: one self-contained module per method (journey, anyview, render)."""
