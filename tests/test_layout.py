"""The README's Layout table is the map of the tree: every path it names exists, every module is in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layout_paths() -> list[str]:
    """Paths named in the first cell of the README's Layout table; bare names continue the previous folder."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout") :].split("\n## ")[0]
    paths: list[str] = []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            path = name if "/" in name else folder + name
            folder = path.rsplit("/", 1)[0] + "/" if "/" in path else folder
            paths.append(path)
    return paths


def test_every_path_in_the_layout_table_exists() -> None:
    missing = [path for path in layout_paths() if not (ROOT / path).exists()]
    assert layout_paths() and missing == []


def test_every_module_is_in_the_layout_table() -> None:
    named = layout_paths()
    modules = [
        str(path.relative_to(ROOT))
        for folder in ("pipeline", "transforms", "reference")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    ]
    unnamed = [m for m in modules if m not in named and not any(m.startswith(p) for p in named if p.endswith("/"))]
    assert unnamed == []


def test_the_worker_image_copies_only_what_workers_run() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    # COPY --from=<stage> copies from another image (Beam's SDK), not from this tree.
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ") and "--from=" not in line]
    sources = {source for sources in copies for source in sources}
    assert sources <= {"setup.py", "pipeline", "transforms"}
    assert {"pipeline", "transforms"} <= sources
