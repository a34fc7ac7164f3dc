"""The machine a bench runs on: device choice before TensorFlow loads, and the facts stored with figures."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def select_device(choice: str) -> None:
    """Hide GPUs before TensorFlow loads when the CPU is asked for (subprocesses inherit it)."""
    if choice == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"


def visible_device(choice: str) -> str:
    """What TensorFlow will run on; fails when a GPU is required and there is none."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise SystemExit("bench: --device gpu but TensorFlow sees no GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"gpu: {details.get('device_name', gpus[0].name)} (x{len(gpus)})"
    return f"cpu: {cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's processor string."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment(device: str) -> dict[str, Any]:
    """Versions and machine facts stored with the figures."""
    import apache_beam
    import cv2
    import keras
    import numpy
    import tensorflow

    return {
        "device": device,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "apache_beam": apache_beam.__version__,
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
    }
