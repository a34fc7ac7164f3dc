"""Fail fast on a misspelt option: Beam drops arguments it cannot parse with a warning nobody sees."""

from __future__ import annotations

import difflib
import importlib

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

# Runners whose module Beam's StandardOptions.ALL_KNOWN_RUNNERS does not list (Beam 2.77), by class path.
_MORE_RUNNERS = ("apache_beam.runners.dask.dask_runner.DaskRunner",)


def import_runner_options(runner: str | None) -> None:
    """Import the chosen runner's module, so its own options class (DaskRunner's DaskOptions...) registers.

    Names resolve as Beam's create_runner resolves them; a module that cannot be imported is left to
    Beam, which reports it when it creates the runner.
    """
    if not runner:
        return
    known = {path.rsplit(".", 1)[-1].lower(): path for path in (*StandardOptions.ALL_KNOWN_RUNNERS, *_MORE_RUNNERS)}
    path = known.get(runner.lower(), known.get(runner.lower() + "runner", runner))
    if "." in path:
        try:
            importlib.import_module(path.rsplit(".", 1)[0])
        except ImportError:
            return


def option_parser() -> _BeamArgumentParser:
    """One parser holding the flags of every registered PipelineOptions class, as Beam builds it."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes: dict[str, type[PipelineOptions]] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own way to collect every option
    return parser


def unknown_options(argv: list[str]) -> list[str]:
    """The flags in argv that no registered options class (cam-audit's, Beam's, the runner's) defines."""
    import_runner_options(PipelineOptions(argv).view_as(StandardOptions).runner)
    _, unknown = option_parser().parse_known_args(argv)
    return [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]


def check_known_options(argv: list[str]) -> None:
    """Raise ValueError naming each unknown flag and the nearest valid one."""
    unknown = unknown_options(argv)
    if not unknown:
        return
    valid = [flag for action in option_parser()._actions for flag in action.option_strings]  # noqa: SLF001
    reasons = []
    for flag in unknown:
        nearest = difflib.get_close_matches(flag, valid, n=1, cutoff=0.6)
        reasons.append(f"{flag} (did you mean {nearest[0]}?)" if nearest else flag)
    raise ValueError(f"unknown option {', '.join(reasons)}; see --help")
