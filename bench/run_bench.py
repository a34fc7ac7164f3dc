"""`make bench`: cam-audit's throughput beside its limit and two alternatives, and its memory, in one run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.brackets import PIPELINE_LAYOUT
from bench.forward import LIMIT_LAYOUTS, LITERT_LAYOUT
from bench.machine import environment, select_device, visible_device
from bench.noise import OtherLoad
from bench.report import BASE_SUFFIX, MIB, Measurements, render_rss, render_table, render_targets
from bench.set_aside import empty_set_aside, set_aside
from bench.targets import NOISY_CORES, issue_14_round_lines, summarise
from bench.workload import (
    IMAGE_SIZE,
    MODEL_FILE,
    NEAR_FREE_ALPHA,
    NEAR_FREE_MODEL_FILE,
    NEAR_FREE_SIZE,
    archive_image_paths,
    audit_argv,
    cam_grid,
    ensure_archive,
    ensure_model,
    write_manifest,
)
from transforms.devices import gpu_driver_present, usable_cores

REPO_ROOT = Path(__file__).resolve().parents[1]
# The two models: the seed's (MobileNetV2 alpha 1.0, 224 px) and a near-free one, whose forward pass
# costs little beside the per-image work (as a GPU makes any model): keys of `prepare`'s paths.
SEED, NEAR_FREE = "model", "near_free_model"
# Sizes for `make bench` and for --quick (a few minutes); bench/README.md has how long each took.
FULL_SIZES = {"images": 1536, "base_images": 512, "archive_images": 8000, "archive_base_images": 1000,
              "classic_images": 48, "rss_sizes": "1000,8000", "patients": 2000, "limit_seconds": 6.0, "repeats": 3}
QUICK_SIZES = {"images": 384, "base_images": 128, "archive_images": 800, "archive_base_images": 200,
               "classic_images": 4, "rss_sizes": "200,800", "patients": 300, "limit_seconds": 3.0, "repeats": 1}
STAGES = ("png", "no_heatmaps", "runinference", "classic", "rss", "litert", "near_free", "methods")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The bench's options; sizes default to FULL_SIZES, or QUICK_SIZES with --quick."""
    parser = argparse.ArgumentParser(prog="python -m bench.run_bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out", help="work and results folder")
    parser.add_argument("--quick", action="store_true", help="small sizes for development (~2 min)")
    parser.add_argument("--images", type=int, help="images in the large run of each throughput pair")
    parser.add_argument("--base_images", type=int,
                        help="images in the small run; rates are (images - base) / (T(images) - T(base))")
    parser.add_argument("--archive_images", type=int,
                        help="images in the large run of the pairs with a worker process per core (LiteRT), whose "
                             "start-up a small pair would mostly measure")
    parser.add_argument("--archive_base_images", type=int, help="images in the small run of those pairs")
    parser.add_argument("--classic_images", type=int, help="images through the (slow) classic recipe")
    parser.add_argument("--rss_sizes", help="two comma-separated archive sizes for the memory runs")
    parser.add_argument("--patients", type=int, help="patients in the generated archive (~4.4 images each)")
    parser.add_argument("--limit_seconds", type=float, help="minimum timed seconds per limit measurement")
    parser.add_argument("--repeats", type=int, help="rounds of limit, cam-audit and RunInference; best of each kept")
    parser.add_argument("--batch_size", type=int, default=32, help="the pipeline's batch size, used everywhere")
    parser.add_argument("--forward_threads", type=int, default=0,
                        help="cam-audit's --forward_threads (0: automatic), also for the limit in its layout")
    parser.add_argument("--micro_batch_size", type=int, default=0,
                        help="cam-audit's --micro_batch_size (0: automatic), also for the limit in its layout")
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
    if args.forward_threads < 0 or args.micro_batch_size < 0:
        parser.error("--forward_threads and --micro_batch_size must be >= 0 (0: automatic)")
    if not 0 < args.base_images < args.images:
        parser.error(f"need 0 < --base_images ({args.base_images}) < --images ({args.images})")
    if not 0 < args.archive_base_images < args.archive_images:
        parser.error(f"need 0 < --archive_base_images ({args.archive_base_images}) < --archive_images "
                     f"({args.archive_images})")
    if len(args.rss_sizes) != 2 or not 0 < args.rss_sizes[0] < args.rss_sizes[1]:
        parser.error(f"--rss_sizes needs two increasing sizes, got {args.rss_sizes}")
    return args


def cam_audit_flags(args: argparse.Namespace) -> list[str]:
    """cam-audit's own flags as this bench run sets them (the alternatives have no such settings)."""
    return [*(["--mixed_precision"] if args.mixed_precision else []), "--forward_threads", str(args.forward_threads),
            "--micro_batch_size", str(args.micro_batch_size)]


def measure_apart(command: list[str]) -> tuple[dict[str, Any], float]:
    """`python -m bench.measure COMMAND` in a fresh process: (its JSON result, other processes' cores meanwhile).

    The result also says when the process ran ("started", "ended": the bench's monotonic clock, which places
    every measurement between its neighbours) and how many cores the host stole meanwhile ("steal_cores").
    """
    started = time.monotonic()
    with OtherLoad() as other:
        completed = subprocess.run([sys.executable, "-m", "bench.measure", *command], cwd=REPO_ROOT,
                                   capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"bench.measure {' '.join(command[:2])} failed (exit {completed.returncode}):\n"
                           f"{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {**result, "started": started, "ended": time.monotonic(), "steal_cores": other.steal_cores}, other.cores


def timed_run(label: str, pipeline: str, argv: list[str], expected_rows: int, results: Measurements) -> None:
    """Time one run of a pipeline (bench.measure.PIPELINES) in a process of its own; checks every row came out ok.

    The time is the pipeline's `run(argv)` call inside that process (Python and library start-up excluded);
    for cam-audit without its launcher checks (run_info.json's wall_seconds), which hold the LiteRT conversion.
    The last run's output is set aside first (bench.set_aside: moved, not deleted), so every run writes into an
    empty folder, as a first run does, with no files freed just before it.
    """
    from pipeline.summary import read_records

    output = argv[argv.index("--output") + 1]
    set_aside(Path(output))
    measured, other_cores = measure_apart(["pipeline", pipeline, "--", *argv])
    seconds = measured.get("pipeline_seconds", measured["seconds"])
    statuses = read_records(output, columns=["status"]).column("status").to_pylist()
    if len(statuses) != expected_rows or statuses.count("ok") != expected_rows:
        raise RuntimeError(f"{label}: expected {expected_rows} ok rows, got {len(statuses)} "
                           f"({statuses.count('ok')} ok)")
    results.record(label, seconds, other_cores, (measured["started"], measured["ended"]), measured["steal_cores"])
    print(f"[bench] {label}: {expected_rows} images in {seconds:.2f} s (other processes: {other_cores:.2f} cores, "
          f"host steal {measured['steal_cores']:.2f})", flush=True)


def share_with_peak(output: Path) -> float:
    """Fraction of rows with a CAM peak: heatmaps of empty CAMs skip the colouring work."""
    from pipeline.summary import read_records

    peaks = read_records(str(output), columns=["peak_x"]).column("peak_x").to_pylist()
    return sum(peak is not None for peak in peaks) / max(len(peaks), 1)


def measure_limit(
    paths: dict[str, Path], args: argparse.Namespace, results: Measurements, layouts: Sequence[str] = LIMIT_LAYOUTS,
    model: str = SEED,
) -> None:
    """One limit measurement per forward layout (bench.forward: LIMIT_LAYOUTS, LITERT_LAYOUT), appended to the
    results under the model's name (SEED or NEAR_FREE)."""
    for layout in layouts:
        command = ["limit", "--model", str(paths[model]), "--archive", str(paths["archive"]), "--manifest",
                   str(paths["subset"]), "--layout", layout, "--batch_size", str(args.batch_size),
                   "--seconds", str(args.limit_seconds), *cam_audit_flags(args)]
        limit, other_cores = measure_apart(command)
        results.limits.append({**limit, "model": model, "other_cores": other_cores})
        name = "near-free" if model == NEAR_FREE else "seed"
        print(f"[bench] limit, {name} model, layout {layout}, {limit['backend']} ({limit['threads']} thread(s), "
              f"micro-batches of "
              f"{limit['micro_batch_size']}): {limit['images_per_second']:.1f} images/s ({limit['images']} in "
              f"{limit['seconds']:.1f} s; other processes: {other_cores:.2f} cores)", flush=True)


def cams_path(paths: dict[str, Path], model: str) -> Path:
    """Where save_model_cams keeps the model's CAMs of the loop's images (beside the model file)."""
    return paths[model].with_suffix(".cams.npz")


def save_model_cams(paths: dict[str, Path], args: argparse.Namespace, model: str) -> None:
    """The model's own CAMs of the images the non-model loop overlays, made afresh by the backend the pipeline pairs
    run (LiteRT unless skipped): the loop colours what the pipeline colours (bench/nonmodel.py)."""
    layout = PIPELINE_LAYOUT if "litert" in args.skip else LITERT_LAYOUT
    command = ["cams", "--model", str(paths[model]), "--archive", str(paths["archive"]), "--manifest",
               str(paths["subset"]), "--layout", layout, "--batch_size", str(args.batch_size),
               "--out", str(cams_path(paths, model))]
    saved, _ = measure_apart(command)
    print(f"[bench] {saved['images']} CAMs of the {'near-free' if model == NEAR_FREE else 'seed'} model "
          f"({saved['backend']}) for the non-model loop", flush=True)


def measure_non_model(paths: dict[str, Path], args: argparse.Namespace, results: Measurements, model: str) -> None:
    """The non-model work alone (bench.nonmodel), one process per core, at the model's input size, each image
    overlaid with the model's own CAM of it (save_model_cams)."""
    size = NEAR_FREE_SIZE if model == NEAR_FREE else IMAGE_SIZE
    command = ["nonmodel", "--archive", str(paths["archive"]), "--manifest", str(paths["subset"]), "--input_size",
               str(size), "--cam_size", str(cam_grid(size)), "--processes", str(usable_cores()),
               "--seconds", str(args.limit_seconds), "--cams", str(cams_path(paths, model))]
    measured, other_cores = measure_apart(command)
    results.non_model.setdefault(model, []).append({**measured, "other_cores": other_cores})
    print(f"[bench] non-model tight loop, {size} px, {measured['processes']} process(es): "
          f"{measured['images_per_second']:.1f} images/s (other processes: {other_cores:.2f} cores)", flush=True)


def timed_pair(
    name: str, pipeline: str, paths: dict[str, Path], args: argparse.Namespace, results: Measurements,
    extra: Sequence[str] = (), model: str = SEED, archive_scale: bool = False,
) -> None:
    """The small and the large run of one pipeline, back to back: one steady-rate measurement. `archive_scale`:
    of --archive_base_images and --archive_images (noted in the results), else of --base_images and --images."""
    cam_audit = [*cam_audit_flags(args), *extra] if pipeline == "cam_audit" else [*extra]
    small, large = ("archive_scale_base", "archive_scale") if archive_scale else ("base", "subset")
    sizes = (args.archive_images, args.archive_base_images) if archive_scale else (args.images, args.base_images)
    if archive_scale:
        results.pair_images[name] = sizes
    timed_run(f"{name}{BASE_SUFFIX}", pipeline,
              pipeline_argv(paths, args, small, f"{name}{BASE_SUFFIX}", cam_audit, model), sizes[1], results)
    timed_run(name, pipeline, pipeline_argv(paths, args, large, name, cam_audit, model), sizes[0], results)


def archive_scale_layout(litert: bool) -> list[str]:
    """The local layout cam-audit picks itself for an archive of LOCAL_PROCESSES_MIN_IMAGES images or more
    (pipeline/local_layout.py: local_processes): one LiteRT worker process per core, without TensorFlow. A pair's
    small run is smaller than that, so the bench names the layout for both; TensorFlow runs keep Beam's one
    in-process worker."""
    cores = usable_cores()
    if not litert or cores < 2 or gpu_driver_present():
        return []
    return ["--direct_num_workers", str(cores), "--direct_running_mode", "multi_processing"]


def measure_round(paths: dict[str, Path], args: argparse.Namespace, results: Measurements) -> None:
    """One round. Each of issue 14's end-to-end pairs sits between two brackets -- its backend's bare forward
    pass in the pipeline's layout and the non-model loop, measured just before and just after it -- because this
    VM's speed moves within minutes and a ratio is only as good as the distance between its two figures
    (bench/brackets.py). Consecutive pairs share the bracket between them. TensorFlow's default layout (issue 4's
    other limit) and RunInference run once per round."""
    litert = "litert" not in args.skip
    processes = archive_scale_layout(litert)
    backend = ["--backend", "litert" if litert else "tensorflow", *processes]
    # Pairs with a process per core at archive scale: at 512 / 1,536 images their start-up dominates (bench/README.md).
    archive_scale = bool(processes)
    seed_layouts = [PIPELINE_LAYOUT, *([LITERT_LAYOUT] if litert else [])]

    def seed_bracket() -> None:
        measure_limit(paths, args, results, seed_layouts)
        measure_non_model(paths, args, results, SEED)

    measure_limit(paths, args, results, [layout for layout in LIMIT_LAYOUTS if layout != PIPELINE_LAYOUT])
    seed_bracket()
    if litert:
        timed_pair("cam_audit_jpg_tensorflow", "cam_audit", paths, args, results, ["--backend", "tensorflow"])
        seed_bracket()
    timed_pair("cam_audit_jpg", "cam_audit", paths, args, results, backend, archive_scale=archive_scale)
    seed_bracket()
    if "runinference" not in args.skip:
        # TensorFlow: the alternative runs its own Keras model; a LiteRT conversion in its launcher would be waste.
        timed_pair("runinference_jpg", "runinference", paths, args, results, ["--backend", "tensorflow"])
    if "near_free" not in args.skip:
        def near_free_bracket() -> None:
            measure_limit(paths, args, results, [LITERT_LAYOUT if litert else PIPELINE_LAYOUT], NEAR_FREE)
            measure_non_model(paths, args, results, NEAR_FREE)

        near_free_bracket()
        timed_pair("near_free_jpg", "cam_audit", paths, args, results, backend, model=NEAR_FREE,
                   archive_scale=archive_scale)
        near_free_bracket()


def measure_variants(paths: dict[str, Path], args: argparse.Namespace, results: Measurements) -> None:
    """cam-audit with png heatmaps and with none (one pair each)."""
    for name, extra in (("png", ["--heatmap_format", "png"]), ("records_only", ["--no_heatmaps"])):
        if name.replace("records_only", "no_heatmaps") not in args.skip:
            timed_pair(f"cam_audit_{name}", "cam_audit", paths, args, results, extra)


def pipeline_argv(
    paths: dict[str, Path], args: argparse.Namespace, manifest: str, name: str, extra: Sequence[str] = (),
    model: str = SEED,
) -> list[str]:
    """Command line of one run into out/runs/<name>."""
    return audit_argv(paths[manifest], paths[model], args.out / "runs" / name, args.batch_size, extra)


def measure_classic(paths: dict[str, Path], args: argparse.Namespace, results: Measurements) -> None:
    """The classic per-image recipe on the first classic_images images of the subset."""
    output = args.out / "runs" / "classic"
    set_aside(output)
    measured, other_cores = measure_apart(
        ["classic", "--model", str(paths[SEED]), "--archive", str(paths["archive"]), "--manifest",
         str(paths["subset"]), "--images", str(args.classic_images), "--out", str(output)])
    results.record("classic", measured["seconds"], other_cores)
    results.rates["classic"] = measured["images"] / measured["seconds"]
    print(f"[bench] classic recipe: {measured['images']} images in {measured['seconds']:.2f} s", flush=True)


def measure_rss(paths: dict[str, Path], all_paths: list[str], args: argparse.Namespace, results: Measurements) -> None:
    """Peak RSS per process of `python -m pipeline.run` at two archive sizes, SDK workers in processes."""
    from bench.rss import watch_command

    for size in args.rss_sizes:
        manifest = write_manifest(paths["mura"], f"bench_rss_{size}", all_paths[:size])
        extra = ["--direct_num_workers", str(args.rss_workers), "--direct_running_mode", "multi_processing"]
        extra += ["--no_heatmaps"] if args.rss_no_heatmaps else []
        extra += cam_audit_flags(args)
        output = args.out / "runs" / f"rss_{size}"
        set_aside(output)
        argv = audit_argv(manifest, paths[SEED], output, args.batch_size, extra)
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
    needed = max(args.images, args.archive_images, *(args.rss_sizes if "rss" not in args.skip else [0]))
    if len(all_paths) < needed:
        raise SystemExit(f"bench: the archive has {len(all_paths)} images, {needed} needed: raise --patients")
    subset = all_paths[: args.images]
    paths = {
        "archive": archive,
        "mura": mura,
        SEED: ensure_model(args.out / MODEL_FILE),
        NEAR_FREE: ensure_model(args.out / NEAR_FREE_MODEL_FILE, NEAR_FREE_SIZE, NEAR_FREE_ALPHA),
        "subset": write_manifest(mura, f"bench_{args.images}", subset),
        "base": write_manifest(mura, f"bench_{args.base_images}", subset[: args.base_images]),
        "archive_scale": write_manifest(mura, f"bench_{args.archive_images}", all_paths[: args.archive_images]),
        "archive_scale_base": write_manifest(mura, f"bench_{args.archive_base_images}",
                                             all_paths[: args.archive_base_images]),
    }
    return paths, subset, all_paths


def print_report(results: Measurements, args: argparse.Namespace, device: str) -> None:
    """The results table, the memory lines, the target verdicts and the noise caveat."""
    rows, targets = summarise(results, args)
    print()
    print(f"cam-audit bench -- {device}; MobileNetV2 alpha 1.0 at 224 px, batch {args.batch_size}"
          f"{', mixed float16' if args.mixed_precision else ''}")
    archive = (f" (pairs with a worker process per core: N = {args.archive_images}, n = {args.archive_base_images})"
               if results.pair_images else "")
    print(f"Rates of pipelines are steady-state: (N - n) / (T(N) - T(n)), N = {args.images}, n = {args.base_images} "
          f"images{archive}, fastest run of each size over the rounds; 'all-in' is N / T(N).")
    print(render_table(rows))
    if results.rss:
        mode = "records only" if args.rss_no_heatmaps else "jpg heatmaps"
        print(f"\nPeak RSS per process (python -m pipeline.run, {args.rss_workers} SDK worker processes, {mode}):")
        print(render_rss(results))
    if results.methods:
        from bench.methods import render_methods

        print("\nExplanation methods (forward work only, cam-audit's layout; ratio to the bare forward pass):")
        print(render_methods(results.methods))
    print("\nTargets (ratios measured side by side in this run; timings are never asserted in tests):")
    print(render_targets(targets))
    rounds = issue_14_round_lines(results, args)
    if rounds:
        print("Issue 14's ratios round by round, each pair against its limits measured just before and just after "
              "it (the verdicts above: the median over the rounds):")
        print("\n".join(rounds))
    print(f"\nNoise: '(noisy)' marks figures taken while other processes kept more than {NOISY_CORES} of "
          f"{os.cpu_count()} cores busy: re-run those on a quiet machine (bench.json has the load per measurement).")
    print(f"CAMs with a peak: {results.share_with_peak or 0:.0%} of rows (empty CAMs would skip the colouring).")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, each in a process of its own (bench.measure, bench.rss), print, write bench.json."""
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
    try:
        for model in (SEED, *([NEAR_FREE] if "near_free" not in args.skip else [])):
            save_model_cams(paths, args, model)
        for _ in range(args.repeats):
            measure_round(paths, args, results)
        results.share_with_peak = share_with_peak(args.out / "runs" / "cam_audit_jpg")
        measure_variants(paths, args, results)
        if "classic" not in args.skip:
            measure_classic(paths, args, results)
        if "rss" not in args.skip:
            measure_rss(paths, all_paths, args, results)
        if "methods" not in args.skip:
            from bench.methods import measure_methods

            results.methods = measure_methods(paths["model"], paths["archive"], paths["base"], args.batch_size,
                                              args.limit_seconds)
        results.load_average_end = os.getloadavg()
        report = args.out / "bench.json"
        _, targets = summarise(results, args)
        report.write_text(json.dumps({**dataclasses.asdict(results),
                                      "targets": [{**dataclasses.asdict(t), "verdict": t.verdict} for t in targets]},
                                     indent=2))
        print_report(results, args, device)
    finally:
        empty_set_aside(args.out / "runs")  # after the last measurement, or after a failed one
    print(f"Raw figures: {report}   ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
