"""Explanation methods, one module each over `base.CamMethod`; `METHODS` maps --method names to them."""

from __future__ import annotations

from transforms.methods.base import CamMethod
from transforms.methods.cam import ClassicCam

METHODS: dict[str, type[CamMethod]] = {method.name: method for method in (ClassicCam,)}
