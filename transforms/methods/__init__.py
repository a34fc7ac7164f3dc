"""Explanation methods, one module each over `base.CamMethod`; `METHODS` maps --method names to them."""

from __future__ import annotations

from typing import Any

from transforms.cam_head import CamModelError, find_cam_head
from transforms.methods.base import CamMethod
from transforms.methods.cam import ClassicCam
from transforms.methods.gradcam import GradCam
from transforms.methods.gradcampp import GradCamPlusPlus
from transforms.methods.hirescam import HiResCam
from transforms.methods.layercam import LayerCam

METHODS: dict[str, type[CamMethod]] = {
    method.name: method for method in (ClassicCam, HiResCam, GradCam, GradCamPlusPlus, LayerCam)
}


def default_method(model: Any) -> str:
    """cam when the model has the classic CAM head, otherwise hirescam (CAM's faithful generalisation)."""
    try:
        find_cam_head(model)
    except CamModelError:
        return "hirescam"
    return "cam"
