"""`make bench`: cam-audit's throughput beside its limit and two alternatives, and its memory, in one run."""

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.forward import LIMIT_IMAGES
from bench.machine import environment, select_device, visible_device
from bench.noise import OtherLoad
from bench.report import BASE_SUFFIX, MIB, Measurements, render_rss, render_table, render_targets
from bench.targets import NOISY_CORES, summarise
from bench.workload import (
    MODEL_FILE,
    archive_image_paths,
    audit_argv,
    decode_inputs,
    ensure_archive,
    ensure_model,
    write_manifest,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Sizes for `make bench` (well under 15 minutes on 2 cores) and for --quick (about 2 minutes).
FULL_SIZES = {"images": 1536, "base_images": 512, "classic_images": 48, "rss_sizes": "1000,8000", "patients": 2000,
              "limit_seconds": 6.0, "repeats": 3}
QUICK_SIZES = {"images": 384, "base_images": 128, "classic_images": 4, "rss_sizes": "200,800", "patients": 300,
               "limit_seconds": 3.0, "repeats": 1}
STAGES = ("png", "no_heatmaps", "runinference", "classic", "rss")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The bench's options; sizes default to FULL_SIZES, or QUICK_SIZES with --quick."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out", help="work and results folder")
    parser.add_argument("--quick", action="store_true", help="small sizes for development (~2 min)")
    parser.add_argument("--images", type=int, help="images in the large run of each throughput pair")
    parser.add_argument("--base_images", type=int,
                        help="images in the small run; rates are (images - base) / (T(images) - T(base))")
    parser.add_argument("--classic_images", type=int, help="images through the (slow) classic recipe")
    parser.add_argument("--rss_sizes", help="two comma-separated archive sizes for the memory runs")
    parser.add_argument("--patients", type=int, help="patients in the generated archive (~4.4 images each)")
    parser.add_argument("--limit_seconds", type=float, help="minimum timed seconds per limit measurement")
    parser.add_argument("--repeats", type=int, help="rounds of limit, cam-audit and RunInference; best of each kept")
    parser.add_argument("--batch_size", type=int, default=32, help="the pipeline's batch size, used everywhere")
    parser.add_argument("--forward_threads", type=int, default=1,
                        help="cam-audit's --forward_threads; the limit is measured with 1 and with this many")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="cpu hides GPUs from TensorFlow; gpu fails without one; the device used is recorded")
    parser.add_argument("--mixed_precision", action="store_true", help="pass --mixed_precision to cam-audit")
    parser.add_argument("--rss_workers", type=int, default=2, help="SDK worker processes in the memory runs")
    parser.add_argument("--rss_no_heatmaps", action="store_true", help="memory runs write records only")
    parser.add_argument("--skip", default="", help=f"comma-separated stages to leave out: {','.join(STAGES)}")
    args = parser.parse_args(argv)
    for key, value in (QUICK_SIZES if args.quick else FULL_SIZES).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.rss_sizes = [int(size) for size in str(args.rss_sizes).split(",")]
    args.skip = {stage.strip() for stage in args.skip.split(",") if stage.strip()}
    if unknown := args.skip - set(STAGES):
        parser.error(f"--skip: unknown stage(s) {sorted(unknown)}; choose from {STAGES}")
    if args.forward_threads < 1:
        parser.error(f"--forward_threads must be >= 1, got {args.forward_threads}")
    if not 0 < args.base_images < args.images:
        parser.error(f"need 0 < --base_images ({args.base_images}) < --images ({args.images})")
    if len(args.rss_sizes) != 2 or not 0 < args.rss_sizes[0] < args.rss_sizes[1]:
        parser.error(f"--rss_sizes needs two increasing sizes, got {args.rss_sizes}")
    return args


def cam_audit_flags(args: argparse.Namespace) -> list[str]:
    """cam-audit's own flags as this bench run sets them (the alternatives ignore them: float32, one thread)."""
    return [*(["--mixed_precision"] if args.mixed_precision else []), "--forward_threads", str(args.forward_threads)]


def timed_run(
    label: str, function: Callable[[list[str]], Any], argv: list[str], expected_rows: int, results: Measurements
) -> None:
    """Time one in-process run (its printed summary silenced) into `results`; checks every row came out ok."""
    from pipeline.summary import read_records

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), OtherLoad() as other:
        function(argv)
    seconds = time.perf_counter() - start
    statuses = read_records(argv[argv.index("--output") + 1], columns=["status"]).column("status").to_pylist()
    if len(statuses) != expected_rows or statuses.count("ok") != expected_rows:
        raise RuntimeError(f"{label}: expected {expected_rows} ok rows, got {len(statuses)} "
                           f"({statuses.count('ok')} ok)")
    results.record(label, seconds, other.cores)
    print(f"[bench] {label}: {expected_rows} images in {seconds:.2f} s (other processes: {other.cores:.2f} cores)",
          flush=True)


def share_with_peak(output: Path) -> float:
    """Fraction of rows with a CAM peak: heatmaps of empty CAMs skip the colouring work."""
    from pipeline.summary import read_records

    peaks = read_records(str(output), columns=["peak_x"]).column("peak_x").to_pylist()
    return sum(peak is not None for peak in peaks) / max(len(peaks), 1)


def measure_limit(model: Path, inputs: Any, args: argparse.Namespace, results: Measurements) -> None:
    """One limit measurement per forward-thread count (1 and the pipeline's), appended to the results."""
    from bench.forward import load_predict, time_forward

    predict = load_predict(str(model), args.mixed_precision)
    for threads in sorted({1, args.forward_threads}):
        with OtherLoad() as other:
            limit = time_forward(predict, inputs, args.batch_size, args.limit_seconds, threads)
        results.limit_images_per_second.append(limit.images_per_second)
        results.limit_other_cores.append(other.cores)
        results.limit_threads.append(threads)
        print(f"[bench] limit, {threads} forward thread(s): {limit.images_per_second:.1f} images/s "
              f"({limit.images} in {limit.seconds:.1f} s; other processes: {other.cores:.2f} cores)", flush=True)


def timed_pair(
    name: str, function: Callable[[list[str]], Any], paths: dict[str, Path], args: argparse.Namespace,
    results: Measurements, extra: Sequence[str] = (),
) -> None:
    """The small and the large run of one pipeline, back to back: one steady-rate measurement."""
    timed_run(f"{name}{BASE_SUFFIX}", function, pipeline_argv(paths, args, "base", f"{name}{BASE_SUFFIX}", extra),
              args.base_images, results)
    timed_run(name, function, pipeline_argv(paths, args, "subset", name, extra), args.images, results)


def measure_round(paths: dict[str, Path], inputs: Any, args: argparse.Namespace, results: Measurements) -> None:
    """One round side by side: the limit, then cam-audit (jpg) and RunInference, each as a small/large pair."""
    from bench.runinference_baseline import run_runinference_audit
    from pipeline.run import run

    measure_limit(paths["model"], inputs, args, results)
    timed_pair("cam_audit_jpg", run, paths, args, results)
    if "runinference" not in args.skip:
        timed_pair("runinference_jpg", run_runinference_audit, paths, args, results)


def measure_variants(paths: dict[str, Path], args: argparse.Namespace, results: Measurements) -> None:
    """cam-audit with png heatmaps and with none (one pair each)."""
    from pipeline.run import run

    for name, extra in (("png", ["--heatmap_format", "png"]), ("records_only", ["--no_heatmaps"])):
        if name.replace("records_only", "no_heatmaps") not in args.skip:
            timed_pair(f"cam_audit_{name}", run, paths, args, results, extra)


def pipeline_argv(
    paths: dict[str, Path], args: argparse.Namespace, manifest: str, name: str, extra: Sequence[str] = ()
) -> list[str]:
    """Command line of one in-process run into out/runs/<name>."""
    return audit_argv(paths[manifest], paths["model"], args.out / "runs" / name, args.batch_size,
                      [*cam_audit_flags(args), *extra])


def measure_classic(paths: dict[str, Path], subset: list[str], args: argparse.Namespace, results: Measurements) -> None:
    """The classic per-image recipe on the first classic_images images of the subset."""
    from bench.classic_recipe import time_classic_recipe

    images = subset[: args.classic_images]
    with OtherLoad() as other:
        seconds = time_classic_recipe(str(paths["model"]), paths["archive"], images, args.out / "runs" / "classic")
    results.record("classic", seconds, other.cores)
    results.rates["classic"] = len(images) / seconds
    print(f"[bench] classic recipe: {len(images)} images in {seconds:.2f} s", flush=True)


def measure_rss(paths: dict[str, Path], all_paths: list[str], args: argparse.Namespace, results: Measurements) -> None:
    """Peak RSS per process of `python -m pipeline.run` at two archive sizes, SDK workers in processes."""
    from bench.rss import watch_command

    for size in args.rss_sizes:
        manifest = write_manifest(paths["mura"], f"bench_rss_{size}", all_paths[:size])
        extra = ["--direct_num_workers", str(args.rss_workers), "--direct_running_mode", "multi_processing"]
        extra += ["--no_heatmaps"] if args.rss_no_heatmaps else []
        extra += cam_audit_flags(args)
        argv = audit_argv(manifest, paths["model"], args.out / "runs" / f"rss_{size}", args.batch_size, extra)
        watched = watch_command([sys.executable, "-m", "pipeline.run", *argv], cwd=str(REPO_ROOT))
        if watched.returncode != 0:
            raise RuntimeError(f"memory run of {size} images failed:\n{watched.output_tail}")
        results.rss[str(size)] = {
            "seconds": watched.seconds,
            "launcher_peak_bytes": watched.max_peak("launcher"),
            "worker_peak_bytes": [p.peak_bytes for p in watched.peaks if p.role == "worker"],
            "processes": [dataclasses.asdict(p) for p in watched.peaks],
        }
        workers = results.rss[str(size)]["worker_peak_bytes"]
        print(f"[bench] memory run, {size} images: {watched.seconds:.1f} s, launcher "
              f"{watched.max_peak('launcher') / MIB:.0f} MiB, workers {[round(w / MIB) for w in workers]} MiB",
              flush=True)


def prepare(args: argparse.Namespace) -> tuple[dict[str, Path], list[str], list[str]]:
    """Archive, manifests and model: (paths, subset image paths, all image paths)."""
    archive = args.out / f"archive_{args.patients}p"
    mura = ensure_archive(archive, args.patients)
    all_paths = archive_image_paths(mura)
    needed = max(args.images, *(args.rss_sizes if "rss" not in args.skip else [0]))
    if len(all_paths) < needed:
        raise SystemExit(f"bench: the archive has {len(all_paths)} images, {needed} needed: raise --patients")
    subset = all_paths[: args.images]
    paths = {
        "archive": archive,
        "mura": mura,
        "model": ensure_model(args.out / MODEL_FILE),
        "subset": write_manifest(mura, f"bench_{args.images}", subset),
        "base": write_manifest(mura, f"bench_{args.base_images}", subset[: args.base_images]),
        "one": write_manifest(mura, "bench_1", subset[:1]),
    }
    return paths, subset, all_paths


def print_report(results: Measurements, args: argparse.Namespace, device: str) -> None:
    """The results table, the memory lines, the target verdicts and the noise caveat."""
    rows, targets = summarise(results, args)
    print()
    print(f"cam-audit bench -- {device}; MobileNetV2 alpha 1.0 at 224 px, batch {args.batch_size}"
          f"{', mixed float16' if args.mixed_precision else ''}")
    print(f"Rates of pipelines are steady-state: (N - n) / (T(N) - T(n)), N = {args.images}, n = {args.base_images} "
          "images, fastest run of each size over the rounds; 'all-in' is N / T(N).")
    print(render_table(rows))
    if results.rss:
        mode = "records only" if args.rss_no_heatmaps else "jpg heatmaps"
        print(f"\nPeak RSS per process (python -m pipeline.run, {args.rss_workers} SDK worker processes, {mode}):")
        print(render_rss(results))
    print("\nTargets (ratios measured side by side in this run; timings are never asserted in tests):")
    print(render_targets(targets))
    print(f"\nNoise: '(noisy)' marks figures taken while other processes kept more than {NOISY_CORES} of "
          f"{os.cpu_count()} cores busy: re-run those on a quiet machine (bench.json has the load per measurement).")
    print(f"CAMs with a peak: {results.share_with_peak or 0:.0%} of rows (empty CAMs would skip the colouring).")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement in this one process (memory runs in subprocesses), print, write bench.json."""
    args = parse_args(argv)
    select_device(args.device)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger().setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths, subset, all_paths = prepare(args)
    device = visible_device(args.device)
    results = Measurements(
        args={k: sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v
              for k, v in vars(args).items()},
        environment=environment(device),
        load_average_start=os.getloadavg(),
    )
    print(f"[bench] {device}; {len(all_paths)} images in the archive; load average {results.load_average_start}",
          flush=True)
    from transforms.cam_model import load_keras_model, model_input_size

    inputs = decode_inputs(paths["archive"], subset[:LIMIT_IMAGES],
                           model_input_size(load_keras_model(str(paths["model"]))[0]))
    from pipeline.run import run

    timed_run("warmup_1", run, pipeline_argv(paths, args, "one", "warmup"), 1, results)
    for _ in range(args.repeats):
        measure_round(paths, inputs, args, results)
    results.share_with_peak = share_with_peak(args.out / "runs" / "cam_audit_jpg")
    measure_variants(paths, args, results)
    if "classic" not in args.skip:
        measure_classic(paths, subset, args, results)
    del inputs
    if "rss" not in args.skip:
        measure_rss(paths, all_paths, args, results)
    results.load_average_end = os.getloadavg()
    report = args.out / "bench.json"
    _, targets = summarise(results, args)
    report.write_text(json.dumps({**dataclasses.asdict(results),
                                  "targets": [{**dataclasses.asdict(t), "verdict": t.verdict} for t in targets]},
                                 indent=2))
    print_report(results, args, device)
    print(f"Raw figures: {report}   ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
