"""Device set-up: the forward layout settled per process, cgroup CPU quotas, TensorFlow's threading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transforms.devices import (
    CPU_MICRO_BATCH_SIZE,
    ForwardLayout,
    ImageThreads,
    cgroup_cpu_limit,
    configure_tensorflow,
    forward_layout,
    gpu_driver_present,
    usable_cores,
)


def test_forward_layout_settles_automatic_values() -> None:
    # Negative threads or micro-batch sizes are refused where the user gives them (test_build's
    # batch_bounds tests); the process's cores come from usable_cores, never above the machine's.
    assert CPU_MICRO_BATCH_SIZE == 8
    # CPUs, a process with the whole 2-core machine: a thread per core, micro-batches of 8, one core per op.
    assert forward_layout(0, 0, 32, False, 2, 2) == ForwardLayout(2, 8, 1)
    # One thread asked for: its ops spread over every core (0: TensorFlow's default).
    assert forward_layout(1, 0, 32, False, 2, 2) == ForwardLayout(1, 8, 0)
    # A worker process with 4 of 16 cores: 4 threads of one core; 2 threads get 2 cores each.
    assert forward_layout(0, 0, 32, False, 4, 16) == ForwardLayout(4, 8, 1)
    assert forward_layout(2, 0, 32, False, 4, 16) == ForwardLayout(2, 8, 2)
    # Micro-batches never exceed the batch; an explicit size stands.
    assert forward_layout(0, 0, 4, False, 2, 2) == ForwardLayout(2, 4, 1)
    assert forward_layout(0, 16, 32, False, 2, 2) == ForwardLayout(2, 16, 1)
    # A GPU: one thread, whole batches, TensorFlow's own threading.
    assert forward_layout(0, 0, 32, True, 2, 2) == ForwardLayout(1, 32, 0)


def test_image_threads_are_the_request_or_one_per_core_of_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import transforms.devices as devices

    monkeypatch.setattr(devices, "usable_cores", lambda: 8)
    assert ImageThreads().count() == 8  # automatic, the whole machine
    assert ImageThreads(0, 2).count() == 2  # a worker process given 2 of the 8 cores
    assert ImageThreads(0, 16).count() == 8  # never more than the process can use
    assert ImageThreads(3, 2).count() == 3  # --image_threads stands as given
    assert ImageThreads(0, 1).count() == 2  # a process given one core still gets two per stage
    assert ImageThreads(1, 1).count() == 1  # unless asked for one


def test_cgroup_cpu_limit_reads_quota_over_period() -> None:
    assert cgroup_cpu_limit("max 100000\n") is None
    assert cgroup_cpu_limit("200000 100000\n") == 2
    assert cgroup_cpu_limit("150000 100000") == 1  # 1.5 cores: one thread per whole core
    assert cgroup_cpu_limit("50000 100000") == 1
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_threading_set_too_late_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime is running from here on
    in_force = tf.config.threading.get_intra_op_parallelism_threads()
    with caplog.at_level("WARNING", logger="transforms.devices"):
        configure_tensorflow(intra_op_threads=in_force + 3)
    assert "TensorFlow started before cam-audit could set" in caplog.text
    assert tf.config.threading.get_intra_op_parallelism_threads() == in_force


def test_float32_stays_float32_on_gpus() -> None:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(True)  # TensorFlow's own default
    configure_tensorflow()
    assert not tf.config.experimental.tensor_float_32_execution_enabled()


def test_a_gpu_driver_is_looked_for_without_tensorflow(tmp_path: Path) -> None:
    absent, present = str(tmp_path / "nvidiactl"), tmp_path / "kfd"
    assert not gpu_driver_present((absent,), platform="linux")
    present.write_bytes(b"")
    assert gpu_driver_present((absent, str(present)), platform="linux")
    assert gpu_driver_present((absent,), platform="darwin")  # tensorflow-metal needs no device file
