"""The benchmark's own logic: its arithmetic, its record check, its memory probe, and fair alternatives."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.full import check_records
from bench.report import BASE_SUFFIX, Measurements, best_steady_rate, growth, steady_rate
from bench.rss import watch_command
from bench.set_aside import SET_ASIDE, empty_set_aside, set_aside
from tests.conftest import TinyArchive


def test_steady_rate_takes_the_fixed_cost_out() -> None:
    # 1 image in 3 s, 101 images in 8 s: the 100 extra images took 5 s.
    assert steady_rate(101, 8.0, 1, 3.0) == 20.0
    with pytest.raises(ValueError, match="steady rate"):
        steady_rate(101, 2.0, 1, 3.0)


def test_best_steady_rate_takes_the_fastest_run_of_each_size() -> None:
    results = Measurements(args={}, environment={}, load_average_start=(0.0, 0.0, 0.0))
    # Round 1: 150 images in 9.0 s, 50 in 4.0 s; round 2: 8.5 s and 4.5 s (its small run slowed by
    # other load). The best round's own rate (100 / 4.0 s = 25/s) would credit that slowdown; the
    # fastest run of each size gives 100 / (8.5 - 4.0) s.
    for wall, base_wall, noise in ((9.0, 4.0, 0.0), (8.5, 4.5, 0.3)):
        results.record("x" + BASE_SUFFIX, base_wall, noise)
        results.record("x", wall, 0.0)
    best = best_steady_rate(results, "x", 150, 50)
    assert best.images_per_second == pytest.approx(100 / 4.5)
    assert (best.seconds, best.base_seconds, best.other_cores) == (8.5, 4.0, 0.0)
    assert best.fixed_seconds(50) == pytest.approx(4.0 - 50 * 4.5 / 100)


def test_growth_is_relative() -> None:
    assert growth(1000.0, 1050.0) == pytest.approx(0.05)
    assert growth(1000.0, 900.0) == pytest.approx(-0.10)


def test_check_records_accounts_for_every_manifest_line() -> None:
    check = check_records(["a", "b", "c"], ["a", "b", "c"], ["ok", "ok", "error"])
    assert check.passed and check.ok_rows == 2
    check = check_records(["a", "b", "c"], ["a", "a", "x"], ["ok", "ok", "ok"])
    assert not check.passed
    assert (check.rows, check.missing, check.unexpected, check.duplicated) == (3, 2, 1, 1)


def test_set_aside_moves_an_output_away_whole_and_deletes_only_later(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    output = runs / "near_free_jpg"
    (output / "heatmaps").mkdir(parents=True)
    (output / "heatmaps" / "image1.jpg").write_bytes(b"jpeg")
    kept = runs / "cam_audit_jpg"
    kept.mkdir()
    inode = output.stat().st_ino

    first = set_aside(output)
    assert first is not None and not output.exists() and kept.exists()
    assert first.stat().st_ino == inode  # renamed, not copied and deleted
    assert (first / "heatmaps" / "image1.jpg").read_bytes() == b"jpeg"  # moved whole, nothing deleted yet
    output.mkdir()
    second = set_aside(output)
    assert second is not None and second != first and first.exists()
    assert set_aside(runs / "never_written") is None

    assert empty_set_aside(runs) == 2
    assert not (runs / SET_ASIDE).exists() and kept.exists()
    assert empty_set_aside(runs) == 0


def test_watch_command_sees_the_peak_of_a_child_process() -> None:
    # 80 MiB, every page touched (a fresh bytearray may not be resident until written).
    allocate = "import time; b = bytearray(80 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    watched = watch_command([sys.executable, "-c", allocate], poll_seconds=0.05)
    assert watched.returncode == 0
    assert watched.max_peak("launcher") >= 80 * 1024 * 1024


def _ok_rows(output: Path) -> dict[str, dict]:
    from pipeline.summary import read_records

    return {row["image_path"]: row for row in read_records(str(output)).to_pylist() if row["status"] == "ok"}


def test_runinference_alternative_writes_the_same_records(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    from bench.runinference_baseline import run_runinference_audit
    from pipeline.run import run

    def argv(output: Path) -> list[str]:
        return ["--manifest", str(tiny_archive.manifest), "--model", str(tiny_model_path), "--output", str(output),
                "--batch_size", "3", "--no_heatmaps"]

    run(argv(tmp_path / "ours"))
    run_runinference_audit(argv(tmp_path / "alternative"))
    ours, alternative = _ok_rows(tmp_path / "ours"), _ok_rows(tmp_path / "alternative")
    assert set(ours) == set(alternative) == set(tiny_archive.good)
    for path, row in ours.items():
        other = alternative[path]
        for column in ("cam_class", "peak_x", "peak_y", "width", "height"):
            assert row[column] == other[column], (path, column)
        np.testing.assert_allclose(row["probabilities"], other["probabilities"], atol=1e-6)
        np.testing.assert_allclose(row["cam"], other["cam"], rtol=0, atol=1e-5 * max(1.0, max(map(abs, row["cam"]))))


def test_classic_recipe_writes_a_heatmap_per_image(
    tiny_archive: TinyArchive, tiny_model_path: Path, tmp_path: Path
) -> None:
    from bench.classic_recipe import time_classic_recipe

    paths = list(tiny_archive.good[:2])
    seconds = time_classic_recipe(str(tiny_model_path), tiny_archive.root, paths, tmp_path)
    assert seconds > 0
    for path in paths:
        heatmap = cv2.imread(str(tmp_path / f"{path}.jpg"))
        width, height = tiny_archive.sizes[path]
        assert heatmap is not None and heatmap.shape == (height, width, 3)


def test_measurements_keep_the_best_run_with_its_noise() -> None:
    from bench.report import Measurements
    from bench.targets import noisy

    results = Measurements(args={}, environment={}, load_average_start=(0.0, 0.0, 0.0))
    results.record("run", 9.0, 0.0)
    results.record("run", 7.5, 0.6)
    assert results.best("run") == (7.5, 0.6)
    assert noisy(0.6) == " (noisy)" and noisy(0.05) == ""


@pytest.mark.parametrize(
    ("layout", "threads", "micro_batch_size"), [("tensorflow_default", 1, 4), ("cam_audit", 2, 2), ("litert", 2, 2)]
)
def test_limit_runs_whole_passes_through_the_pipelines_forward_function(
    tiny_model_path: Path, layout: str, threads: int, micro_batch_size: int
) -> None:
    from bench.forward import limit_loader, time_forward
    from tests.conftest import TINY_INPUT

    model = limit_loader(str(tiny_model_path), layout, batch_size=4, forward_threads=2, micro_batch_size=2).load_model()
    inputs = np.random.default_rng(0).uniform(0, 255, (10, TINY_INPUT, TINY_INPUT, 3)).astype(np.float32)
    limit = time_forward(model, layout, inputs, batch_size=4, min_seconds=1e-9)
    # One whole pass over the 10 images (batches of 4, 4, 2), in the layout asked for.
    assert (limit.layout, limit.images) == (layout, 10)
    assert (limit.threads, limit.micro_batch_size) == (threads, micro_batch_size)
    assert limit.images_per_second > 0
    assert limit.backend == ("litert" if layout == "litert" else "tensorflow")
    with pytest.raises(ValueError, match="layout"):
        limit_loader(str(tiny_model_path), "fastest", batch_size=4)


def test_essential_limit_adds_the_two_costs_per_image() -> None:
    from bench.report import essential_limit

    assert essential_limit(100.0, 100.0) == pytest.approx(50.0)  # 10 ms + 10 ms per image
    assert essential_limit(300.0, 600.0) == pytest.approx(200.0)


def test_non_model_loop_runs_whole_passes_in_each_process(tiny_archive: TinyArchive) -> None:
    from bench.nonmodel import blob_cam, time_non_model

    cam = blob_cam((7, 7))
    assert np.unravel_index(np.argmax(cam), cam.shape) == (3, 3) and cam.min() < 0 < cam.max()
    paths = list(tiny_archive.good[:4])
    rate = time_non_model(tiny_archive.root, paths, (32, 32), (4, 4), processes=2, min_seconds=1e-9)
    assert (rate.processes, rate.images) == (2, 4) and rate.images_per_second > 0


def test_non_model_loop_overlays_each_image_with_its_own_cam(
    tiny_archive: TinyArchive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bench.nonmodel as nonmodel

    paths = [str(tiny_archive.root / path) for path in tiny_archive.good[:3]]
    cams = nonmodel.ModelCams(np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2), (0.25, -0.5))
    saved = nonmodel.ModelCams.load(cams.save(tmp_path / "cams.npz"))
    np.testing.assert_array_equal(saved.maps, cams.maps)
    assert saved.shift == (0.25, -0.5)
    seen: list[tuple[bytes, float, tuple[float, float]]] = []

    def record(data: bytes, _size: tuple[int, int], cam: np.ndarray, threshold: float = 0.2,
               shift: tuple[float, float] = (0.0, 0.0)) -> int:
        seen.append((data, float(cam[0, 0]), shift))
        return 0

    monkeypatch.setattr(nonmodel, "non_model_image", record)
    images, _ = nonmodel._loop(paths, (32, 32), list(saved.maps), saved.shift, min_seconds=1e-9)
    # The set-up call on the first image, then one whole pass: file i with CAM i and the model's shift.
    assert images == 3
    assert seen[1:] == [(Path(path).read_bytes(), float(4 * index), (0.25, -0.5)) for index, path in enumerate(paths)]
    with pytest.raises(ValueError, match="2 CAMs for 3 images"):
        nonmodel.time_non_model(Path(), paths, (32, 32), (2, 2), 1, 1e-9, nonmodel.ModelCams(cams.maps[:2], (0, 0)))


def test_heatmap_size_draws_the_cam_on_its_shifted_grid(tiny_archive: TinyArchive) -> None:
    from bench.nonmodel import heatmap_size
    from transforms.cam import explain_cam
    from transforms.imaging import load_model_input
    from transforms.overlay import encode_image, render_overlay

    pixels, _ = load_model_input((tiny_archive.root / tiny_archive.good[0]).read_bytes(), 32, 32)
    cam = np.random.default_rng(3).normal(size=(4, 4)).astype(np.float32)
    height, width = pixels.shape[:2]
    full, _ = explain_cam(cam, width, height, 0.2, (0.5, 0.5))
    assert heatmap_size(pixels, cam, 0.2, (0.5, 0.5)) == len(encode_image(render_overlay(pixels, full, 0.2), "jpg"))


def test_model_cams_are_the_pipelines_maps_in_order(tiny_model_path: Path) -> None:
    from bench.forward import model_cams
    from transforms.inference import CamModelLoader

    model = CamModelLoader(str(tiny_model_path), batch_size=4, forward_threads=1, micro_batch_size=2).load_model()
    inputs = np.random.default_rng(5).uniform(0, 255, size=(7, *model.input_size, 3)).astype(np.float32)
    cams = model_cams(model, inputs, batch_size=4)
    (_, _, maps), _ = model.submit(inputs).result()
    np.testing.assert_array_equal(cams.maps, maps)
    assert cams.maps.dtype == np.float32 and cams.shift == model.cam_shift


class Timeline:
    """Bench figures laid out in time as `make bench` takes them, on a clock that ticks once per measurement."""

    def __init__(self) -> None:
        self.results = Measurements(args={}, environment={}, load_average_start=(0.0, 0.0, 0.0))
        self.clock = 0.0

    def _span(self) -> tuple[float, float]:
        self.clock += 1.0
        return self.clock, self.clock + 0.5

    def limit(self, layout: str, model: str, rate: float) -> None:
        started, ended = self._span()
        backend = "litert" if layout == "litert" else "tensorflow"
        self.results.limits.append({"layout": layout, "backend": backend, "model": model, "images_per_second": rate,
                                    "threads": 2, "micro_batch_size": 8, "intra_op_threads": 1, "other_cores": 0.0,
                                    "started": started, "ended": ended, "steal_cores": 0.0})

    def loop(self, model: str, rate: float) -> None:
        started, ended = self._span()
        self.results.non_model.setdefault(model, []).append(
            {"processes": 2, "images": 512, "seconds": 1.0, "images_per_second": rate, "other_cores": 0.0,
             "started": started, "ended": ended, "steal_cores": 0.0})

    def pair(self, label: str, rate: float, speed: float = 1.0, sizes: tuple[int, int] | None = None) -> None:
        """A 512- and a 1,536-image run (or `sizes`, noted as the bench notes them): the extra images at `rate`,
        5 s fixed, all `speed` times faster."""
        images, base = sizes or (1536, 512)
        if sizes:
            self.results.pair_images[label] = sizes
        self.results.record(label + BASE_SUFFIX, 5.0 / speed, 0.0, self._span(), 0.0)
        self.results.record(label, (5.0 + (images - base) / rate) / speed, 0.0, self._span(), 0.0)


def seed_and_near_free_round(timeline: Timeline, speed: float = 1.0, archive_scale: bool = False) -> None:
    """One round in `make bench`'s order, every limit `speed` times the base figures; end-to-end rates
    120 (LiteRT), 80 (TensorFlow) and 300 (near-free) images/s times `speed`; `archive_scale`: the LiteRT
    pairs of 8,000 and 1,000 images."""
    sizes = (8000, 1000) if archive_scale else None
    def seed_bracket() -> None:
        timeline.limit("cam_audit", "model", 100.0 * speed)
        timeline.limit("litert", "model", 200.0 * speed)
        timeline.loop("model", 600.0 * speed)

    timeline.limit("tensorflow_default", "model", 60.0 * speed)
    seed_bracket()
    timeline.pair("cam_audit_jpg_tensorflow", 80.0, speed)
    seed_bracket()
    timeline.pair("cam_audit_jpg", 120.0, speed, sizes)
    seed_bracket()
    for _ in range(2):
        timeline.limit("litert", "near_free_model", 800.0 * speed)
        timeline.loop("near_free_model", 600.0 * speed)
        if _ == 0:
            timeline.pair("near_free_jpg", 300.0, speed, sizes)


def test_adjacent_finds_the_nearest_measurement_on_each_side_of_a_pair() -> None:
    from bench.brackets import adjacent

    figures = [{"started": t, "ended": t + 1.0, "images_per_second": t} for t in (0.0, 2.0, 10.0, 12.0)]
    before, after = adjacent(figures, 5.0, 9.0)
    assert (before["images_per_second"], after["images_per_second"]) == (2.0, 10.0)
    assert adjacent(figures, 0.5, 20.0) == (None, None)
    assert adjacent([{"images_per_second": 1.0}], 5.0, 9.0) == (None, None)  # figures from before spans were kept


@pytest.mark.parametrize("archive_scale", [False, True])
def test_issue_14_targets_are_the_medians_of_bracketed_ratios(archive_scale: bool) -> None:
    import argparse

    from bench.targets import issue_14_round_lines, summarise

    timeline = Timeline()
    # Three rounds; the machine is twice as fast in round 2 for every figure, so each round's ratios are equal.
    for speed in (1.0, 2.0, 1.0):
        seed_and_near_free_round(timeline, speed, archive_scale)
    args = argparse.Namespace(images=1536, base_images=512, batch_size=32, skip={"rss"}, rss_sizes=[1, 2])
    rows, targets = summarise(timeline.results, args)
    verdicts = {target.name: (target.measured.split(" (")[0], target.verdict) for target in targets}
    # Essential limits: 1/(1/100 + 1/600) = 85.7, 1/(1/200 + 1/600) = 150, 1/(1/800 + 1/600) = 342.9.
    assert verdicts["end to end / essential, seed model, TensorFlow"] == ("0.933x", "PASS")
    assert verdicts["end to end / essential, seed model, LiteRT"] == ("0.800x", "MISS")
    assert verdicts["end to end / essential, near-free model"] == ("0.875x", "PASS")
    assert verdicts["LiteRT end to end / TF bare forward"] == ("1.200x", "MISS")
    assert "median of 3 bracketed round(s): 0.800, 0.800, 0.800" in next(
        t.measured for t in targets if t.name == "end to end / essential, seed model, LiteRT")
    table = {row.name: row for row in rows}
    assert table["essential limit, seed model, LiteRT"].images_per_second == pytest.approx(150.0)
    assert table["end to end, near-free model"].images_per_second == pytest.approx(300.0)
    assert table["end to end, near-free model"].images == (7000 if archive_scale else 1024)
    # Issue 4's row: the fastest run of each size over the rounds (round 2's, twice as fast), at the pair's own sizes.
    assert table["cam-audit, jpg heatmaps"].images_per_second == pytest.approx(240.0)
    lines = issue_14_round_lines(timeline.results, args)
    assert len(lines) == 4 * 3 and all("+0%" in line for line in lines)


def test_a_bracketed_ratio_takes_its_limits_from_beside_its_own_pair() -> None:
    import argparse

    from bench.targets import summarise

    timeline = Timeline()
    seed_and_near_free_round(timeline)
    # The machine runs at half speed from the LiteRT pair on: its pair and the brackets after it. Dividing by
    # the first bracket's fast forward pass (best of the lines) would give 60 / 150 = 0.40x; the pair's own
    # brackets (fast before, slow after) give 60 / mean(150, 75) = 0.53x.
    timeline.results.walls["cam_audit_jpg"][-1] *= 2
    timeline.results.walls["cam_audit_jpg" + BASE_SUFFIX][-1] *= 2
    slow_from = timeline.results.spans["cam_audit_jpg" + BASE_SUFFIX][-1][0]
    seed_figures = [m for m in timeline.results.limits if m["model"] == "model"] + timeline.results.non_model["model"]
    for figure in seed_figures:
        if figure["started"] > slow_from:
            figure["images_per_second"] /= 2
    args = argparse.Namespace(images=1536, base_images=512, batch_size=32, skip={"rss", "near_free"}, rss_sizes=[1, 2])
    _, targets = summarise(timeline.results, args)
    verdicts = {target.name: target.measured.split(" (")[0] for target in targets}
    assert verdicts["end to end / essential, seed model, LiteRT"] == "0.533x"
    assert verdicts["end to end / essential, seed model, TensorFlow"] == "0.933x"  # before the slowdown
    # TensorFlow's forward around the LiteRT pair: 100 before, 50 after; 60 / 75 = 0.80x.
    assert verdicts["LiteRT end to end / TF bare forward"] == "0.800x"


def test_methods_table_gives_ratios_to_the_bare_pass_and_the_faithfulness_cost() -> None:
    from bench.methods import render_methods

    table = render_methods({
        "bare": {"images_per_second": 100.0, "other_cores": 0.5},
        "hirescam": {"images_per_second": 50.0, "other_cores": 0.5},
        "hirescam+faithfulness": {"images_per_second": 2.0, "other_cores": 0.5},
    })  # fmt: skip
    assert "hirescam                      50.0     0.50      20.0" in table
    assert "faithfulness costs 480.0 ms" in table


def test_bare_forward_is_the_classifier_alone() -> None:
    from bench.methods import BareForward
    from tests.conftest import build_tiny_cam_model, random_batch

    model = build_tiny_cam_model(seed=2)
    batch = random_batch(3)
    probabilities, classes, maps = BareForward(model).traced()(batch)
    np.testing.assert_allclose(probabilities, model.predict(batch, verbose=0), atol=1e-6)
    assert list(classes) == list(probabilities.argmax(axis=1)) and maps.shape == (3, 1, 1)


def test_gpu_probe_compares_outputs_image_by_image() -> None:
    from bench.gpu_probe import compare_outputs

    rng = np.random.default_rng(3)
    cams = rng.normal(size=(4, 7, 7, 2)).astype(np.float32)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], dtype=np.float32)
    reference = {"probabilities": probabilities, "cams": cams}
    same = compare_outputs(reference, probabilities, cams)
    assert (same["same_class"], same["same_cam_peak"], same["max_abs_dprob"], same["cam_rel_l2"]) == (4, 4, 0.0, 0.0)
    moved = cams.copy()
    moved[1, 0, 0, 1] = cams[1, :, :, 1].max() + 1.0  # image 1's peak moves to a corner of its class-1 map
    shifted = probabilities + np.array([[0.0, 0.0], [0.0, 0.0], [-0.2, 0.2], [0.0, 0.0]], dtype=np.float32)
    changed = compare_outputs(reference, shifted, moved)
    assert (changed["same_class"], changed["same_cam_peak"]) == (3, 3)
    assert changed["max_abs_dprob"] == pytest.approx(0.2)
    assert changed["cam_rel_l2"] > 0 and changed["worst_image_cam_rel_l2"] >= changed["cam_rel_l2"]


def test_gpu_probe_derives_the_limit_and_the_processes_that_feed_the_gpu() -> None:
    from bench.gpu_probe import derived

    model = {"forward": [{"variant": "jit_host", "precision": "highest", "images_per_second": 900.0},
                         {"variant": "jit_host", "precision": "default", "images_per_second": 2000.0},
                         {"variant": "jit_device", "precision": "highest", "images_per_second": 3000.0}]}
    loops = [{"processes": 1, "images_per_second": 150.0}, {"processes": 4, "images_per_second": 600.0},
             {"processes": 8, "images_per_second": 1000.0}]
    figures = derived(model, loops)
    assert figures["forward_host_images_per_second"] == 900.0  # full float32 only, as cam-audit runs
    assert figures["essential_limit_overlapped"] == 900.0  # the slower side: the GPU here
    assert figures["essential_limit_serial"] == pytest.approx(1 / (1 / 900 + 1 / 1000))
    assert figures["processes_to_feed_gpu_linear"] == pytest.approx(6.0)
    assert figures["processes_to_feed_gpu_measured"] == 8


def test_gpu_workers_split_an_images_work_around_the_forward_pass(tiny_archive: TinyArchive) -> None:
    from bench.nonmodel import blob_cam, heatmap_size, non_model_image
    from transforms.imaging import load_model_input

    data = (tiny_archive.root / tiny_archive.good[0]).read_bytes()
    pixels, model_input = load_model_input(data, 32, 32)
    assert model_input.shape == (32, 32, 3) and pixels.ndim in (2, 3)
    # Decode before and render after the forward pass make the same heatmap as the non-model loop in one go.
    cam = blob_cam((4, 4))
    assert heatmap_size(pixels, cam) == non_model_image(data, (32, 32), cam)
