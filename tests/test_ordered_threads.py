"""OrderedThreads: per-element work on a few threads in chunks, handed on in input order, each in its own window."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from apache_beam.transforms.window import GlobalWindow, IntervalWindow
from apache_beam.utils.windowed_value import PaneInfo, PaneInfoTiming, WindowedValue

from transforms.ordered_threads import (
    CHUNK_SIZE,
    IN_FLIGHT_PER_THREAD,
    OrderedThreads,
    OrderedThreadsDoFn,
    StageThreads,
    stage_threads,
)

PANE = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)


def windowed(element: Any, timestamp: int = 0, window: Any = None) -> WindowedValue:
    """The element as Beam hands it to a DoFn: in a window (the global one by default), with a timestamp and pane."""
    return WindowedValue(element, timestamp, (window or GlobalWindow(),), PANE)


def each(function: Callable[[Any], Any]) -> Callable[[list[Any]], list[Any]]:
    """A chunk function applying `function` to each element of the chunk in turn."""
    return lambda chunk: [function(element) for element in chunk]


def test_results_come_in_submission_order_whoever_finishes_first() -> None:
    # Earlier elements sleep longer, so on 3 threads later ones finish first.
    def slow_first(n: int) -> int:
        time.sleep(0.02 * (5 - n))
        return n * n

    work = OrderedThreads(each(slow_first), StageThreads(3, "test"), chunk_size=1)
    work.start()
    out = [result for n in range(6) for result, _ in work.submit(n, windowed(n))]
    out += [result for result, _ in work.finish()]
    assert out == [n * n for n in range(6)]


def test_elements_reach_the_threads_in_chunks_and_the_last_partial_one_at_finish() -> None:
    chunks: list[list[int]] = []

    def record_chunk(chunk: list[int]) -> list[int]:
        chunks.append(list(chunk))
        return [n * 10 for n in chunk]

    work = OrderedThreads(record_chunk, StageThreads(1, "test"), chunk_size=3)
    work.start()
    out = [result for n in range(7) for result, _ in work.submit(n, windowed(n))]
    # Elements wait in an open chunk until it is full: the seventh goes to the threads only in finish().
    assert len(out) <= 6 and all(6 not in chunk for chunk in list(chunks))
    out += [result for result, _ in work.finish()]
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    assert out == [n * 10 for n in range(7)]


def test_a_chunk_function_must_give_one_result_per_element() -> None:
    work = OrderedThreads(lambda chunk: chunk[:-1], StageThreads(1, "test"), chunk_size=2)
    work.start()
    with pytest.raises(AssertionError):
        for n in range(2):
            list(work.submit(n, windowed(n)))
        list(work.finish())


def test_chunks_of_the_default_size_keep_order_on_several_threads() -> None:
    def slow_early_chunks(chunk: list[int]) -> list[int]:
        time.sleep(0.01 * max(0, 3 - chunk[0] // CHUNK_SIZE))
        return [n + 1 for n in chunk]

    work = OrderedThreads(slow_early_chunks, StageThreads(3, "test"))
    work.start()
    count = 5 * CHUNK_SIZE + 3
    out = [result for n in range(count) for result, _ in work.submit(n, windowed(n))]
    out += [result for result, _ in work.finish()]
    assert out == [n + 1 for n in range(count)]


def test_each_result_keeps_its_own_elements_timestamp_window_and_pane() -> None:
    work = OrderedThreads(each(lambda n: n + 100), StageThreads(2, "test"), chunk_size=2)
    work.start()
    handed = []
    for n in range(5):
        window = IntervalWindow(10 * n, 10 * n + 10)
        handed += work.submit(n, windowed(n, 10 * n + 1, window))
    handed += work.finish()
    values = [template.with_value(result) for result, template in handed]
    assert [value.value for value in values] == [100, 101, 102, 103, 104]
    assert [value.timestamp.micros for value in values] == [(10 * n + 1) * 1_000_000 for n in range(5)]
    assert [value.windows for value in values] == [(IntervalWindow(10 * n, 10 * n + 10),) for n in range(5)]
    assert all(value.pane_info == PANE for value in values)


def test_submit_hands_on_only_what_is_done_and_waits_once_too_many_are_in_flight() -> None:
    gate = threading.Event()

    def blocked(n: int) -> int:
        gate.wait(5)
        return n

    threads = 1
    work = OrderedThreads(blocked, StageThreads(threads, "test"))
    work.start()
    limit = threads * IN_FLIGHT_PER_THREAD
    # Up to the limit nothing is done, so submit returns at once with nothing.
    for n in range(limit):
        assert list(work.submit(n, windowed(n))) == []
    gate.set()
    # One more than the limit: the oldest is waited for and handed on (and any others already done).
    out = [result for result, _ in work.submit(limit, windowed(limit))]
    out += [result for result, _ in work.finish()]
    assert out == list(range(limit + 1))


def test_an_exception_is_raised_on_the_callers_thread_at_its_elements_turn() -> None:
    def fails_on_two(n: int) -> int:
        if n == 2:
            raise ValueError("bad element 2")
        return n

    work = OrderedThreads(each(fails_on_two), StageThreads(2, "test"), chunk_size=1)
    work.start()
    out = []
    with pytest.raises(ValueError, match="bad element 2"):
        for n in range(4):
            out += [result for result, _ in work.submit(n, windowed(n))]
        out += [result for result, _ in work.finish()]
    assert out == [0, 1][: len(out)]


def test_start_forgets_what_a_failed_bundle_left_in_flight() -> None:
    work = OrderedThreads(each(lambda n: n), StageThreads(1, "test"), chunk_size=2)
    work.start()
    list(work.submit("left over", windowed("left over")))  # waits in the open chunk
    work.start()  # a bundle that failed before its chunk went out
    assert list(work.finish()) == []
    work = OrderedThreads(each(lambda n: n), StageThreads(1, "test"), chunk_size=1)
    work.start()
    list(work.submit("left over", windowed("left over")))
    work.start()  # the next bundle
    out = [result for result, _ in work.submit("new", windowed("new"))]
    out += [result for result, _ in work.finish()]
    assert out == ["new"]


def test_every_instance_of_a_stage_in_a_process_shares_its_threads() -> None:
    from apache_beam.utils import shared

    handle = shared.Shared()
    first = stage_threads(handle, "stage-a", 2, "test")
    assert stage_threads(handle, "stage-a", 2, "test") is first
    assert stage_threads(handle, "stage-b", 2, "test") is not first


class _PlusHundred(OrderedThreadsDoFn):
    """The smallest stage: n -> n + 100 on two threads."""

    def __init__(self) -> None:
        from transforms.devices import ImageThreads

        super().__init__(ImageThreads(2), "test_plus_hundred")

    def work_chunk(self, elements: list[int]) -> list[int]:
        return [element + 100 for element in elements]


def test_an_element_in_several_windows_gives_a_result_in_each_of_them() -> None:
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms.window import SlidingWindows, TimestampedValue

    from tests.conftest import local_pipeline

    with local_pipeline() as pipeline:
        windowed_results = (
            pipeline
            | beam.Create([1, 7])
            | beam.Map(lambda n: TimestampedValue(n, n))
            # t = 1 falls in [-5, 5) and [0, 10), t = 7 in [0, 10) and [5, 15)
            | beam.WindowInto(SlidingWindows(size=10, period=5))
            | beam.ParDo(_PlusHundred())
            | beam.Map(lambda n, window=beam.DoFn.WindowParam: (n, int(window.start)))
        )
        assert_that(windowed_results, equal_to([(101, -5), (101, 0), (107, 0), (107, 5)]))
