"""LiteRT's call size: the candidates, the choice from timings, and the loader timing them on the worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import transforms.inference as inference
from tests.conftest import random_batch
from transforms.call_size import candidate_call_sizes, describe_timings, fastest_call_size, time_call_sizes
from transforms.inference import CamModelLoader


@pytest.mark.parametrize(("batch_size", "expected"), [(32, (1, 2, 4, 8)), (8, (1, 2, 4, 8)), (6, (1, 2, 4)),
                                                      (2, (1, 2)), (1, (1,))])  # fmt: skip
def test_candidates_are_the_call_sizes_up_to_the_batch(batch_size: int, expected: tuple[int, ...]) -> None:
    assert candidate_call_sizes(batch_size) == expected


def test_the_fastest_size_is_the_least_time_per_image_in_its_best_round() -> None:
    # Size 1's best round (8.0 ms) beats size 2's (8.5), though size 2 has the better mean.
    assert fastest_call_size({1: [0.0200, 0.0080, 0.0210], 2: [0.0085, 0.0086, 0.0087], 4: [0.0090]}) == 1
    assert fastest_call_size({1: [0.012], 2: [0.010], 4: [0.010], 8: [0.011]}) == 2  # a tie: the smaller size


def test_rounds_interleave_the_sizes() -> None:
    calls: list[int] = []

    def seconds_per_image(size: int) -> float:
        calls.append(size)
        return size / 1000

    assert time_call_sizes(seconds_per_image, (1, 4), rounds=3) == {1: [0.001] * 3, 4: [0.004] * 3}
    assert calls == [1, 4, 1, 4, 1, 4]
    assert describe_timings({1: [0.0071, 0.00702], 4: [0.0069]}) == "1: 7.02 ms, 4: 6.90 ms"


def test_a_litert_worker_keeps_the_call_size_it_timed_fastest(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ai_edge_litert")
    timed: list[dict[int, list[float]]] = []

    def pick_two(timings: dict[int, list[float]]) -> int:
        timed.append(timings)
        return 2

    monkeypatch.setattr(inference, "fastest_call_size", pick_two)
    tuned = CamModelLoader(str(tiny_model_path), batch_size=6, forward_threads=2, backend="litert").load_model()
    assert tuned.backend == "litert" and tuned.layout.micro_batch_size == 2
    (timings,) = timed
    assert sorted(timings) == [1, 2, 4] and all(len(rounds) == 3 and min(rounds) > 0 for rounds in timings.values())
    # Whatever the size, the same outputs, bit for bit, as a worker told its size.
    told = CamModelLoader(str(tiny_model_path), batch_size=6, forward_threads=2, micro_batch_size=4,
                          backend="litert").load_model()
    batch = random_batch(6, seed=5)
    for tuned_output, told_output in zip(tuned.submit(batch).result()[0], told.submit(batch).result()[0], strict=True):
        np.testing.assert_array_equal(tuned_output, told_output)


@pytest.fixture
def no_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> None:
        raise AssertionError("call sizes were timed")

    monkeypatch.setattr(inference, "time_call_sizes", never)


@pytest.mark.usefixtures("no_timing")
def test_tensorflows_forward_keeps_its_automatic_call_size(tiny_model_path: Path) -> None:
    # TensorFlow on CPUs: CPU_MICRO_BATCH_SIZE (8) images per call, at most the batch.
    assert CamModelLoader(str(tiny_model_path), batch_size=6).load_model().layout.micro_batch_size == 6


@pytest.mark.usefixtures("no_timing")
def test_a_call_size_the_user_gives_is_kept(tiny_model_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    given = CamModelLoader(str(tiny_model_path), batch_size=6, micro_batch_size=3, backend="litert").load_model()
    assert given.backend == "litert" and given.layout.micro_batch_size == 3


@pytest.mark.usefixtures("no_timing")
def test_litert_with_faithfulness_keeps_the_automatic_call_size(tiny_model_path: Path) -> None:
    # The faithfulness passes run on TensorFlow: timing them would not time LiteRT's calls.
    pytest.importorskip("ai_edge_litert")
    loaded = CamModelLoader(str(tiny_model_path), batch_size=6, backend="litert", faithfulness=True).load_model()
    assert loaded.backend == "litert" and loaded.faithfulness is not None and loaded.layout.micro_batch_size == 6


def test_warm_up_resizes_every_interpreter_to_the_kept_size(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ai_edge_litert")
    from transforms.backends import litert

    monkeypatch.setattr(inference, "fastest_call_size", lambda timings: 2)
    loaded = CamModelLoader(str(tiny_model_path), batch_size=6, forward_threads=3, backend="litert").load_model()
    interpreters = []
    while not loaded.predict._free.empty():  # type: ignore[attr-defined] - LiteRtCam's queue of interpreters
        interpreters.append(loaded.predict._free.get())  # type: ignore[attr-defined]
    assert len(interpreters) == 3 and all(isinstance(i, litert._Interpreter) for i in interpreters)
    assert [interpreter._batch_size for interpreter in interpreters] == [2, 2, 2]
