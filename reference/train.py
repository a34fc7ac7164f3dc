"""Train the reference CAM classifier on a MURA-layout archive: `python -m reference.train ...`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reference.classifier import HEADS
from transforms import files
from transforms.imaging import SIXTEEN_BIT_MODES, ImageDecodeError, load_model_input
from transforms.manifest import inspect_manifest, read_labels
from transforms.metrics import accuracy, cohen_kappa, format_metric, study_votes
from transforms.mura import default_data_root, manifest_entry, resolve_image_path

CLASS_NAMES = ("normal", "abnormal")


@dataclasses.dataclass(frozen=True)
class LabelledImages:
    """Images of one split with their labels and studies, in manifest order."""

    uris: list[str]
    labels: np.ndarray  # int64, 0/1
    studies: list[str]
    manifest_sha256: str


def read_labelled_manifest(manifest: str, labels_file: str | None, data_root: str | None) -> LabelledImages:
    """Manifest lines -> resolved image paths with labels; lines without a label are refused."""
    fmt, columns = inspect_manifest(manifest, "auto")
    labels = read_labels(labels_file) if labels_file else None
    root = data_root or default_data_root(manifest, fmt)
    data = files.read_bytes(manifest)
    uris, targets, studies = [], [], []
    for line in data.decode("utf-8").splitlines():
        entry = manifest_entry(line, columns, labels)
        if entry is None:
            continue
        if entry.error or entry.label is None:
            raise ValueError(f"{manifest}: cannot train on {line.strip()!r}: {entry.error or 'no label'}")
        uris.append(resolve_image_path(entry.image_path, root))
        targets.append(entry.label)
        studies.append(entry.study_id or entry.image_path)
    if not uris:
        raise ValueError(f"{manifest}: no images")
    return LabelledImages(uris, np.array(targets, dtype=np.int64), studies, hashlib.sha256(data).hexdigest())


def load_for_training(uri: bytes, image_size: int, sixteen_bit: str = "minmax") -> tuple[np.ndarray, bool]:
    """The inference loading path (`load_model_input`) for tf.data; bad images are flagged, not fatal."""
    try:
        data = files.read_bytes(uri.decode("utf-8"))
        _, model_input = load_model_input(data, image_size, image_size, sixteen_bit=sixteen_bit)
        return model_input, True
    except (ImageDecodeError, OSError) as exc:
        print(f"skipping unreadable training image {uri.decode('utf-8')}: {exc}", file=sys.stderr)
        return np.zeros((image_size, image_size, 3), np.float32), False


def augmenter(seed: int) -> Any:
    """Random flips, small rotations, zoom-out, brightness/contrast, as Keras preprocessing layers.

    Flips go both ways: with horizontal flips only, the demo model's CAM peaks sat a cell above
    the findings on average (a detector free to be asymmetric in y learns to be).

    Zoom-out (positive RandomZoom factors) shrinks the anatomy into a black border, which the
    classic MURA CAM tutorial found useful: many MURA views are taken zoomed out.
    """
    import keras

    return keras.Sequential(
        [
            # Two layers: Keras' "horizontal_and_vertical" flips both axes together (a 180 degree
            # turn), never one alone.
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomFlip("vertical", seed=seed + 5),
            keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom((0.0, 0.3), fill_mode="constant", seed=seed + 2),
            keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 3),
            keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 4),
        ],
        name="augment",
    )


def make_dataset(
    images: LabelledImages, image_size: int, batch_size: int, training: bool, seed: int, sixteen_bit: str = "minmax"
) -> Any:
    """tf.data: parallel decode through the shared loader, augmentation when training, prefetch."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images.uris, images.labels))
    if training:
        dataset = dataset.shuffle(len(images.uris), seed=seed, reshuffle_each_iteration=True)

    def load(uri: Any, label: Any) -> tuple[Any, Any, Any]:
        pixels, ok = tf.numpy_function(
            lambda u: load_for_training(u, image_size, sixteen_bit), [uri], [tf.float32, tf.bool], stateful=False
        )
        pixels.set_shape((image_size, image_size, 3))
        return pixels, label, ok

    # Deterministic order (parallel decode still runs): with op determinism on, the same seed gives
    # the same model on the same machine.
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.filter(_was_readable).map(_drop_flag)
    if not training:
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    augment = augmenter(seed)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _was_readable(pixels: Any, label: Any, ok: Any) -> Any:
    return ok


def _drop_flag(pixels: Any, label: Any, ok: Any) -> tuple[Any, Any]:
    return pixels, label


def class_weights(labels: np.ndarray, num_classes: int = 2) -> dict[int, float]:
    """Balanced weights n / (k * n_c), so the rarer class counts as much as the common one."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    return {c: float(len(labels) / (num_classes * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}


def evaluate(
    model: Any, images: LabelledImages, image_size: int, batch_size: int, sixteen_bit: str = "minmax"
) -> dict[str, float | None]:
    """Image accuracy, and study-level accuracy and Cohen's kappa by MURA's mean-probability rule."""
    dataset = make_dataset(images, image_size, batch_size, False, 0, sixteen_bit)
    probabilities = model.predict(dataset, verbose=0)
    predicted = probabilities.argmax(axis=1)
    if len(predicted) != len(images.labels):  # unreadable images were filtered out
        return {"image_accuracy": None, "study_accuracy": None, "study_kappa": None}
    votes = study_votes(images.studies, probabilities[:, 1])
    truth = {study: label for study, label in zip(images.studies, images.labels, strict=True)}
    keys = sorted(votes)
    study_truth = np.array([truth[k] for k in keys])
    study_pred = np.array([votes[k][1] for k in keys])
    return {
        "image_accuracy": accuracy(images.labels, predicted),
        "study_accuracy": accuracy(study_truth, study_pred),
        "study_kappa": cohen_kappa(study_truth, study_pred),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m reference.train", description=__doc__)
    parser.add_argument("--manifest", required=True, help="training *_image_paths.csv (or CSV with header)")
    parser.add_argument("--labels", default=None, help="training *_labeled_studies.csv")
    parser.add_argument("--valid_manifest", required=True, help="validation *_image_paths.csv")
    parser.add_argument("--valid_labels", default=None, help="validation *_labeled_studies.csv")
    parser.add_argument("--data_root", default=None, help="root for relative paths (default as pipeline.run)")
    parser.add_argument("--out", required=True, help="output .keras file; a .json sidecar goes beside it")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--feature_stride", type=int, default=32, choices=(8, 16, 32))
    parser.add_argument(
        "--head", default="gap", choices=HEADS, help="gap: GAP -> Dense (classic CAM); dense: GMP -> Dense -> Dense"
    )
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sixteen_bit",
        default="minmax",
        choices=SIXTEEN_BIT_MODES,
        help="16-bit grey to 8 bits, as pipeline.run's --sixteen_bit (pass the same to the audit)",
    )
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2), help="Keras progress: 1 bar, 2 per epoch")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, keep the best checkpoint by validation loss, evaluate it, write model + sidecar."""
    import keras

    from reference.classifier import build_cam_classifier

    if not args.out.endswith(".keras"):
        raise ValueError(f"--out must end in .keras, got {args.out!r}")
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    train_images = read_labelled_manifest(args.manifest, args.labels, args.data_root)
    valid_images = read_labelled_manifest(args.valid_manifest, args.valid_labels, args.data_root)
    model = build_cam_classifier(
        args.image_size, args.alpha, len(CLASS_NAMES), args.feature_stride, seed=args.seed, head=args.head
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    checkpoint = keras.callbacks.ModelCheckpoint(args.out, monitor="val_loss", save_best_only=True)
    history = model.fit(
        make_dataset(train_images, args.image_size, args.batch_size, True, args.seed, args.sixteen_bit),
        validation_data=make_dataset(
            valid_images, args.image_size, args.batch_size, False, args.seed, args.sixteen_bit
        ),
        epochs=args.epochs,
        class_weight=class_weights(train_images.labels),
        callbacks=[checkpoint],
        verbose=args.verbose,
    )
    best = keras.saving.load_model(args.out, compile=False)
    train_metrics = evaluate(best, train_images, args.image_size, args.batch_size, args.sixteen_bit)
    valid_metrics = evaluate(best, valid_images, args.image_size, args.batch_size, args.sixteen_bit)
    sidecar = {
        "class_names": list(CLASS_NAMES),
        "input_size": [args.image_size, args.image_size],
        "alpha": args.alpha,
        "feature_stride": args.feature_stride,
        "head": args.head,
        "epochs": args.epochs,
        "sixteen_bit": args.sixteen_bit,  # the audit must pass the same --sixteen_bit
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
        "train_manifest": args.manifest,
        "train_manifest_sha256": train_images.manifest_sha256,
        "train_images": len(train_images.uris),
        "valid_images": len(valid_images.uris),
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "metrics": {"train": train_metrics, "valid": valid_metrics},
    }
    Path(os.path.splitext(args.out)[0] + ".json").write_text(json.dumps(sidecar, indent=2))

    print(
        f"trained {args.out}: train accuracy {format_metric(train_metrics['image_accuracy'])}, "
        f"valid accuracy {format_metric(valid_metrics['image_accuracy'])}, "
        f"valid study kappa {format_metric(valid_metrics['study_kappa'])} "
        f"(study accuracy {format_metric(valid_metrics['study_accuracy'])})"
    )
    return sidecar


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
