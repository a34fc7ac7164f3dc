"""Deterministic generator of synthetic MURA-v1.1-shaped X-ray archives with known lesion boxes."""

from reference.synth.write import generate_archive, generate_full_archive

__all__ = ["generate_archive", "generate_full_archive"]
