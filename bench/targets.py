"""Issue 4's targets, judged from one run's raw figures, and the table rows that show them."""

from __future__ import annotations

import argparse
from typing import Any

from bench.forward import LIMIT_IMAGES, LIMIT_LAYOUTS, LITERT_LAYOUT
from bench.report import (
    BASE_SUFFIX,
    MIB,
    Measurements,
    Row,
    SteadyRate,
    Target,
    best_steady_rate,
    essential_limit,
    growth,
    ratio,
    steady_rate,
)

TARGET_LIMIT_RATIO = 0.7
TARGET_CLASSIC_SPEEDUP = 10.0
TARGET_RUNINFERENCE_SPEEDUP = 1.2
TARGET_ESSENTIAL_RATIO = 0.85  # issue 14: end to end / essential limit
TARGET_OVER_TENSORFLOW_FORWARD = 1.3  # issue 14: LiteRT end to end / TensorFlow's best bare forward
TARGET_RSS_GROWTH = 0.10
TARGET_RSS_BYTES = 2.5 * 1024 * MIB
# Cores other processes may keep busy during a measurement before its figure is flagged as noisy.
NOISY_CORES = 0.2


def noisy(other_cores: float) -> str:
    """' (noisy)' when other processes kept more than NOISY_CORES cores busy during a measurement."""
    return " (noisy)" if other_cores > NOISY_CORES else ""


def layout_text(limit: dict[str, Any]) -> str:
    """A limit measurement's forward layout in words."""
    intra = limit["intra_op_threads"] or "all"
    return (f"{limit['threads']} thread(s) x micro-batches of {limit['micro_batch_size']}, "
            f"{intra} core(s) per op")


def summarise(results: Measurements, args: argparse.Namespace) -> tuple[list[Row], list[Target]]:
    """Steady rates, ratios, table rows and target verdicts from the raw figures (best of the repeats)."""
    n, rates = args.images, results.rates
    # The highest limit of any layout is conservative for our ratio -- unless other load dragged every
    # measurement down.
    # TensorFlow's best layout: the bar issue 4's ratio and issue 14's LiteRT target are set against.
    best = results.best_limit(LIMIT_LAYOUTS)
    limit, limit_noise = best["images_per_second"], best["other_cores"]
    rows = [Row(f"limit: CAM model forward only, batch {args.batch_size}", min(n, LIMIT_IMAGES), None, limit, "1.00x",
                f"decoded tensors, {layout_text(best)}{noisy(limit_noise)}")]
    for layout in LIMIT_LAYOUTS:
        figures = [m for m in results.limits if m["layout"] == layout]
        if figures:
            top = max(figures, key=lambda m: m["images_per_second"])
            spread = ", ".join(f"{m['images_per_second']:.1f}" for m in figures)
            rows.append(Row(f"  forward layout {layout}", min(n, LIMIT_IMAGES), None, top["images_per_second"],
                            f"{top['images_per_second'] / limit:.2f}x limit",
                            f"{layout_text(top)}; best of [{spread}]"))

    base = args.base_images
    measured = {name: best_steady_rate(results, name, n, base)
                for name in ("cam_audit_jpg", "cam_audit_png", "cam_audit_records_only", "runinference_jpg")
                if name in results.walls}
    rates.update({name: rate.images_per_second for name, rate in measured.items()})

    def all_in(rate: SteadyRate) -> str:
        return (f"all-in {n / rate.seconds:.1f} img/s: {n} in {rate.seconds:.1f} s, "
                f"~{rate.fixed_seconds(base):.1f} s fixed{noisy(rate.other_cores)}")

    for name, label in (("cam_audit_jpg", "cam-audit, jpg heatmaps"), ("cam_audit_png", "cam-audit, png heatmaps"),
                        ("cam_audit_records_only", "cam-audit, --no_heatmaps")):
        if name in measured:
            rate = measured[name]
            rows.append(Row(label, n - base, rate.extra_seconds, rate.images_per_second,
                            f"{rate.images_per_second / limit:.2f}x limit", all_in(rate)))
    ours, ours_noise = measured["cam_audit_jpg"].images_per_second, measured["cam_audit_jpg"].other_cores
    targets = [Target("end to end vs limit", f">= {TARGET_LIMIT_RATIO}x",
                      f"{ours / limit:.2f}x{noisy(max(ours_noise, limit_noise))}", ours / limit >= TARGET_LIMIT_RATIO)]
    if "runinference_jpg" in measured:
        other = measured["runinference_jpg"]
        alternative, noise = other.images_per_second, other.other_cores
        speedup = ratio(ours, alternative)
        rows.append(Row("RunInference + numpy CAM, jpg heatmaps", n - base, other.extra_seconds,
                        alternative, f"ours {speedup:.2f}x", all_in(other)))
        targets.append(Target("speed-up over RunInference + numpy", f">= {TARGET_RUNINFERENCE_SPEEDUP}x",
                              f"{speedup:.2f}x{noisy(max(ours_noise, noise))}",
                              speedup >= TARGET_RUNINFERENCE_SPEEDUP))
    if "classic" in results.walls:
        wall, noise = results.best("classic")
        classic = args.classic_images / wall
        speedup = ratio(ours, classic)
        rows.append(Row("classic per-image recipe (2019 tutorial)", args.classic_images, wall, classic,
                        f"ours {speedup:.1f}x", f"model loaded once; heatmaps only, no records{noisy(noise)}"))
        targets.append(Target("speed-up over the classic recipe", f">= {TARGET_CLASSIC_SPEEDUP:.0f}x",
                              f"{speedup:.1f}x{noisy(max(ours_noise, noise))}", speedup >= TARGET_CLASSIC_SPEEDUP))
    essential_rows, essential = essential_targets(results, args, measured, limit, limit_noise)
    rows += essential_rows
    targets += essential
    targets += rss_targets(results, args)
    return rows, targets


# (label of the end-to-end pair, model, limit layouts of its backend, description)
ESSENTIAL_RUNS = (
    ("cam_audit_jpg_tensorflow", "model", LIMIT_LAYOUTS, "seed model, TensorFlow"),
    ("cam_audit_jpg", "model", (LITERT_LAYOUT,), "seed model, LiteRT"),
    ("near_free_jpg", "near_free_model", (LITERT_LAYOUT, "cam_audit"), "near-free model"),
)


def essential_targets(
    results: Measurements, args: argparse.Namespace, measured: dict[str, SteadyRate], tensorflow_limit: float,
    tensorflow_noise: float,
) -> tuple[list[Row], list[Target]]:
    """Issue 14: each end-to-end rate against its essential limit 1 / (1 / forward + 1 / non-model), and
    the LiteRT run against TensorFlow's best bare forward pass."""
    n, base = args.images, args.base_images
    rows: list[Row] = []
    targets: list[Target] = []
    shown: set[str] = set()
    for label, model, layouts, text in ESSENTIAL_RUNS:
        non_model = results.best_non_model(model)
        forward = [limit for limit in results.limits if limit["layout"] in layouts and limit.get("model") == model]
        if label in results.walls and label not in measured:
            measured[label] = best_steady_rate(results, label, n, base)
        if non_model is None or not forward or label not in measured:
            continue
        top = max(forward, key=lambda limit: limit["images_per_second"])
        ceiling = essential_limit(top["images_per_second"], non_model["images_per_second"])
        rate = measured[label]
        noise = max(rate.other_cores, top["other_cores"], non_model["other_cores"])
        rows.append(Row(f"bare forward, {text}", min(n, LIMIT_IMAGES), None, top["images_per_second"],
                        f"{top['images_per_second'] / tensorflow_limit:.2f}x limit",
                        f"{top['backend']}, {layout_text(top)}{noisy(top['other_cores'])}"))
        if model not in shown:  # one row per model; both seed-model backends share it
            shown.add(model)
            rows.append(Row(f"non-model tight loop ({text.split(',')[0]})", non_model["images"],
                            non_model["seconds"], non_model["images_per_second"], "",
                            f"{non_model['processes']} process(es): read, decode, resize, overlay, JPEG"
                            f"{noisy(non_model['other_cores'])}"))
        rows.append(Row(f"essential limit, {text}", n - base, None, ceiling, "", "1 / (1/forward + 1/non-model)"))
        rows.append(Row(f"end to end, {text}", n - base, rate.extra_seconds, rate.images_per_second,
                        f"{rate.images_per_second / ceiling:.2f}x essential", ""))
        targets.append(Target(f"end to end / essential, {text}", f">= {TARGET_ESSENTIAL_RATIO}x",
                              f"{rate.images_per_second / ceiling:.2f}x{noisy(noise)}",
                              rate.images_per_second / ceiling >= TARGET_ESSENTIAL_RATIO))
    if "cam_audit_jpg" in measured and "litert" not in args.skip:
        rate = measured["cam_audit_jpg"]
        over = rate.images_per_second / tensorflow_limit
        targets.append(Target("LiteRT end to end / TF bare forward", f">= {TARGET_OVER_TENSORFLOW_FORWARD}x",
                              f"{over:.2f}x{noisy(max(rate.other_cores, tensorflow_noise))}",
                              over >= TARGET_OVER_TENSORFLOW_FORWARD))
    return rows, targets


def round_by_round(results: Measurements, args: argparse.Namespace) -> list[str]:
    """Issue 14's ratios from each round's own figures, one line per round.

    The verdicts above divide the best figure of each line over all rounds; when the machine's speed drifts
    between rounds, those figures can come from different rounds. Here every ratio's figures were taken in
    the same round, minutes apart (the i-th measurement of each line belongs to round i).
    """
    n, base = args.images, args.base_images

    def forward(model: str, layouts: tuple[str, ...], index: int) -> float | None:
        rates = [[m["images_per_second"] for m in results.limits
                  if m["layout"] == layout and m.get("model", "model") == model] for layout in layouts]
        return max((figures[index] for figures in rates if len(figures) > index), default=None)

    def end_to_end(label: str, index: int) -> float | None:
        walls, base_walls = results.walls.get(label, []), results.walls.get(label + BASE_SUFFIX, [])
        if len(walls) <= index or len(base_walls) <= index:
            return None
        return steady_rate(n, walls[index], base, base_walls[index])

    lines = []
    rounds = max((len(walls) for walls in results.walls.values()), default=0)
    for index in range(rounds):
        tensorflow = forward("model", LIMIT_LAYOUTS, index)
        parts = []
        for label, model, layouts, text in ESSENTIAL_RUNS:
            loops = results.non_model.get(model, [])
            rate, bare = end_to_end(label, index), forward(model, layouts, index)
            if rate is not None and bare is not None and len(loops) > index:
                essential = essential_limit(bare, loops[index]["images_per_second"])
                parts.append(f"{text}: {rate / essential:.2f}x essential")
        litert = end_to_end("cam_audit_jpg", index)
        if litert is not None and tensorflow and "litert" not in args.skip:
            parts.append(f"LiteRT end to end / TF bare forward: {litert / tensorflow:.2f}x")
        if parts:
            lines.append(f"  round {index + 1}: " + "; ".join(parts))
    return lines


def rss_targets(results: Measurements, args: argparse.Namespace) -> list[Target]:
    """Memory flat from the small to the large archive, and under the ceiling."""
    if not results.rss:
        return []
    small, large = (results.rss[str(size)] for size in args.rss_sizes)

    def worst(run: dict[str, Any]) -> int:
        return max(run["worker_peak_bytes"], default=run["launcher_peak_bytes"])

    change = growth(worst(small), worst(large))
    peak = max(worst(small), worst(large))
    sizes = f"{args.rss_sizes[0]} -> {args.rss_sizes[1]} images"
    return [
        Target("worker peak RSS flat", f"< {TARGET_RSS_GROWTH:.0%} growth",
               f"{change:+.1%} ({worst(small) / MIB:.0f} -> {worst(large) / MIB:.0f} MiB, {sizes})",
               change < TARGET_RSS_GROWTH),
        Target("worker peak RSS", f"< {TARGET_RSS_BYTES / 1024 / MIB:.1f} GiB", f"{peak / MIB:.0f} MiB",
               peak < TARGET_RSS_BYTES),
    ]
