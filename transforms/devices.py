"""TensorFlow device set-up and the forward-pass layout, settled once per process before a model is loaded."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

_LOGGER = logging.getLogger(__name__)

# Images per forward call on a CPU: small calls keep a few images' activations in the caches
# (bench/README.md has the per-image cost by call size).
CPU_MICRO_BATCH_SIZE = 8


@dataclasses.dataclass(frozen=True)
class ForwardLayout:
    """How a worker process runs forward passes.

    `threads` calls run side by side, each on at most `micro_batch_size` images, each TensorFlow op
    on `intra_op_threads` threads (0: TensorFlow's default, every core). On CPUs the cores are split
    between the calls rather than each call's ops spread over all of them: independent calls keep
    the cores busy without the per-op barriers of one call on every core, which stall whenever
    another thread of the worker (decoding, encoding) takes a core.
    """

    threads: int
    micro_batch_size: int
    intra_op_threads: int


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def cgroup_cpu_limit(cpu_max: str) -> int | None:
    """Whole cores a cgroup v2 `cpu.max` line ("QUOTA PERIOD", or "max PERIOD") allows; None if unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return max(1, int(int(fields[0]) / int(fields[1])))


def affinity_cores() -> int:
    """CPU cores in this process's affinity mask (taskset, cpusets): what TensorFlow's default threading uses."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def usable_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup v2 CPU quota.

    Containers limited with a quota (`docker --cpus`, Kubernetes CPU limits) still see every core of
    the host in their affinity mask; a thread per visible core would oversubscribe the quota.
    """
    try:
        with open(CGROUP_CPU_MAX) as handle:
            limit = cgroup_cpu_limit(handle.read())
    except (OSError, ValueError):
        limit = None
    cores = affinity_cores()
    return min(cores, limit) if limit else cores


def process_cores(share: int) -> int:
    """CPU cores a worker process may use: its `share` of the machine (0: all of it), at most what it can see."""
    usable = usable_cores()
    return min(share, usable) if share else usable


# A per-image stage's automatic threads are never fewer than this, even for a process given one core (a worker
# process per core, locally or on Dataflow): while one thread waits for the GIL or for its next element, the other
# keeps the core busy (bench/README.md, session 8).
MIN_IMAGE_THREADS = 2


@dataclasses.dataclass(frozen=True)
class ImageThreads:
    """Threads a worker process gives each per-image stage (decode; CAM statistics, heatmap and record).

    Settled on the worker, where its cores are known: `requested` (--image_threads), or 0 for one per
    core the process may use (`cores`, its share of the machine; 0: all of it), at least MIN_IMAGE_THREADS.
    """

    requested: int = 0
    cores: int = 0

    def count(self) -> int:
        """The number of threads, on this machine: at least MIN_IMAGE_THREADS unless requested."""
        return self.requested or max(MIN_IMAGE_THREADS, process_cores(self.cores))


def forward_layout(
    threads: int, micro_batch_size: int, batch_size: int, has_gpu: bool, cores: int, machine_cores: int
) -> ForwardLayout:
    """Settle the options' 0 (= automatic) values for a process that may use `cores` of the `machine_cores`
    TensorFlow would spread each op over by default.

    On a GPU: one thread and whole batches (the card wants large calls). On CPUs: one thread per core,
    micro-batches of CPU_MICRO_BATCH_SIZE images, and the cores shared out among the threads.
    """
    assert min(threads, micro_batch_size) >= 0 and batch_size >= 1 and 1 <= cores <= machine_cores
    if has_gpu:
        return ForwardLayout(threads or 1, min(micro_batch_size or batch_size, batch_size), 0)
    threads = threads or cores
    intra_op_threads = max(1, cores // threads)
    return ForwardLayout(
        threads,
        min(micro_batch_size or CPU_MICRO_BATCH_SIZE, batch_size),
        0 if intra_op_threads >= machine_cores else intra_op_threads,
    )


# Device nodes a GPU's driver makes, which TensorFlow needs to use the GPU: NVIDIA's (Linux; WSL2's /dev/dxg;
# Jetson's nvhost) and AMD ROCm's. macOS is taken whole: tensorflow-metal shows its GPU without such a file.
GPU_DEVICE_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/nvhost-ctrl", "/dev/kfd")


def gpu_driver_present(paths: tuple[str, ...] = GPU_DEVICE_PATHS, platform: str = sys.platform) -> bool:
    """Whether TensorFlow might see a GPU here, answered without importing it.

    A worker that runs a staged LiteRT model asks this first: with none of these present, TensorFlow has no GPU to
    list and would pick LiteRT anyway, so the worker need not import it. With one present the worker asks
    TensorFlow itself (`gpu_names`): a device node TensorFlow cannot use (CUDA_VISIBLE_DEVICES empty, no CUDA
    libraries) costs that import, never a wrong backend.
    """
    return platform == "darwin" or any(os.path.exists(path) for path in paths)


def gpu_names() -> list[str]:
    """The GPUs TensorFlow sees (listing them does not initialise its runtime)."""
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


def configure_tensorflow(intra_op_threads: int = 0) -> list[str]:
    """Enable GPU memory growth, so that no worker grabs a whole card; keep float32 exact on GPUs (no TensorFloat-32);
    set the intra-op threads (0: default).

    Memory growth and threads only take before TensorFlow's runtime starts in this process (cam-audit's launcher
    calls this first thing; workers call it before loading the model). If the runtime started
    earlier, the settings in force stand and a warning says so: results are the same, CPU forward
    passes only slower. Mixed precision is not set here: Keras' global policy does not change a
    loaded model's layers (see `mixed_precision.mixed_precision_clone`, which does, for one model and no other).

    Returns:
        The names of the visible GPUs (empty on a CPU-only machine).
    """
    import tensorflow as tf

    # TensorFloat-32 is TensorFlow's default for float32 convolutions and matmuls on Ampere and newer GPUs: it
    # rounds their inputs to a 10-bit mantissa, which moves the CAMs measurably off a CPU's (bench/README.md,
    # session 7, measured on an H200 through Keras on JAX). An audit's records must not depend on the card, and
    # by that machine's figures the per-image CPU work, not the forward pass, bounds a GPU worker, so float32
    # means float32; --mixed_precision is the opt-in for speed. A no-op on CPUs.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Raised once the runtime is initialised (a second model in the same process): the
            # setting from the first call stands.
            _LOGGER.debug("memory growth already fixed for %s", gpu.name)
    # 0 is set too when something else is in force (an earlier run in this process), and checked.
    if tf.config.threading.get_intra_op_parallelism_threads() != intra_op_threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        except RuntimeError:
            _LOGGER.warning(
                "TensorFlow started before cam-audit could set %d intra-op thread(s) (%d in force, 0 meaning "
                "every core): forward passes are correct but slower on CPUs",
                intra_op_threads,
                tf.config.threading.get_intra_op_parallelism_threads(),
            )
    return [gpu.name for gpu in gpus]
