"""GPU figures without TensorFlow: the one-pass CAM model on Keras-JAX, its accuracy, and the CPU work that feeds it.

The GPU machine lent for issue 14 has JAX but no TensorFlow and no Beam, so `probe` runs the project's own
`build_cam_model` on Keras 3's JAX backend and checks it against `reference`, an .npz made here with TensorFlow.
Nothing in `probe` imports TensorFlow or apache_beam (it records whether either was loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import cpu_model
from bench.nonmodel import time_non_model
from bench.report import essential_limit

DEFAULT_MODELS = ("bench/out/cam_mobilenetv2_a100_224.keras", "bench/out/cam_mobilenetv2_a035_128.keras")
DEFAULT_IMAGES = "bench/out/archive_2000p/MURA-v1.1/train"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
REFERENCE_IMAGES = 32
# (variant, matmul precision) pairs timed per model and batch size. Keras's own predict_on_batch is timed at
# the default precision only: every pair is one more XLA compile per batch size, and the device time is short.
FORWARD_RUNS = (("keras_predict_on_batch", "default"), ("jit_host", "default"), ("jit_device", "default"),
                ("jit_host", "highest"), ("jit_device", "highest"))  # fmt: skip
PRECISIONS = ("default", "highest")


def parse_sizes(text: str) -> list[int]:
    """'32,128,512' -> [32, 128, 512]."""
    return [int(part) for part in text.split(",") if part]


def image_files(folder: Path) -> list[Path]:
    """Every PNG/JPEG under `folder`, in a fixed order."""
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def model_inputs(paths: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
    """N x h x w x 3 uint8 model inputs: the pipeline's decode and resize (bench.workload), whose values are whole."""
    from bench.workload import decode_inputs

    return decode_inputs(Path(), [str(path) for path in paths], size).astype(np.uint8)


def tiled(inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """A float32 RGB 0..255 batch of `batch_size` images, cycling through `inputs`."""
    return inputs[np.arange(batch_size) % len(inputs)].astype(np.float32)


def load_model(path: str) -> tuple[Any, str]:
    """(Keras model, sha256 of its file), loaded as transforms.model_files does, from a local path.

    Not through load_keras_model, which reads any FileSystems path through Beam: the probe's machine has none.
    """
    import keras

    # hashlib here, not transforms.model_files.file_sha256: that module imports transforms.files (Beam) at load.
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model, hashlib.sha256(Path(path).read_bytes()).hexdigest()


def jitted_forward(cam_model: Any) -> Callable[[Any], list[Any]]:
    """batch -> [probabilities, CAMs]: the model's stateless call under jax.jit, weights passed as arguments."""
    import jax

    @jax.jit
    def forward(trainable: list[Any], non_trainable: list[Any], batch: Any) -> list[Any]:
        outputs, _ = cam_model.stateless_call(trainable, non_trainable, batch, training=False)
        return outputs

    def call(batch: Any) -> list[Any]:
        # The weights are read at every call: Keras-JAX's predict_on_batch donates the variables' buffers and
        # stores new ones, so arrays taken once would be deleted after it runs.
        trainable = [variable.value for variable in cam_model.trainable_variables]
        non_trainable = [variable.value for variable in cam_model.non_trainable_variables]
        return forward(trainable, non_trainable, batch)

    return call


def precision(name: str) -> contextlib.AbstractContextManager:
    """JAX's matmul/conv precision for float32: 'default' (TF32 allowed on recent GPUs) or 'highest' (full fp32)."""
    import jax

    return contextlib.nullcontext() if name == "default" else jax.default_matmul_precision(name)


def forward_call(variant: str, cam_model: Any, forward: Callable, batch: np.ndarray) -> Callable[[], Any]:
    """One timed call of `variant`, which returns only when its outputs are ready.

    keras_predict_on_batch and jit_host take numpy and give numpy back (the host<->device copies a pipeline
    pays); jit_device starts from a batch already on the device and stops when the outputs are computed.
    """
    import jax

    if variant == "keras_predict_on_batch":
        return lambda: cam_model.predict_on_batch(batch)
    if variant == "jit_host":
        return lambda: [np.asarray(output) for output in forward(batch)]
    if variant == "jit_device":
        on_device = jax.device_put(batch)
        return lambda: jax.block_until_ready(forward(on_device))
    raise ValueError(f"unknown forward variant {variant!r}")


class GpuBusy:
    """Samples GPU 0's utilisation (percent) every `interval` seconds in a thread, through nvidia-ml-py."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        try:
            import pynvml

            pynvml.nvmlInit()
        except (ImportError, OSError):
            return self
        except Exception as exc:  # noqa: BLE001 - pynvml.NVMLError and friends: no GPU to sample, no figure
            print(f"gpu_probe: no GPU utilisation ({type(exc).__name__}: {exc})")
            return self
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.samples.append(int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            pynvml.nvmlShutdown()

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        """Mean and max percent over the samples (empty when nothing could be sampled)."""
        if not self.samples:
            return {}
        return {"gpu_util_mean": statistics.fmean(self.samples), "gpu_util_max": max(self.samples),
                "gpu_util_samples": len(self.samples)}  # fmt: skip


def time_call(call: Callable[[], Any], min_calls: int, min_seconds: float) -> dict[str, Any]:
    """Warm up (compile) with two calls, then per-call seconds of at least `min_calls` calls and `min_seconds`."""
    start = time.perf_counter()
    call()
    call()  # the second call shows whether anything is still being set up after the compile
    warmup = time.perf_counter() - start
    seconds: list[float] = []
    with GpuBusy() as busy:
        loop_start = time.perf_counter()
        while len(seconds) < min_calls or time.perf_counter() - loop_start < min_seconds:
            call_start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - call_start)
    return {"warmup_seconds": warmup, "calls": len(seconds), "median_seconds": statistics.median(seconds),
            "min_seconds": min(seconds), "max_seconds": max(seconds), **busy.summary()}  # fmt: skip


def compare_outputs(reference: dict[str, np.ndarray], probabilities: np.ndarray, cams: np.ndarray) -> dict[str, Any]:
    """How far the probe's outputs are from TensorFlow's: probabilities, classes, CAM peaks and CAM values."""
    classes = reference["probabilities"].argmax(axis=1)
    count = len(classes)

    def peaks(maps: np.ndarray) -> np.ndarray:
        # Each image's peak cell in the map of its reference class, the cell a heatmap is centred on.
        own = maps[np.arange(count), :, :, classes]
        return own.reshape(count, -1).argmax(axis=1)

    def cam_classes(maps: np.ndarray) -> np.ndarray:
        # A CAM's spatial mean is its class's logit less the Dense bias (Zhou et al. 2016), so this class
        # decision still tests the numerics when untrained weights leave every probability at 0.5.
        return maps.mean(axis=(1, 2)).argmax(axis=1)

    difference = (cams - reference["cams"]).reshape(count, -1)
    norms = np.linalg.norm(reference["cams"].reshape(count, -1), axis=1)  # per image
    return {
        "images": count,
        "reference_probability_range": float(np.ptp(reference["probabilities"])),
        "max_abs_dprob": float(np.abs(probabilities - reference["probabilities"]).max()),
        "same_class": int((probabilities.argmax(axis=1) == classes).sum()),
        "same_cam_class": int((cam_classes(cams) == cam_classes(reference["cams"])).sum()),
        "same_cam_peak": int((peaks(cams) == peaks(reference["cams"])).sum()),
        "cam_rel_l2": float(np.linalg.norm(difference) / np.linalg.norm(reference["cams"])),
        "worst_image_cam_rel_l2": float((np.linalg.norm(difference, axis=1) / norms).max()),
    }


def machine_facts() -> dict[str, Any]:
    """The GPU (nvidia-smi), the CPU and the JAX/Keras versions the figures were measured with."""
    import jax
    import keras

    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv"],
                             capture_output=True, text=True, timeout=30, check=False).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        smi = f"unavailable: {exc}"
    return {"nvidia_smi": smi, "cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
            "python": platform.python_version(), "jax": jax.__version__, "keras": keras.__version__,
            "keras_backend": keras.backend.backend(), "jax_backend": jax.default_backend(),
            "jax_devices": [str(device) for device in jax.devices()], "numpy": np.__version__}  # fmt: skip


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Write the results so far: a run cut short by a timeout still leaves what it measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Print a stage's start and its seconds, so that a log cut short shows where the time went."""
    print(f"gpu_probe: {name} ...", flush=True)
    start = time.perf_counter()
    yield
    print(f"gpu_probe: {name} done in {time.perf_counter() - start:.1f} s", flush=True)


def probe_model(
    model_path: str, references: dict[str, dict[str, np.ndarray]], images: Sequence[Path], args: argparse.Namespace
) -> dict[str, Any]:
    """Correctness against the TensorFlow reference, then forward timings, for one model file."""
    from transforms.cam_head import model_input_size
    from transforms.methods.cam import build_cam_model

    with stage(f"load {model_path}"):
        model, sha = load_model(model_path)
        cam_model = build_cam_model(model)
        forward = jitted_forward(cam_model)
    size = model_input_size(model)
    result: dict[str, Any] = {
        "model": Path(model_path).name,
        "sha256": sha,
        "input_size": size,
        "cam_size": tuple(cam_model.outputs[1].shape[1:3]),
        "correctness": {},
        "forward": [],
    }
    reference = references.get(sha)
    for name in PRECISIONS if reference is not None else ():
        with stage(f"correctness {name}"), precision(name):
            outputs = [np.asarray(output) for output in forward(reference["inputs"].astype(np.float32))]
            result["correctness"][name] = compare_outputs(reference, *outputs)
    inputs = model_inputs(images, size)
    for batch_size in args.batch_sizes:
        batch = tiled(inputs, batch_size)
        for variant, precision_name in FORWARD_RUNS:
            with stage(f"forward {variant} {precision_name} batch {batch_size}"), precision(precision_name):
                timing = time_call(forward_call(variant, cam_model, forward, batch), args.min_calls, args.min_seconds)
            result["forward"].append(
                {
                    "variant": variant,
                    "precision": precision_name,
                    "batch_size": batch_size,
                    **timing,
                    "images_per_second": batch_size / timing["median_seconds"],
                }
            )
    return result


def derived(model: dict[str, Any], non_model: list[dict[str, Any]]) -> dict[str, Any]:
    """The essential limit on this machine and the CPU processes needed to keep the GPU's forward pass fed, at full
    float32: the precision cam-audit runs at (configure_tensorflow turns TensorFloat-32 off)."""

    def best(variant: str) -> float:
        rates = [run["images_per_second"] for run in model["forward"]
                 if run["variant"] == variant and run["precision"] == "highest"]  # fmt: skip
        return max(rates, default=0.0)

    forward_host, forward_device = best("jit_host"), best("jit_device")
    one = next((rate["images_per_second"] for rate in non_model if rate["processes"] == 1), 0.0)
    every = max((rate["images_per_second"] for rate in non_model), default=0.0)
    enough = [rate["processes"] for rate in non_model if rate["images_per_second"] >= forward_host]
    return {
        "forward_host_images_per_second": forward_host,
        "forward_device_images_per_second": forward_device,
        "non_model_one_process": one,
        "non_model_best": every,
        # GPU and CPUs work at once in a pipeline, so the slower side sets the pace.
        "essential_limit_overlapped": min(forward_host, every),
        # bench.report's formula: both halves one after the other, as on a CPU-only machine.
        "essential_limit_serial": essential_limit(forward_host, every) if forward_host and every else 0.0,
        "processes_to_feed_gpu_linear": forward_host / one if one else float("inf"),
        "processes_to_feed_gpu_measured": min(enough, default=None),
    }


def print_table(results: dict[str, Any]) -> None:
    """The figures as plain text tables, derived lines labelled as such."""
    facts = results["machine"]
    print(f"\nmachine: {facts['nvidia_smi']!r}; {facts['cpu_count']} x {facts['cpu_model']}; jax {facts['jax']} "
          f"({facts['jax_backend']}: {', '.join(facts['jax_devices'])}); keras {facts['keras']}")  # fmt: skip
    if facts["jax_backend"] != "gpu":
        print("NOTE: NO GPU FOUND: every forward figure below ran on the CPU")
    for model in results["models"]:
        print(f"\n{model['model']}  input {model['input_size']}  CAM {model['cam_size']}")
        for name, check in model["correctness"].items():
            print(
                f"  vs TensorFlow CPU [{name:7}]: max|dprob| {check['max_abs_dprob']:.2e}  same class "
                f"{check['same_class']}/{check['images']} (by CAM mean {check['same_cam_class']})  same CAM peak "
                f"{check['same_cam_peak']}  CAM rel L2 {check['cam_rel_l2']:.2e} "
                f"(worst image {check['worst_image_cam_rel_l2']:.2e})"
            )
            if check["reference_probability_range"] < 1e-6:
                print(
                    "    NOTE: the reference's probabilities are all equal (untrained weights): the class and dprob "
                    "checks say little; CAM rel L2, peaks and the CAM-mean class still test the numerics"
                )
        print(f"  {'variant':24}{'precision':>10}{'batch':>7}{'median ms':>11}{'images/s':>11}{'warmup s':>10}"
              f"{'calls':>7}{'gpu% mean/max':>15}")  # fmt: skip
        for run in model["forward"]:
            busy = f"{run['gpu_util_mean']:.0f}/{run['gpu_util_max']}" if "gpu_util_mean" in run else "-"
            print(
                f"  {run['variant']:24}{run['precision']:>10}{run['batch_size']:>7}{run['median_seconds'] * 1e3:>11.2f}"
                f"{run['images_per_second']:>11.0f}{run['warmup_seconds']:>10.1f}{run['calls']:>7}{busy:>15}"
            )
        for rate in results["non_model"].get(model["model"], []):
            print(f"  non-model CPU work, {rate['processes']:>2} processes: {rate['images_per_second']:8.1f} images/s")
        for key, value in model.get("derived", {}).items():
            print(f"  derived {key}: {value:.1f}" if isinstance(value, float) else f"  derived {key}: {value}")
    print(f"\nimported tensorflow: {results['imported_tensorflow']}, apache_beam: {results['imported_apache_beam']}")


def run_probe(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, written to --out after each stage, then printed."""
    # Before the first Keras import: the GPU machine has no TensorFlow to fall back on.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    images = image_files(args.images)[: args.max_images]
    if not images:
        raise SystemExit(f"gpu_probe: no PNG/JPEG images under --images {str(args.images)!r}")
    references = {str(data["model_sha256"]): data for data in (dict(np.load(path)) for path in args.reference)}
    results: dict[str, Any] = {"args": vars(args), "machine": machine_facts(), "models": [], "non_model": {}}
    write_json(args.out, results)
    for model_path in args.model:
        results["models"].append(probe_model(model_path, references, images, args))
        write_json(args.out, results)
    for model in results["models"]:
        rates = []
        for processes in args.processes:
            with stage(f"non-model {model['model']} x{processes}"):
                rate = time_non_model(Path(), [str(path) for path in images], model["input_size"], model["cam_size"],
                                      processes, args.nonmodel_seconds)
            rates.append({**dataclasses.asdict(rate), "images_per_second": rate.images_per_second})
        results["non_model"][model["model"]] = rates
        model["derived"] = derived(model, rates)
        write_json(args.out, results)
    results["imported_tensorflow"] = "tensorflow" in sys.modules
    results["imported_apache_beam"] = "apache_beam" in sys.modules
    write_json(args.out, results)
    print_table(results)
    return results


def run_reference(args: argparse.Namespace) -> None:
    """TensorFlow-on-CPU outputs of the one-pass CAM model for the first --count images, as the probe's yardstick."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from transforms.cam_head import model_input_size
    from transforms.methods.cam import build_cam_model
    from transforms.model_files import load_keras_model

    model, sha = load_keras_model(args.model)
    paths = image_files(args.images)[: args.count]
    inputs = model_inputs(paths, model_input_size(model))
    probabilities, cams = build_cam_model(model).predict_on_batch(inputs.astype(np.float32))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, inputs=inputs, probabilities=np.asarray(probabilities), cams=np.asarray(cams),
                        model_sha256=sha, images=np.array([path.name for path in paths]))  # fmt: skip
    print(
        f"gpu_probe: {len(paths)} reference outputs of {args.model} -> {args.out} ({args.out.stat().st_size:,} bytes)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The two commands: probe (on the GPU machine, Keras-JAX) and reference (here, TensorFlow on the CPU)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_probe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("probe", help="machine facts, correctness, forward and non-model rates (Keras-JAX)")
    probe.add_argument("--model", action="append", help=f"a .keras file, repeatable (default: {DEFAULT_MODELS})")
    probe.add_argument("--reference", action="append", default=[], type=Path,
                       help="a `reference` .npz, repeatable; matched to its model by the file's sha256")  # fmt: skip
    probe.add_argument("--images", type=Path, default=Path(DEFAULT_IMAGES), help="folder searched for PNG/JPEG")
    probe.add_argument("--max_images", type=int, default=200)
    probe.add_argument("--batch_sizes", type=parse_sizes, default=[32, 128, 512])
    probe.add_argument("--min_calls", type=int, default=20, help="timed calls per figure (the median is kept)")
    probe.add_argument("--min_seconds", type=float, default=1.5, help="and at least this long, for GPU sampling")
    probe.add_argument("--processes", type=parse_sizes, default=[1, 2, 4, 8, 16])
    probe.add_argument("--nonmodel_seconds", type=float, default=3.0)
    probe.add_argument("--out", type=Path, required=True, help="JSON written after every stage")
    reference = commands.add_parser("reference", help="TensorFlow CPU outputs for `probe` to compare against")
    reference.add_argument("--model", default=DEFAULT_MODELS[0])
    reference.add_argument("--images", type=Path, default=Path(DEFAULT_IMAGES))
    reference.add_argument("--count", type=int, default=REFERENCE_IMAGES)
    reference.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "probe" and not args.model:
        args.model = list(DEFAULT_MODELS)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the chosen command."""
    args = parse_args(argv)
    if args.command == "probe":
        run_probe(args)
    else:
        run_reference(args)


if __name__ == "__main__":
    main()
