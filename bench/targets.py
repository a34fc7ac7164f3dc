"""Issue 4's targets, judged from one run's raw figures, and the table rows that show them."""

from __future__ import annotations

import argparse
from typing import Any

from bench.forward import LIMIT_IMAGES, LIMIT_LAYOUTS
from bench.report import MIB, Measurements, Row, SteadyRate, Target, best_steady_rate, growth, ratio

TARGET_LIMIT_RATIO = 0.7
TARGET_CLASSIC_SPEEDUP = 10.0
TARGET_RUNINFERENCE_SPEEDUP = 1.2
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
    best = results.best_limit()
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
    targets += rss_targets(results, args)
    return rows, targets


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
