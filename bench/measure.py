"""One bench measurement in a fresh process: `python -m bench.measure KIND ...` prints one JSON line.

Each measurement gets its own process because TensorFlow takes its threading settings once per
process, before its runtime starts: cam-audit and the limit in cam-audit's layout run with one
intra-op thread per forward thread, the RunInference alternative, the classic recipe and the
TensorFlow-default limit with TensorFlow's defaults, as a user would run them. A fresh process
also leaves no allocator, cache or trace state from one measurement to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PIPELINES = ("cam_audit", "runinference")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.measure", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    limit = kinds.add_parser("limit", help="bare forward throughput on decoded images")
    limit.add_argument("--model", required=True)
    limit.add_argument("--archive", type=Path, required=True, help="folder the manifest's paths are relative to")
    limit.add_argument("--manifest", type=Path, required=True, help="MURA manifest; its first images are decoded")
    limit.add_argument("--layout", required=True)
    limit.add_argument("--batch_size", type=int, default=32)
    limit.add_argument("--seconds", type=float, default=6.0)
    limit.add_argument("--mixed_precision", action="store_true")
    limit.add_argument("--forward_threads", type=int, default=0, help="cam-audit's flag, for the cam_audit layout")
    limit.add_argument("--micro_batch_size", type=int, default=0, help="cam-audit's flag, for the cam_audit layout")
    pipeline = kinds.add_parser("pipeline", help="one in-process run of a pipeline; the rest is its command line")
    pipeline.add_argument("name", choices=PIPELINES)
    pipeline.add_argument("argv", nargs=argparse.REMAINDER)
    non_model = kinds.add_parser("nonmodel", help="the non-model work alone, in a tight loop per process")
    non_model.add_argument("--archive", type=Path, required=True)
    non_model.add_argument("--manifest", type=Path, required=True)
    non_model.add_argument("--input_size", type=int, required=True, help="the model's square input size")
    non_model.add_argument("--cam_size", type=int, required=True, help="the model's square CAM grid")
    non_model.add_argument("--processes", type=int, required=True)
    non_model.add_argument("--seconds", type=float, default=6.0)
    non_model.add_argument("--cams", type=Path, help="the model's CAMs of the images (`cams`); default: a blob CAM")
    cams = kinds.add_parser("cams", help="the model's CAMs of the images the limits and the loop use, saved (.npz)")
    cams.add_argument("--model", required=True)
    cams.add_argument("--archive", type=Path, required=True)
    cams.add_argument("--manifest", type=Path, required=True)
    cams.add_argument("--layout", required=True)
    cams.add_argument("--batch_size", type=int, default=32)
    cams.add_argument("--out", type=Path, required=True)
    classic = kinds.add_parser("classic", help="the classic per-image recipe")
    classic.add_argument("--model", required=True)
    classic.add_argument("--archive", type=Path, required=True)
    classic.add_argument("--manifest", type=Path, required=True)
    classic.add_argument("--images", type=int, required=True)
    classic.add_argument("--out", type=Path, required=True)
    method = kinds.add_parser("method", help="forward throughput of one explanation method (bench.methods)")
    method.add_argument("--model", required=True)
    method.add_argument("--archive", type=Path, required=True)
    method.add_argument("--manifest", type=Path, required=True)
    method.add_argument("--method", required=True, help="a --method name, or 'bare' for the classifier alone")
    method.add_argument("--faithfulness", action="store_true")
    method.add_argument("--batch_size", type=int, default=32)
    method.add_argument("--seconds", type=float, default=6.0)
    method.add_argument("--images", type=int, default=512, help="decoded images cycled over")
    return parser.parse_args(argv)


def measure_limit(args: argparse.Namespace) -> dict:
    from bench.forward import LIMIT_IMAGES, limit_loader, time_forward
    from bench.workload import decode_inputs, manifest_image_paths

    loader = limit_loader(args.model, args.layout, args.batch_size, args.mixed_precision, args.forward_threads,
                          args.micro_batch_size)
    model = loader.load_model()  # sets TensorFlow up first: this is the process's first use of it
    inputs = decode_inputs(args.archive, manifest_image_paths(args.manifest)[:LIMIT_IMAGES], model.input_size)
    limit = time_forward(model, args.layout, inputs, args.batch_size, args.seconds)
    return {**dataclasses.asdict(limit), "images_per_second": limit.images_per_second}


def measure_pipeline(args: argparse.Namespace) -> dict:
    from bench.runinference_baseline import run_runinference_audit
    from pipeline.run import run
    from transforms.output_paths import RUN_INFO_FILE

    function = run if args.name == "cam_audit" else run_runinference_audit
    argv = [arg for arg in args.argv if arg != "--"]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        function(argv)
    result = {"seconds": time.perf_counter() - start}
    if args.name == "cam_audit":
        # The pipeline proper, as run_info.json times it: without the launcher's checks and LiteRT
        # conversion, a fixed cost whose jitter (seconds) would swamp the steady-state difference.
        info = json.loads(Path(argv[argv.index("--output") + 1], RUN_INFO_FILE).read_text())
        result["pipeline_seconds"] = info["wall_seconds"]
    return result


def measure_non_model(args: argparse.Namespace) -> dict:
    from bench.forward import LIMIT_IMAGES
    from bench.nonmodel import ModelCams, time_non_model
    from bench.workload import manifest_image_paths

    cams = ModelCams.load(args.cams) if args.cams else None
    rate = time_non_model(args.archive, manifest_image_paths(args.manifest)[:LIMIT_IMAGES],
                          (args.input_size, args.input_size), (args.cam_size, args.cam_size), args.processes,
                          args.seconds, cams)
    return {**dataclasses.asdict(rate), "images_per_second": rate.images_per_second, "model_cams": cams is not None}


def measure_cams(args: argparse.Namespace) -> dict:
    from bench.forward import LIMIT_IMAGES, limit_loader, model_cams
    from bench.workload import decode_inputs, manifest_image_paths

    model = limit_loader(args.model, args.layout, args.batch_size).load_model()
    inputs = decode_inputs(args.archive, manifest_image_paths(args.manifest)[:LIMIT_IMAGES], model.input_size)
    cams = model_cams(model, inputs, args.batch_size)
    cams.save(args.out)
    return {"images": len(cams.maps), "cam_size": list(cams.maps.shape[1:]), "shift": list(cams.shift),
            "backend": model.backend}


def measure_classic(args: argparse.Namespace) -> dict:
    from bench.classic_recipe import time_classic_recipe
    from bench.workload import manifest_image_paths

    paths = manifest_image_paths(args.manifest)[: args.images]
    return {"seconds": time_classic_recipe(args.model, args.archive, paths, args.out), "images": len(paths)}


def measure_method(args: argparse.Namespace) -> dict:
    from bench.methods import time_method

    return time_method(args.model, args.method, args.faithfulness, args.archive, args.manifest, args.batch_size,
                       args.seconds, args.images)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger().setLevel(logging.ERROR)
    measure = {"limit": measure_limit, "pipeline": measure_pipeline, "classic": measure_classic,
               "nonmodel": measure_non_model, "cams": measure_cams, "method": measure_method}[args.kind]  # fmt: skip
    before = os.times()
    result = measure(args)
    after = os.times()
    # CPU seconds of the whole measurement (loading included): what the process cost, besides its wall time.
    result["process_cpu_seconds"] = (after.user + after.system) - (before.user + before.system)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
