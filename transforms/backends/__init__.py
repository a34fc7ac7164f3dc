"""Backends: how a worker runs an explanation method's one-pass model (TensorFlow, or LiteRT on CPUs)."""
