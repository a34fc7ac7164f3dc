"""`make demo`: synthetic MURA-shaped archive -> small trained CAM model -> the audit -> a summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.localize import localise_run
from pipeline.report_data import verdict
from pipeline.run import run
from pipeline.summary import AuditSummary
from reference.synth import generate_archive
from transforms.metrics import format_metric

# A configuration that trains in a few minutes on 2 CPU cores: MobileNetV2 alpha 0.35 at 192 px,
# feature maps taken at output stride 8 (24x24 CAMs instead of 6x6). Findings are ~15% of a side,
# ~3.5 cells here: the CAM peaks of the models we trained sat up to a cell off the finding's
# centre, which a 128 px input (2.4 cells a finding) turned into misses half the time.
DEMO_PATIENTS = 300
DEMO_SEED = 0
DEMO_TRAINING = {"image_size": 192, "alpha": 0.35, "feature_stride": 8, "epochs": 12, "batch_size": 32}


@dataclasses.dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps each piece, so that a re-run re-uses what exists."""

    workdir: Path

    @property
    def archive(self) -> Path:
        return self.workdir / "archive"

    @property
    def mura(self) -> Path:
        return self.archive / "MURA-v1.1"

    @property
    def model(self) -> Path:
        return self.workdir / "model" / "cam_mobilenetv2_a035_192_s8.keras"

    @property
    def audit(self) -> Path:
        return self.workdir / "audit"


def ensure_archive(paths: DemoPaths, shortcut: float = 0.0) -> None:
    """Generate the synthetic archive (with a shortcut token at rate `shortcut`) unless a complete one is there."""
    if (paths.mura / "valid_ground_truth.csv").exists():
        print(f"[demo] re-using archive {paths.mura}")
        return
    kind = f"with a shortcut token in {shortcut:.0%} of abnormal images" if shortcut else "clean"
    print(f"[demo] generating a MURA-shaped archive ({DEMO_PATIENTS} patients, {kind}) in {paths.archive}")
    print(generate_archive(paths.archive, patients=DEMO_PATIENTS, seed=DEMO_SEED, shortcut=shortcut).describe())


def ensure_model(paths: DemoPaths) -> None:
    """Train the demo model unless it exists (with its sidecar)."""
    if paths.model.exists() and paths.model.with_suffix(".json").exists():
        print(f"[demo] re-using model {paths.model}")
        return
    config = " ".join(f"{k}={v}" for k, v in DEMO_TRAINING.items())
    print(f"[demo] training the reference CAM model ({config}) -> {paths.model}")
    args = [
        "--manifest", str(paths.mura / "train_image_paths.csv"),
        "--labels", str(paths.mura / "train_labeled_studies.csv"),
        "--valid_manifest", str(paths.mura / "valid_image_paths.csv"),
        "--valid_labels", str(paths.mura / "valid_labeled_studies.csv"),
        "--out", str(paths.model),
        "--seed", str(DEMO_SEED),
    ]  # fmt: skip
    for key, value in DEMO_TRAINING.items():
        args += [f"--{key}", str(value)]
    # A process of its own: training starts TensorFlow with its default threading, and the audit
    # below sets its own (one op thread per forward thread), which only takes in a fresh runtime.
    subprocess.run([sys.executable, "-m", "reference.train", *args], check=True)


def audit_valid_split(paths: DemoPaths) -> AuditSummary:
    """Audit the archive's valid split with the demo model into paths.audit (report included)."""
    # The pointing game explains the ground-truth class (Zhang et al.): the demo audits where the
    # model sees abnormality (class 1) in every image, positives and negatives alike.
    print(f"[demo] auditing the valid split with {paths.model.name}, explaining class 1 (abnormal)")
    return run(
        [
            "--manifest", str(paths.mura / "valid_image_paths.csv"),
            "--labels", str(paths.mura / "valid_labeled_studies.csv"),
            "--model", str(paths.model),
            "--output", str(paths.audit),
            "--overwrite",
            "--cam_class", "1",
        ]
    )  # fmt: skip


def report_verdict(paths: DemoPaths) -> str:
    """The report's one-line verdict on the model's flags, from its metrics.json."""
    metrics = json.loads((paths.audit / "report" / "metrics.json").read_text())
    return verdict(metrics["flags"]["shortcut"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference.demo", description=__doc__)
    parser.add_argument("--workdir", default="demo_out", help="where the archive, model and audit go")
    args = parser.parse_args(argv)
    paths = DemoPaths(Path(args.workdir).resolve())
    start = time.perf_counter()
    ensure_archive(paths)
    ensure_model(paths)
    summary = audit_valid_split(paths)
    score = localise_run(str(paths.audit), str(paths.mura / "valid_ground_truth.csv"))
    (paths.audit / "localization.json").write_text(json.dumps(dataclasses.asdict(score), indent=2))
    accuracy = format_metric(summary.image_accuracy)
    print()
    print("=" * 72)
    print(f"cam-audit demo: {summary.rows} images, {summary.errors} errors, image accuracy {accuracy}")
    print(f"  {score.render()}")
    print(f"  heatmaps: {paths.audit / 'heatmaps'}")
    print(f"  records:  {paths.audit / 'records'}  (Parquet, schema in README.md)")
    print(f"  run info: {paths.audit / 'run_info.json'}, {paths.audit / 'localization.json'}")
    print(f"  report:   {paths.audit / 'report' / 'index.html'}")
    print(f"  flags:    {report_verdict(paths)}")
    print(f"  model:    {paths.model} (+ .json sidecar)")
    print(f"  total {time.perf_counter() - start:.0f} s")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
