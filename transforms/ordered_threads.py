"""Per-element work of a DoFn on a few threads, handed on in input order, each result in its own element's window.

Beam runs a bundle's DoFns on one thread. The per-image work (PNG/JPEG decode, resize, CAM upsample,
colour map, JPEG encode, file writes) is mostly OpenCV, numpy and file I/O, which release the GIL, so a
few threads spread it over the worker's cores while the bundle thread only moves elements along.

A thread takes consecutive elements a chunk at a time: one hand-off (a future, a wake-up of the bundle
thread) per chunk instead of per element, and a chunk can do its file calls in a row (all reads, then all
writes), which the kernel serves faster back to back than between images' compute (bench/README.md,
session 16).
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

# Elements a stage thread takes at a time (the last chunk of a bundle may be smaller).
CHUNK_SIZE = 8
# Chunks queued or running per thread before the bundle thread waits for the oldest: with the one it then
# submits, every thread has its next chunk waiting, and images in flight stay a few chunks per stage.
IN_FLIGHT_PER_THREAD = 1


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
    """A chunk's work in flight, and where each of its results belongs (its element's timestamp, window and pane)."""

    future: concurrent.futures.Future
    templates: list[WindowedValue]


class OrderedThreads(Generic[In, Out]):
    """Runs `function` over chunks of consecutive elements on a stage's threads; results come back in input order.

    `function` takes a list of up to `chunk_size` elements and returns one result per element, in their order.
    Used from one DoFn instance: `start()` in start_bundle, `submit(...)` in process (queues the element, hands a
    full chunk to the threads and yields the results that are ready, waiting for the oldest chunk only when too
    many are in flight), `finish()` in finish_bundle (hands over the last, partial chunk and waits for all).
    Results come as (result, windowed template): the caller wraps its output with `template.with_value(...)`, so
    each output keeps its own element's timestamp, window and pane even when it is handed on while another
    element is being processed. An exception raised by `function` is raised again, on the bundle's thread, when
    its chunk's turn comes: the bundle fails as it would have without the threads.
    """

    def __init__(
        self, function: Callable[[list[In]], list[Out]], threads: StageThreads, chunk_size: int = CHUNK_SIZE
    ) -> None:
        assert chunk_size >= 1, chunk_size
        self._function = function
        self._chunk_size = chunk_size
        self._max_in_flight = threads.threads * IN_FLIGHT_PER_THREAD
        self._threads = threads  # held: while any instance holds it, the shared threads live
        self._pending: collections.deque[_Pending] = collections.deque()
        self._chunk: list[In] = []
        self._chunk_templates: list[WindowedValue] = []

    def start(self) -> None:
        """Forget work left by a failed bundle: its results are never handed on."""
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()
        self._chunk, self._chunk_templates = [], []

    def submit(self, element: In, windowed: WindowedValue) -> Iterator[tuple[Out, WindowedValue]]:
        """Queue one element, `windowed` being the element as Beam handed it (its chunk goes to the threads once
        full); yield the oldest results that are done, and wait while too many chunks are in flight."""
        self._chunk.append(element)
        self._chunk_templates.append(windowed)
        if len(self._chunk) >= self._chunk_size:
            self._submit_chunk()
        while self._pending and (len(self._pending) > self._max_in_flight or self._pending[0].future.done()):
            yield from self._hand_on(self._pending.popleft())

    def finish(self) -> Iterator[tuple[Out, WindowedValue]]:
        """Hand over the last, partial chunk, wait for every chunk still in flight and yield their results, in order."""
        if self._chunk:
            self._submit_chunk()
        while self._pending:
            yield from self._hand_on(self._pending.popleft())

    def _submit_chunk(self) -> None:
        future = self._threads.executor.submit(self._function, self._chunk)
        self._pending.append(_Pending(future, self._chunk_templates))
        self._chunk, self._chunk_templates = [], []

    @staticmethod
    def _hand_on(pending: _Pending) -> Iterator[tuple[Out, WindowedValue]]:
        results = pending.future.result()
        assert len(results) == len(pending.templates), (len(results), len(pending.templates))
        return zip(results, pending.templates, strict=True)


class OrderedThreadsDoFn(beam.DoFn):
    """A DoFn whose per-element work runs on its stage's threads in the worker process (`threads`, settled there),
    CHUNK_SIZE consecutive elements at a time.

    Subclasses define `work_chunk(elements)` (on a stage thread: one result per element, in order) and may
    override `hand_on(result, template)` (on the bundle's thread, where Beam's per-thread metric containers see
    counter updates), which turns a result into the output: by default the result in its element's window.
    """

    def __init__(self, threads: ImageThreads, name: str) -> None:
        self._threads = threads
        self._thread_name = name
        self._shared_handle = shared.Shared()
        # One tag per stage: every instance of this stage's DoFn in a process shares its threads.
        self._shared_tag = uuid.uuid4().hex
        self._work: OrderedThreads | None = None

    def work_chunk(self, elements: list[Any]) -> list[Any]:
        raise NotImplementedError

    def hand_on(self, result: Any, template: WindowedValue) -> object:
        return template.with_value(result)

    def setup(self) -> None:
        threads = stage_threads(self._shared_handle, self._shared_tag, self._threads.count(), self._thread_name)
        self._work = OrderedThreads(self.work_chunk, threads)

    def start_bundle(self) -> None:
        assert self._work is not None
        self._work.start()

    def process(self, element: Any, windowed: Any = beam.DoFn.WindowedValueParam) -> Iterator[object]:
        # The element's WindowedValue is its results' template. Asking Beam for it, rather than for the
        # timestamp, window and pane one by one, keeps Beam on its cached-arguments path: a WindowParam made
        # it rebuild the call's arguments for every element (bench/README.md, session 17).
        assert self._work is not None
        for result, template in self._work.submit(element, windowed):
            yield self.hand_on(result, template)

    def finish_bundle(self) -> Iterator[object]:
        assert self._work is not None
        for result, template in self._work.finish():
            yield self.hand_on(result, template)

    def teardown(self) -> None:
        self._work = None  # lets go of the stage's shared threads
