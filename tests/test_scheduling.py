"""cam-audit's compute threads run under SCHED_BATCH where Linux offers it; other threads keep their policy."""

from __future__ import annotations

import concurrent.futures
import os
import threading

import numpy as np
import pytest
from apache_beam.utils import shared

from transforms.devices import ForwardLayout
from transforms.inference import LoadedCamModel
from transforms.ordered_threads import stage_threads
from transforms.scheduling import run_as_batch_thread

needs_sched_batch = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH") or not hasattr(os, "sched_getscheduler"), reason="no SCHED_BATCH on this platform"
)


def _policy_in_new_thread(function) -> tuple[int, bool]:
    """(the policy a fresh thread ends with after `function`, what it returned)."""
    seen: list = []

    def body() -> None:
        returned = function()
        seen.append((os.sched_getscheduler(0), returned))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return seen[0]


@needs_sched_batch
def test_run_as_batch_thread_changes_the_calling_thread_only() -> None:
    before = os.sched_getscheduler(0)
    policy, returned = _policy_in_new_thread(run_as_batch_thread)
    assert (policy, returned) == (os.SCHED_BATCH, True)
    assert os.sched_getscheduler(0) == before  # the thread that asked for nothing keeps its policy


@needs_sched_batch
def test_a_refused_policy_leaves_the_thread_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise PermissionError("not allowed here")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    policy, returned = _policy_in_new_thread(run_as_batch_thread)
    assert returned is False and policy == os.sched_getscheduler(0)  # a new thread inherits its creator's


@needs_sched_batch
def test_stage_and_forward_threads_run_as_batch_threads() -> None:
    threads = stage_threads(shared.Shared(), "scheduling-test", 2, "cam_test")
    policies = {threads.executor.submit(os.sched_getscheduler, 0).result() for _ in range(4)}
    assert policies == {os.SCHED_BATCH}

    def predict(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        policy = os.sched_getscheduler(0)
        return np.full((len(batch), 2), policy), np.zeros(len(batch), int), np.zeros((len(batch), 1, 1))

    model = LoadedCamModel(predict, 2, (0.0, 0.0), ForwardLayout(1, 2, 0), (4, 4))
    (probabilities, _, _), _ = model.submit(np.zeros((3, 4, 4, 3), np.float32)).result()
    assert set(probabilities.ravel().tolist()) == {os.SCHED_BATCH}
    # A plain pool (Beam's own threads, say) is left alone.
    with concurrent.futures.ThreadPoolExecutor(1) as plain:
        assert plain.submit(os.sched_getscheduler, 0).result() == os.sched_getscheduler(0) != os.SCHED_BATCH
