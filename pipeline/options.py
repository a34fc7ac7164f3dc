"""CamAuditOptions: every cam-audit flag, as one Beam PipelineOptions subclass."""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.backends.choice import BACKENDS
from transforms.imaging import DEFAULT_MAX_PIXELS, SIXTEEN_BIT_MODES
from transforms.methods import METHODS
from transforms.methods.base import PREPROCESS_MODES
from transforms.mura import MANIFEST_FORMATS
from transforms.overlay import DEFAULT_HEATMAP_MAX_SIDE, HEATMAP_FORMATS
from transforms.records import ROWS_PER_BUNDLE_FILE


def help_text(prog: str = "python -m pipeline.run") -> str:
    """--help: every cam-audit option, and where Beam's own options are documented."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Class Activation Map audit of a Keras CAM classifier over an image manifest.",
        epilog="Any Apache Beam option passes through (--runner, --direct_num_workers, "
        "--direct_running_mode, Dataflow's --project/--region/--temp_location/--setup_file, Flink's "
        "--flink_master, ...). Without --runner the job runs on Beam's local FnApiRunner: one in-process worker, "
        "or one worker process per core for 5,000+ images run on LiteRT (--direct_num_workers or "
        "--direct_running_mode choose for themselves). "
        "See `python -m apache_beam.examples.wordcount --help` for Beam's full list.",
    )
    CamAuditOptions._add_argparse_args(parser)
    return parser.format_help()


def route_labels_flag(argv: list[str]) -> list[str]:
    """Rewrite `--labels PATH` to `--labels_file PATH`; `--labels key=value` stays Dataflow's."""
    routed: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--labels" and index + 1 < len(argv) and "=" not in argv[index + 1]:
            routed += ["--labels_file", argv[index + 1]]
            index += 2
            continue
        if arg.startswith("--labels=") and "=" not in arg[len("--labels="):]:
            routed.append("--labels_file=" + arg[len("--labels="):])
        else:
            routed.append(arg)
        index += 1
    return routed


class CamAuditOptions(PipelineOptions):
    """cam-audit's own options; Beam's (--runner, --direct_num_workers, Dataflow's...) pass through."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("cam-audit")
        group.add_argument(
            "--manifest",
            help="Image manifest: MURA *_image_paths.csv (one relative path per line) or a CSV with "
            "a header naming image_path (and optionally label, study_id, patient_id, body_part, split). "
            "Any Beam FileSystems path (local, gs://, s3://).",
        )
        group.add_argument("--model", help="Keras CAM classifier (.keras or legacy .h5), any FileSystems path.")
        group.add_argument("--output", help="Output folder: heatmaps/, records/ and run_info.json go here.")
        group.add_argument(
            "--data_root",
            default=None,
            help="Folder relative image paths resolve against. Default: the manifest folder's parent "
            "for MURA manifests (their paths start with MURA-v1.1/), the manifest's folder for CSV.",
        )
        group.add_argument(
            "--labels_file",
            default=None,
            help="Optional MURA *_labeled_studies.csv (study_dir/,label); overrides labels from paths. "
            "`--labels PATH` is accepted too: Beam's own --labels (Dataflow job labels, key=value) "
            "owns that flag, so a value without '=' is taken as this file.",
        )
        group.add_argument(
            "--manifest_format",
            default="auto",
            choices=MANIFEST_FORMATS,
            help="auto: a first line naming image_path means CSV with header, otherwise MURA.",
        )
        group.add_argument(
            "--class_names",
            default="normal,abnormal",
            help="Comma-separated class names, in the model's output order.",
        )
        group.add_argument(
            "--threshold",
            type=float,
            default=0.2,
            help="Normalised CAM level (0 < t <= 1) for coverage and for colouring the heatmap.",
        )
        group.add_argument("--batch_size", type=int, default=32, help="Images per forward pass (max batch).")
        group.add_argument(
            "--min_batch_size",
            type=int,
            default=None,
            help="Smallest batch BatchElements may form. Default: --batch_size (fixed-size batches).",
        )
        group.add_argument(
            "--forward_threads",
            type=int,
            default=0,
            help="Threads running forward passes in each worker process. 0 (default): one per CPU core "
            "the process may use, or 1 when TensorFlow sees a GPU. The threads share every batch's "
            "micro-batches, and the cores: each TensorFlow op runs on cores / threads of them "
            "(1 by default). When several SDK "
            "processes share a machine (--direct_running_mode multi_processing, Dataflow's process per "
            "vCPU) each is given its share of the cores.",
        )
        group.add_argument(
            "--micro_batch_size",
            type=int,
            default=0,
            help="Images per forward call (a batch is cut into micro-batches). 0 (default): with "
            "TensorFlow, 8 on CPUs (small calls keep activations in the caches) and the whole --batch_size "
            "on a GPU; with LiteRT, whichever of 1, 2, 4 and 8 each worker times fastest on its own CPU "
            "when it loads the model (a short timing; the outputs are the same at every size).",
        )
        group.add_argument(
            "--image_threads",
            type=int,
            default=0,
            help="Threads each worker process gives each per-image stage: decoding, and CAM statistics + "
            "heatmap + record. 0 (default): one per CPU core the process may use, at least 2. Their work (OpenCV, "
            "numpy, file I/O) runs outside Python's GIL, so it spreads over the cores while Beam's "
            "bundle thread moves the images along.",
        )
        group.add_argument(
            "--preprocess",
            default="none",
            choices=PREPROCESS_MODES,
            help="Input scaling applied in-graph when the model does not embed it. none: the model "
            "receives RGB float32 in 0..255. mobilenet_v2: x / 127.5 - 1.",
        )
        group.add_argument(
            "--cam_class",
            type=int,
            default=None,
            help="Explain this class index for every image. Default: each image's predicted class.",
        )
        group.add_argument(
            "--cam_alignment",
            default="receptive_field",
            choices=("receptive_field", "naive"),
            help="receptive_field (default): place CAM cells at their receptive-field centres, computed "
            "from the model's layers (TensorFlow's asymmetric 'same' padding moves them up to half a cell "
            "down-right). naive: plain half-pixel resize, as the classic recipe.",
        )
        group.add_argument(
            "--heatmap_format",
            default="jpg",
            choices=HEATMAP_FORMATS,
            help="Heatmap encoding. jpg (default) is far cheaper to encode than png.",
        )
        group.add_argument(
            "--no_heatmaps",
            action="store_true",
            default=False,
            help="Records only: compute CAM statistics but write no heatmap images.",
        )
        group.add_argument(
            "--run_id",
            default=None,
            help="Identifier stamped on every record. Default: UTC time plus a random suffix.",
        )
        group.add_argument(
            "--mixed_precision",
            action="store_true",
            default=False,
            help="Run the forward pass in mixed float16 (useful on GPUs with tensor cores).",
        )
        group.add_argument(
            "--overwrite",
            action="store_true",
            default=False,
            help="Replace the Parquet records an earlier run left in --output (refused otherwise).",
        )
        group.add_argument(
            "--progress_seconds",
            type=float,
            default=30.0,
            help="Print progress (images done of the manifest's total, rate, ETA, errors so far) every this "
            "many seconds while the job runs; 0 turns it off. Workers tally finished records in "
            "OUTPUT/_progress-<run id>/, which the launcher reads and removes at the end.",
        )
        group.add_argument(
            "--record_shards",
            type=int,
            default=0,
            help="Number of Parquet files for the ok rows (records/part-*). Default 0: one per 20,000 rows; "
            "error rows (records/errors-*) always one per 20,000 rows.",
        )
        group.add_argument(
            "--backend",
            default="auto",
            choices=BACKENDS,
            help="What runs the forward passes. auto (default): LiteRT (XNNPACK, float32) on CPU workers when "
            "the optional ai-edge-litert package is installed (pip install 'cam-audit[litert]'; about twice "
            "TensorFlow's images/s on CPUs, see bench/README.md), TensorFlow on GPUs, with --mixed_precision "
            "or without the package. litert: always LiteRT. The launcher converts the model once and checks it "
            "against TensorFlow; a model LiteRT cannot convert or match runs on TensorFlow, with one warning.",
        )
        group.add_argument(
            "--litert_cache_dir",
            default=None,
            help="Folder on the launching machine where converted LiteRT models are kept, so a model is converted "
            "once (seconds to a minute), not at every run; an entry is still checked against TensorFlow at "
            "every run. Only a folder of the user's own that others cannot write is used; entries unused for "
            "30 days are removed. Default: $XDG_CACHE_HOME/cam-audit/litert (~/.cache/cam-audit/litert; none "
            "without an absolute path for either). An empty string converts at every run and keeps nothing.",
        )
        group.add_argument(
            "--max_pixels",
            type=int,
            default=DEFAULT_MAX_PIXELS,
            help=f"Pixel budget per image (default {DEFAULT_MAX_PIXELS:,}, 50 MP: any real radiograph fits). "
            "The size is read from the PNG/JPEG header; a larger image becomes an error row naming its size "
            "and the limit, and is never decoded, so a worker's memory stays bounded.",
        )
        group.add_argument(
            "--heatmap_max_side",
            type=int,
            default=DEFAULT_HEATMAP_MAX_SIDE,
            help=f"Longest side of a heatmap in pixels (default {DEFAULT_HEATMAP_MAX_SIDE}: every real "
            "radiograph keeps its full size). Larger images get a proportionally shrunk heatmap; records "
            "keep original-pixel coordinates.",
        )
        group.add_argument(
            "--sixteen_bit",
            default="minmax",
            choices=SIXTEEN_BIT_MODES,
            help="16-bit grey to 8 bits. minmax (default): each image's own range stretched to 0..255 "
            "(detectors rarely fill 16 bits). scale: value * 255 / 65535, the same for every image, for "
            "fixed-window data. Training (reference.train --sixteen_bit) must use the same.",
        )
        group.add_argument(
            "--resume",
            action="store_true",
            default=False,
            help="Continue an interrupted run in the same --output: images that already have a record are "
            "not recomputed, and records/ ends with one row per manifest line. Not with --overwrite.",
        )
        group.add_argument(
            "--records_per_commit",
            type=int,
            default=ROWS_PER_BUNDLE_FILE,
            help=f"Records a worker holds before committing them to records/_bundles/ (default "
            f"{ROWS_PER_BUNDLE_FILE}); every bundle also commits at its end. An interrupted run loses "
            "about this many audited images per worker (and those in flight): --resume redoes them.",
        )
        audit = parser.add_argument_group("cam-audit: studies and flags")
        audit.add_argument(
            "--study_threshold",
            type=float,
            default=0.5,
            help="A study is predicted abnormal when its images' mean abnormality probability exceeds "
            "this (MURA's rule: 0.5).",
        )
        audit.add_argument("--flag_border_margin", type=float, default=0.05,
                           help="flag_border_peak: CAM peak within this fraction of the shorter side of an edge.")
        audit.add_argument("--flag_window", type=float, default=0.08,
                           help="Half-side of the window read around the CAM peak, fraction of the shorter side.")
        audit.add_argument("--flag_background_level", type=float, default=0.1,
                           help="flag_off_body_peak: window median below p1 + level * (p99 - p1) of the image.")
        audit.add_argument("--flag_saturation_level", type=int, default=254,
                           help="flag_burned_in_peak: grey level (0..255) from which a pixel is saturated; "
                           "the peak window must hold >= 3%% such pixels on thin strokes (text-like).")
        audit.add_argument("--flag_confidence", type=float, default=0.9,
                           help="Top probability from which a prediction is confident (flag_diffuse, "
                           "flag_label_disagreement).")
        audit.add_argument("--flag_diffuse_coverage", type=float, default=0.5,
                           help="flag_diffuse: confident prediction with at least this coverage.")
        # Explanation methods (issue 12).
        group.add_argument(
            "--method",
            default=None,
            choices=tuple(METHODS),
            help="Explanation method. cam: classic CAM (needs conv maps -> GlobalAveragePooling2D -> Dense); "
            "hirescam, gradcam, gradcampp, layercam: gradient methods for any conv classifier, one forward "
            "and one backward pass per batch. Default: cam when the model has the CAM head (and no --target_layer "
            "is given), else hirescam.",
        )
        group.add_argument(
            "--target_layer",
            default=None,
            help="Layer whose maps the gradient methods explain, by name (also inside a nested backbone). "
            "Default: the last 4-D feature tensor feeding the head, printed at start-up.",
        )
        group.add_argument(
            "--faithfulness",
            action="store_true",
            default=False,
            help="Also measure each map's faithfulness: deletion/insertion AUC and the drop/increase in "
            "confidence on the explanation map (README), in extra forward passes on the device.",
        )
