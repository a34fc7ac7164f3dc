"""`python -m pipeline.sanity`: cascading model-randomisation check of the explanation methods (Adebayo et al. 2018).

The classifier's weighted layers are re-initialised one by one from the output downwards
(cascading: each step keeps the earlier ones randomised) and every method re-explains a sample of
images. A method whose maps depend on what the model learned shows the Spearman rank correlation
between its original and randomised maps collapse; one that merely redraws the image's edges
keeps it high. Re-initialisation draws each trainable array from a zero-mean normal with the
original array's standard deviation (zeros stay zeros), as a fresh initialiser would; the
BatchNorm moving statistics are left as they are. Each image keeps the class the original model
predicted for it, so only the model changes between the maps compared.

The correlation reported is the mean over the images and over `repeats` independent cascades. A
map linear in the randomised weights (CAM in the Dense kernel) flips sign with them: one draw can
keep a high |correlation| by chance (the channels share the image's bright regions), and the mean
over draws is what tends to 0. A map that does not depend on the weights stays near 1 in every draw.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from transforms import files
from transforms.imaging import ImageDecodeError, load_model_input
from transforms.manifest import inspect_manifest
from transforms.methods import METHODS, default_method
from transforms.model_files import load_keras_model
from transforms.mura import default_data_root, manifest_entry, resolve_image_path

# Mean |Spearman| under which a method's maps count as decorrelated from the trained model's.
COLLAPSE_THRESHOLD = 0.5


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0 .. n-1 of the flattened values, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (average ranks for ties); 0.0 when either is constant."""
    ranks_a, ranks_b = average_ranks(a), average_ranks(b)
    if np.ptp(ranks_a) == 0 or np.ptp(ranks_b) == 0:
        return 0.0
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def weighted_layers_top_down(model: Any) -> list[Any]:
    """Layers with trainable weights, nested models flattened, from the output back to the input."""
    layers: list[Any] = []
    for layer in model.layers:
        if hasattr(layer, "layers") and hasattr(layer, "outputs"):
            layers.extend(reversed(weighted_layers_top_down(layer)))
        elif layer.trainable_weights:
            layers.append(layer)
    return list(reversed(layers))


def randomise_layer(layer: Any, rng: np.random.Generator) -> None:
    """Re-initialise a layer's trainable arrays in place: zero-mean normal, each array's own std."""
    for variable in layer.trainable_weights:
        value = np.asarray(variable.numpy())
        variable.assign(rng.normal(0.0, float(value.std()), value.shape).astype(value.dtype))


@dataclasses.dataclass(frozen=True)
class SanityStep:
    """Mean rank correlation per method after the cascade reached `layer` (over images and repeats)."""

    layer: str
    correlations: dict[str, float]  # method -> mean Spearman over the sample


@dataclasses.dataclass(frozen=True)
class SanityReport:
    """The cascade, top layer first; a method passes when randomising the output layer alone collapses it."""

    methods: tuple[str, ...]
    images: int
    repeats: int
    steps: tuple[SanityStep, ...]

    def collapse_layer(self, method: str) -> str | None:
        """The first layer down the cascade at which the method's mean |correlation| is below the threshold."""
        return next((s.layer for s in self.steps if abs(s.correlations[method]) < COLLAPSE_THRESHOLD), None)

    def passes(self, method: str) -> bool:
        return bool(self.steps) and self.collapse_layer(method) == self.steps[0].layer

    def render(self) -> str:
        header = f"{'randomised down to':<32}" + "".join(f"{m:>11}" for m in self.methods)
        lines = [
            f"cascading randomisation, {self.images} images x {self.repeats} draws, "
            "mean Spearman(original map, randomised map)",
            header,
        ]
        for step in self.steps:
            lines.append(f"{step.layer:<32}" + "".join(f"{step.correlations[m]:>11.3f}" for m in self.methods))
        for m in self.methods:
            where = self.collapse_layer(m)
            verdict = "passes" if self.passes(m) else "FAILS"
            lines.append(f"{m}: {verdict}, |correlation| < {COLLAPSE_THRESHOLD} from {where or 'no step'} on")
        return "\n".join(lines)


Explain = Any  # a method's traced callable: batch -> (probabilities, classes, maps)


def explain_per_class(explainers: dict[int, Explain], batch: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Raw maps of each image's given class, one call per class present."""
    maps: np.ndarray | None = None
    for cls in np.unique(classes):
        picked = classes == cls
        _, _, class_maps = explainers[int(cls)](batch[picked])
        if maps is None:
            maps = np.zeros((len(batch), *class_maps.shape[1:]), np.float32)
        maps[picked] = class_maps
    assert maps is not None
    return maps


def cascading_randomisation(
    model: Any,
    batch: np.ndarray,
    methods: Sequence[str],
    preprocess: str = "none",
    max_layers: int = 8,
    repeats: int = 3,
    seed: int = 0,
) -> SanityReport:
    """Randomise up to `max_layers` weighted layers from the top, `repeats` times; the model is restored after.

    Each method is built and traced once per class: its traced function reads the layers' variables,
    so it sees every re-initialisation without being rebuilt.
    """
    rng = np.random.default_rng(seed)
    trained = model.get_weights()
    probabilities, _, _ = METHODS[methods[0]](model, preprocess).traced()(batch)
    classes = probabilities.argmax(axis=1)
    explainers = {
        m: {int(c): METHODS[m](model, preprocess, int(c)).traced() for c in np.unique(classes)} for m in methods
    }
    original = {m: explain_per_class(explainers[m], batch, classes) for m in methods}
    layers = weighted_layers_top_down(model)[:max_layers]
    sums = np.zeros((len(layers), len(methods)))
    try:
        for _ in range(repeats):
            model.set_weights(trained)
            for step, layer in enumerate(layers):
                randomise_layer(layer, rng)
                for column, method in enumerate(methods):
                    randomised = explain_per_class(explainers[method], batch, classes)
                    pairs = zip(original[method], randomised, strict=True)
                    sums[step, column] += np.mean([spearman(a, b) for a, b in pairs])
    finally:
        model.set_weights(trained)
    steps = tuple(
        SanityStep(layer.name, {m: float(sums[step, column] / repeats) for column, m in enumerate(methods)})
        for step, layer in enumerate(layers)
    )
    return SanityReport(tuple(methods), len(batch), repeats, steps)


def sample_images(manifest: str, data_root: str | None, size: tuple[int, int], count: int, seed: int) -> np.ndarray:
    """Model inputs of `count` decodable images drawn at random (seeded) from a manifest."""
    fmt, columns = inspect_manifest(manifest, "auto")
    root = data_root or default_data_root(manifest, fmt)
    entries = [e for line in files.read_bytes(manifest).decode("utf-8").splitlines()
               if (e := manifest_entry(line, columns, None)) is not None and not e.error]  # fmt: skip
    inputs = []
    for index in np.random.default_rng(seed).permutation(len(entries)):
        try:
            data = files.read_bytes(resolve_image_path(entries[index].image_path, root))
            inputs.append(load_model_input(data, *size)[1])
        except (ImageDecodeError, OSError):
            continue
        if len(inputs) == count:
            break
    if not inputs:
        raise ValueError(f"--manifest {manifest!r}: no decodable image")
    return np.stack(inputs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sanity", description=__doc__)
    parser.add_argument("--model", required=True, help="Keras classifier (.keras/.h5)")
    parser.add_argument("--manifest", required=True, help="image manifest, as pipeline.run takes it")
    parser.add_argument("--data_root", default=None)
    parser.add_argument("--methods", default=None, help="comma-separated; default: every method the model allows")
    parser.add_argument("--preprocess", default="none", choices=("none", "mobilenet_v2"))
    parser.add_argument("--images", type=int, default=16, help="sample size")
    parser.add_argument("--max_layers", type=int, default=8, help="weighted layers randomised, from the top")
    parser.add_argument("--repeats", type=int, default=3, help="independent cascades averaged")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model, _ = load_keras_model(args.model)
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    else:
        methods = [m for m in METHODS if m != "cam" or default_method(model) == "cam"]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"pipeline.sanity: unknown method(s) {unknown}; choose from {list(METHODS)}", file=sys.stderr)
        return 2
    size = tuple(int(s) for s in model.inputs[0].shape[1:3])
    batch = sample_images(args.manifest, args.data_root, size, args.images, args.seed)
    report = cascading_randomisation(model, batch, methods, args.preprocess, args.max_layers, args.repeats, args.seed)
    print(report.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
