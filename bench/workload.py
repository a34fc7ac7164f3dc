"""The benchmark's inputs: a synthetic MURA-shaped archive, image subsets as manifests, the model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

ARCHIVE_NAME = "MURA-v1.1"
SPLITS = ("valid", "train")
IMAGE_SIZE = 224
ALPHA = 1.0
MODEL_FILE = "cam_mobilenetv2_a100_224.keras"  # the reference model, under the bench's out folder
# A near-free model: the same architecture at alpha 0.35 and 128 px, several times cheaper per image.
NEAR_FREE_SIZE = 128
NEAR_FREE_ALPHA = 0.35
NEAR_FREE_MODEL_FILE = "cam_mobilenetv2_a035_128.keras"
FEATURE_STRIDE = 32  # build_cam_classifier's default: the full backbone


def cam_grid(image_size: int, stride: int = FEATURE_STRIDE) -> int:
    """Cells per side of a CAM at `image_size` ('same' padding rounds up)."""
    return -(-image_size // stride)


def ensure_archive(out_dir: Path, patients: int, seed: int = 0) -> Path:
    """Generate a synthetic archive of `patients` patients unless it exists; returns its MURA-v1.1/ folder."""
    from reference.synth import generate_archive

    mura = out_dir / ARCHIVE_NAME
    if not archive_complete(mura):
        print(f"[bench] generating a synthetic archive of {patients} patients in {out_dir}", flush=True)
        generate_archive(out_dir, patients=patients, seed=seed)
    return mura


def archive_complete(mura: Path) -> bool:
    """Whether a generated archive is whole: synth writes the split manifests last."""
    return all((mura / f"{split}_image_paths.csv").exists() for split in SPLITS)


def audit_argv(manifest: Path, model: Path, output: Path, batch_size: int, extra: Sequence[str] = ()) -> list[str]:
    """cam-audit's command line for one benchmark run. Every run converts its LiteRT model afresh (no
    --litert_cache_dir): the fixed costs and the launcher's memory stay those of a first run, whatever the
    machine's cache holds. No --overwrite: each caller sets the last output aside first (bench/set_aside.py), so
    a folder that could not be moved fails the run instead of being written over."""
    return ["--manifest", str(manifest), "--model", str(model), "--output", str(output),
            "--batch_size", str(batch_size), "--litert_cache_dir", "", *extra]


def manifest_image_paths(manifest: Path) -> list[str]:
    """The image paths of a MURA manifest (one per non-blank line), as it writes them."""
    return [line.strip() for line in manifest.read_text().splitlines() if line.strip()]


def archive_image_paths(mura: Path) -> list[str]:
    """Every image path of an archive's manifests, valid split first, as the manifests write them."""
    return [path for split in SPLITS for path in manifest_image_paths(mura / f"{split}_image_paths.csv")]


def write_manifest(mura: Path, name: str, paths: Sequence[str]) -> Path:
    """A MURA-format manifest beside the archive's own, so the default data root still applies."""
    path = mura / f"{name}_image_paths.csv"
    path.write_text("".join(f"{line}\n" for line in paths))
    return path


def concatenate_files(sources: Sequence[Path], target: Path) -> Path:
    """Write the non-blank lines of several text files, in order, into one file."""
    lines: list[str] = []
    for source in sources:
        lines += [line for line in source.read_text().splitlines() if line.strip()]
    target.write_text("".join(f"{line}\n" for line in lines))
    return target


def ensure_model(path: Path, image_size: int = IMAGE_SIZE, alpha: float = ALPHA) -> Path:
    """Save the reference CAM classifier (untrained weights: speed does not depend on them) unless present."""
    if not path.exists():
        from reference.classifier import build_cam_classifier

        path.parent.mkdir(parents=True, exist_ok=True)
        build_cam_classifier(image_size, alpha, seed=0).save(path)
    return path


def decode_inputs(archive_root: Path, paths: Sequence[str], input_size: tuple[int, int]) -> np.ndarray:
    """The model inputs of `paths`, decoded and resized by the pipeline's own loading function."""
    from transforms.imaging import load_model_input

    height, width = input_size
    inputs = np.empty((len(paths), height, width, 3), dtype=np.float32)
    for index, path in enumerate(paths):
        _, inputs[index] = load_model_input((archive_root / path).read_bytes(), height, width)
    return inputs
