"""Training loops (accelerate) for the learned models."""
