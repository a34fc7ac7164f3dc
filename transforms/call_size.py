"""LiteRT's forward call size, chosen on the worker: the micro-batch that ran fastest on its own CPU, timed at load.

XNNPACK's fastest call size depends on the model and the CPU's caches, and differs from TensorFlow's
(bench/README.md, session 9), while the outputs are the same at every size (tests/test_backends_litert.py,
tests/test_call_size.py): so the worker times the candidates on probe inputs and keeps the fastest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

# Images per forward call worth timing: larger calls ran slower per image on every model measured.
CALL_SIZES = (1, 2, 4, 8)
# Rounds over the sizes, interleaved: a drift of the machine's speed touches every size alike.
TIMING_ROUNDS = 3


def candidate_call_sizes(batch_size: int) -> tuple[int, ...]:
    """The call sizes worth timing for batches of `batch_size` images: CALL_SIZES up to the batch size."""
    assert batch_size >= 1, batch_size
    return tuple(size for size in CALL_SIZES if size <= batch_size)


def fastest_call_size(seconds_per_image: Mapping[int, Sequence[float]]) -> int:
    """The size whose best round took the least time per image; on a tie, the smaller size."""
    assert seconds_per_image and all(seconds_per_image.values()), seconds_per_image
    return min(seconds_per_image, key=lambda size: (min(seconds_per_image[size]), size))


def time_call_sizes(
    seconds_per_image: Callable[[int], float], sizes: Sequence[int], rounds: int = TIMING_ROUNDS
) -> dict[int, list[float]]:
    """Each size's seconds per image (`seconds_per_image(size)`, one pass) in each of `rounds` rounds."""
    timings: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            timings[size].append(seconds_per_image(size))
    return timings


def describe_timings(seconds_per_image: Mapping[int, Sequence[float]]) -> str:
    """'1: 7.02 ms, 2: 7.61 ms, ...': each size's best round, per image."""
    return ", ".join(f"{size}: {min(rounds) * 1e3:.2f} ms" for size, rounds in seconds_per_image.items())
