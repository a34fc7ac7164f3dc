"""How many worker processes one GPU wants: N processes side by side, each doing what a cam-audit SDK process does.

Each process holds the one-pass CAM model on the GPU (Keras on JAX, full float32: the GPU machine lent for issue
14 has no TensorFlow) and loops over batches: decode + resize on a thread pool (`load_model_input`), one forward
pass, then per image the CAM at the original size, the JET overlay and the JPEG encode on the same pool
(`explain_cam`, `render_overlay`, `encode_image`). No Beam, no records, no files written: the per-image work and
the forward pass competing for one process's GIL and the machine's cores, as in a worker.
`python -m bench.gpu_workers --model M --images DIR --processes 1,2,4 --out F.json`
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _worker(model_path: str, files: Sequence[str], batch_size: int, threads: int, seconds: float,
            start: Any) -> tuple[int, float]:
    """One emulated worker process: (images done, seconds) over `seconds` after a warm-up, started with the others."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax

    from bench.gpu_probe import jitted_forward, load_model
    from bench.nonmodel import heatmap_size
    from transforms.cam_head import model_input_size
    from transforms.imaging import load_model_input
    from transforms.methods.cam import build_cam_model

    jax.config.update("jax_default_matmul_precision", "highest")  # float32, as cam-audit runs (no TF32)
    model, _ = load_model(model_path)
    size = model_input_size(model)
    forward = jitted_forward(build_cam_model(model))
    datas = [Path(path).read_bytes() for path in files]
    pool = concurrent.futures.ThreadPoolExecutor(threads)

    def one_batch(index: int) -> int:
        chunk = [datas[(index + offset) % len(datas)] for offset in range(batch_size)]
        decoded = list(pool.map(lambda data: load_model_input(data, *size), chunk))
        probabilities, cams = (np.asarray(output) for output in forward(np.stack([d[1] for d in decoded])))
        classes = probabilities.argmax(axis=1)
        list(pool.map(lambda i: heatmap_size(decoded[i][0], cams[i, :, :, classes[i]]), range(len(chunk))))
        return len(chunk)

    one_batch(0)  # compile and warm up, untimed
    start.wait()
    images, began, index = 0, time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        images += one_batch(index)
        index += batch_size
    return images, time.perf_counter() - began


def time_workers(model_path: str, files: Sequence[str], processes: int, batch_size: int, threads: int,
                 seconds: float) -> dict[str, Any]:
    """`processes` emulated workers at once: their images over the slowest one's seconds."""
    # Each process takes GPU memory as it needs it instead of JAX's default 75 % of the card.
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(processes) as pool:
        # Every process warms up (imports, model load, compile) before the clock starts for all of them at once.
        start = manager.Barrier(processes + 1)
        pending = pool.starmap_async(_worker, [(model_path, files[index::processes] or files, batch_size, threads,
                                                seconds, start) for index in range(processes)])
        start.wait()
        results = pending.get()
    images = sum(count for count, _ in results)
    slowest = max(elapsed for _, elapsed in results)
    return {"processes": processes, "threads": threads, "batch_size": batch_size, "images": images,
            "seconds": slowest, "images_per_second": images / slowest}


def main(argv: Sequence[str] | None = None) -> None:
    """Time 1, 2, 4 ... emulated workers sharing the GPU; print a line per count and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_workers", description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--processes", default="1,2,4,8,16")
    parser.add_argument("--threads", type=int, default=2, help="per-image threads in each process")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max_images", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from bench.gpu_probe import image_files

    files = [str(path) for path in image_files(args.images)[: args.max_images]]
    results = []
    for processes in (int(part) for part in args.processes.split(",")):
        figures = time_workers(args.model, files, processes, args.batch_size, args.threads, args.seconds)
        results.append(figures)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": results},
                                       indent=2))
        print(f"gpu_workers: {processes:2d} process(es) x {args.threads} thread(s), batch {args.batch_size}: "
              f"{figures['images_per_second']:8.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
