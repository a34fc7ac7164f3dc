"""OrderedThreads: per-element work on a few threads, handed on in input order, each in its own element's window."""

from __future__ import annotations

import threading
import time

import pytest
from apache_beam.transforms.window import GlobalWindow, IntervalWindow
from apache_beam.utils.windowed_value import PaneInfo, PaneInfoTiming

from transforms.ordered_threads import (
    IN_FLIGHT_PER_THREAD,
    OrderedThreads,
    OrderedThreadsDoFn,
    StageThreads,
    stage_threads,
)

PANE = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)


def test_results_come_in_submission_order_whoever_finishes_first() -> None:
    # Earlier elements sleep longer, so on 3 threads later ones finish first.
    def slow_first(n: int) -> int:
        time.sleep(0.02 * (5 - n))
        return n * n

    work = OrderedThreads(slow_first, StageThreads(3, "test"))
    work.start()
    out = [result for n in range(6) for result, _ in work.submit(n, 0, GlobalWindow(), PANE)]
    out += [result for result, _ in work.finish()]
    assert out == [n * n for n in range(6)]


def test_each_result_keeps_its_own_elements_timestamp_window_and_pane() -> None:
    work = OrderedThreads(lambda n: n + 100, StageThreads(2, "test"))
    work.start()
    handed = []
    for n in range(5):
        window = IntervalWindow(10 * n, 10 * n + 10)
        handed += work.submit(n, 10 * n + 1, window, PANE)
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
        assert list(work.submit(n, 0, GlobalWindow(), PANE)) == []
    gate.set()
    # One more than the limit: the oldest is waited for and handed on (and any others already done).
    out = [result for result, _ in work.submit(limit, 0, GlobalWindow(), PANE)]
    out += [result for result, _ in work.finish()]
    assert out == list(range(limit + 1))


def test_an_exception_is_raised_on_the_callers_thread_at_its_elements_turn() -> None:
    def fails_on_two(n: int) -> int:
        if n == 2:
            raise ValueError("bad element 2")
        return n

    work = OrderedThreads(fails_on_two, StageThreads(2, "test"))
    work.start()
    out = []
    with pytest.raises(ValueError, match="bad element 2"):
        for n in range(4):
            out += [result for result, _ in work.submit(n, 0, GlobalWindow(), PANE)]
        out += [result for result, _ in work.finish()]
    assert out == [0, 1][: len(out)]


def test_start_forgets_what_a_failed_bundle_left_in_flight() -> None:
    work = OrderedThreads(lambda n: n, StageThreads(1, "test"))
    work.start()
    list(work.submit("left over", 0, GlobalWindow(), PANE))
    work.start()  # the next bundle
    out = [result for result, _ in work.submit("new", 0, GlobalWindow(), PANE)]
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

    def work(self, element: int) -> int:
        return element + 100


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
