"""Per-element work of a DoFn on a few threads, handed on in input order, each result in its own element's window.

Beam runs a bundle's DoFns on one thread. The per-image work (PNG/JPEG decode, resize, CAM upsample,
colour map, JPEG encode, file writes) is mostly OpenCV, numpy and file I/O, which release the GIL, so a
few threads spread it over the worker's cores while the bundle thread only moves elements along.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import apache_beam as beam
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.devices import ImageThreads
from transforms.scheduling import run_as_batch_thread

In = TypeVar("In")
Out = TypeVar("Out")

# Elements in flight per thread: enough that a thread never waits for the bundle thread to hand it the
# next one, few enough that decoded images in flight stay a handful per core.
IN_FLIGHT_PER_THREAD = 4


class StageThreads:
    """One stage's threads in a worker process, shared by every instance of its DoFn (runners that run several
    bundles at once in a process hold one instance per bundle thread: the threads stay `threads`, not a pool each).

    Held through `shared.Shared`, which keeps only a weak reference: when the last DoFn instance lets go, the
    executor is collected and its idle threads exit.
    """

    def __init__(self, threads: int, name: str) -> None:
        assert threads >= 1, threads
        self.threads = threads
        self.executor = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix=name, initializer=run_as_batch_thread
        )


def stage_threads(handle: shared.Shared, tag: str, threads: int, name: str) -> StageThreads:
    """The process's threads for the stage `tag`, started by the first DoFn instance that asks."""
    return handle.acquire(lambda: StageThreads(threads, name), tag=tag)


@dataclasses.dataclass(frozen=True)
class _Pending:
    """An element's work in flight, and where its result belongs (its timestamp, window and pane, no value)."""

    future: concurrent.futures.Future
    template: WindowedValue


class OrderedThreads(Generic[In, Out]):
    """Runs `function` over elements on a stage's threads; results come back in submission order.

    Used from one DoFn instance: `start()` in start_bundle, `submit(...)` in process (yields the results that
    are ready, waiting for the oldest only when too many are in flight), `finish()` in finish_bundle. Results
    come as (result, windowed template): the caller wraps its output with `template.with_value(...)`, so each
    output keeps its own element's timestamp, window and pane even when it is handed on while another
    element is being processed. An exception raised by `function` is raised again, on the bundle's thread,
    when its element's turn comes: the bundle fails as it would have without the threads.
    """

    def __init__(self, function: Callable[[In], Out], threads: StageThreads) -> None:
        self._function = function
        self._max_in_flight = threads.threads * IN_FLIGHT_PER_THREAD
        self._threads = threads  # held: while any instance holds it, the shared threads live
        self._pending: collections.deque[_Pending] = collections.deque()

    def start(self) -> None:
        """Forget work left by a failed bundle: its results are never handed on."""
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()

    def submit(self, element: In, timestamp: Any, window: Any, pane_info: Any) -> Iterator[tuple[Out, WindowedValue]]:
        """Queue one element's work; yield the oldest results that are done (and wait while too many are in flight)."""
        future = self._threads.executor.submit(self._function, element)
        self._pending.append(_Pending(future, WindowedValue(None, timestamp, (window,), pane_info)))
        while self._pending and (len(self._pending) > self._max_in_flight or self._pending[0].future.done()):
            yield self._hand_on(self._pending.popleft())

    def finish(self) -> Iterator[tuple[Out, WindowedValue]]:
        """Wait for every element still in flight and yield their results, in order."""
        while self._pending:
            yield self._hand_on(self._pending.popleft())

    @staticmethod
    def _hand_on(pending: _Pending) -> tuple[Out, WindowedValue]:
        return pending.future.result(), pending.template


class OrderedThreadsDoFn(beam.DoFn):
    """A DoFn whose per-element `work` runs on its stage's threads in the worker process (`threads`, settled there).

    Subclasses define `work(element)` (on a stage thread) and may override `hand_on(result, template)` (on the
    bundle's thread, where Beam's per-thread metric containers see counter updates), which turns a result into
    the output: by default the result in its element's window.
    """

    def __init__(self, threads: ImageThreads, name: str) -> None:
        self._threads = threads
        self._thread_name = name
        self._shared_handle = shared.Shared()
        # One tag per stage: every instance of this stage's DoFn in a process shares its threads.
        self._shared_tag = uuid.uuid4().hex
        self._work: OrderedThreads | None = None

    def work(self, element: Any) -> Any:
        raise NotImplementedError

    def hand_on(self, result: Any, template: WindowedValue) -> object:
        return template.with_value(result)

    def setup(self) -> None:
        threads = stage_threads(self._shared_handle, self._shared_tag, self._threads.count(), self._thread_name)
        self._work = OrderedThreads(self.work, threads)

    def start_bundle(self) -> None:
        assert self._work is not None
        self._work.start()

    def process(
        self,
        element: Any,
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
        pane_info: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[object]:
        assert self._work is not None
        for result, template in self._work.submit(element, timestamp, window, pane_info):
            yield self.hand_on(result, template)

    def finish_bundle(self) -> Iterator[object]:
        assert self._work is not None
        for result, template in self._work.finish():
            yield self.hand_on(result, template)

    def teardown(self) -> None:
        self._work = None  # lets go of the stage's shared threads
