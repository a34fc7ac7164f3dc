"""Forward throughput of each explanation method (and of --faithfulness) beside the bare forward pass.

`python -m bench.methods [--quick]` on its own; `make bench` runs the same measurements (stage
"methods"). Each figure is `bench.forward.time_forward` over decoded images, in a fresh process
(`python -m bench.measure method ...`), in cam-audit's forward layout: the model's traced call per
micro-batch on the forward threads, outputs back as numpy. "bare" is the classifier's own forward
pass (probabilities only), the reference every ratio is taken to.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from transforms.methods import METHODS
from transforms.methods.base import CamMethod

BARE = "bare"
# (label, method, faithfulness): every method, then the faithfulness measurement on the default gradient method.
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    (BARE, BARE, False),
    *((name, name, False) for name in METHODS),
    ("hirescam+faithfulness", "hirescam", True),
)


class BareForward(CamMethod):
    """The classifier alone in the CamMethod shape: probabilities, predicted classes, a 1x1 zero map."""

    name = BARE

    @property
    def num_classes(self) -> int:
        return int(self.model.outputs[0].shape[-1])

    @property
    def features(self) -> Any:
        return self.model.inputs[0]

    @property
    def target_name(self) -> str:
        return ""

    def probabilities(self, batch: Any) -> Any:
        return self.model(self.scale(batch), training=False)

    def explain(self, batch: Any) -> tuple[Any, Any, Any]:
        import tensorflow as tf

        probabilities = self.probabilities(batch)
        return probabilities, self.explained_classes(probabilities), tf.zeros([tf.shape(batch)[0], 1, 1])


def time_method(
    model_path: str,
    method: str,
    faithfulness: bool,
    archive: Path,
    manifest: Path,
    batch_size: int,
    seconds: float,
    images: int,
) -> dict[str, Any]:
    """Images per second of one method (or BARE) through the pipeline's loader, in cam-audit's layout.

    `images` decoded images are cycled over (at least one whole pass is timed, after two warm-up batches).
    """
    from bench.forward import time_forward
    from bench.workload import decode_inputs, manifest_image_paths
    from transforms.inference import CamModelLoader, LoadedCamModel
    from transforms.model_files import load_keras_model

    loader = CamModelLoader(model_path, method="cam" if method == BARE else method, batch_size=batch_size,
                            faithfulness=faithfulness)  # fmt: skip
    if method == BARE:
        layout = loader.configure_process()
        model, _ = load_keras_model(model_path)
        bare = BareForward(model)
        loaded = LoadedCamModel(bare.traced(), bare.num_classes, (0.0, 0.0), layout, bare.input_size)
    else:
        loaded = loader.load_model()
    inputs = decode_inputs(archive, manifest_image_paths(manifest)[:images], loaded.input_size)
    limit = time_forward(loaded, method, inputs, batch_size, seconds)
    return {"images": limit.images, "seconds": limit.seconds, "images_per_second": limit.images_per_second}


def measure_methods(model: Path, archive: Path, manifest: Path, batch_size: int, seconds: float) -> dict[str, Any]:
    """Every VARIANT in a process of its own: {label: {images_per_second, other_cores, ...}}.

    Faithfulness runs 35 more forward passes per image: it cycles over one batch of images, not 128.
    """
    from bench.forward import LIMIT_IMAGES
    from bench.run_bench import measure_apart

    results: dict[str, Any] = {}
    for label, method, faithfulness in VARIANTS:
        command = ["method", "--model", str(model), "--archive", str(archive), "--manifest", str(manifest),
                   "--method", method, "--batch_size", str(batch_size), "--seconds", str(seconds),
                   "--images", str(batch_size if faithfulness else LIMIT_IMAGES),
                   *(["--faithfulness"] if faithfulness else [])]  # fmt: skip
        measured, other_cores = measure_apart(command)
        results[label] = {**measured, "other_cores": other_cores}
        print(f"[bench] method {label}: {measured['images_per_second']:.1f} images/s "
              f"(other processes: {other_cores:.2f} cores)", flush=True)  # fmt: skip
    return results


def render_methods(results: dict[str, Any]) -> str:
    """The table: images/s, ratio to the bare forward pass, and the faithfulness cost per image."""
    bare = results[BARE]["images_per_second"]
    lines = [f"{'method':<24}{'images/s':>10}{'x bare':>9}{'ms/image':>10}{'other cores':>13}"]
    for label, figures in results.items():
        rate = figures["images_per_second"]
        lines.append(f"{label:<24}{rate:>10.1f}{rate / bare:>9.2f}{1000 / rate:>10.1f}{figures['other_cores']:>13.2f}")
    if "hirescam+faithfulness" in results and "hirescam" in results:
        with_it, without = results["hirescam+faithfulness"], results["hirescam"]
        extra = 1000 / with_it["images_per_second"] - 1000 / without["images_per_second"]
        lines.append(f"faithfulness costs {extra:.1f} ms of forward work per image on top of hirescam")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from bench.run_bench import REPO_ROOT
    from bench.workload import MODEL_FILE, archive_image_paths, ensure_archive, ensure_model, write_manifest

    parser = argparse.ArgumentParser(prog="python -m bench.methods", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out")
    parser.add_argument("--quick", action="store_true", help="1.5 s per figure, 40 patients (for checking the code)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=None, help="minimum timed seconds per figure (default 6)")
    parser.add_argument("--model", type=Path, default=None, help="another model (default: the bench's, MobileNetV2 "
                        "alpha 1.0 at 224 px)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (1.5 if args.quick else 6.0)
    patients = 40 if args.quick else 300
    archive = args.out / f"archive_{patients}p"
    mura = ensure_archive(archive, patients)
    manifest = write_manifest(mura, "bench_methods", archive_image_paths(mura)[:128])
    model = args.model or ensure_model(args.out / MODEL_FILE)
    load = os.getloadavg()
    results = measure_methods(model, archive, manifest, args.batch_size, seconds)
    print(f"\nmethods on {model.name}, batch {args.batch_size}, load average {np.round(load, 2).tolist()} -> "
          f"{np.round(os.getloadavg(), 2).tolist()} on {os.cpu_count()} cores")  # fmt: skip
    print(render_methods(results))
    (args.out / "methods.json").write_text(json.dumps({"load_average": load, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
