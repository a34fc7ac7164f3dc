"""The README's command lines name only flags this Beam version and cam-audit define."""

from __future__ import annotations

import re
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

import pipeline.options  # noqa: F401 - registers CamAuditOptions as a PipelineOptions subclass

ROOT = Path(__file__).resolve().parent.parent


def pipeline_run_commands(markdown: str) -> list[str]:
    """Every `pipeline.run` command in the fenced code blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if "pipeline.run" in command:
                commands.append(command)
    return commands


def named_flags(commands: list[str]) -> set[str]:
    """The --flags the commands name."""
    return {flag for command in commands for flag in re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", command)}


def known_flags() -> set[str]:
    """Every --flag of every registered PipelineOptions subclass (Beam's, its runners', CamAuditOptions)."""
    subclasses, pending = set(), [PipelineOptions]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass not in subclasses:
                subclasses.add(subclass)
                pending.append(subclass)
    parser = _BeamArgumentParser(allow_abbrev=False, conflict_handler="resolve")
    for subclass in subclasses:
        subclass._add_argparse_args(parser)
    return {flag for flag in parser._option_string_actions if flag.startswith("--")}


def test_every_flag_in_the_readme_commands_exists() -> None:
    commands = pipeline_run_commands((ROOT / "README.md").read_text())
    named = named_flags(commands)
    # The recipes this test stands behind must be among the commands it read.
    assert {"--runner", "--flink_master", "--dataflow_service_options", "--sdk_container_image"} <= named
    assert {"--flink_job_server_jar", "--environment_config", "--job_endpoint", "--setup_file"} <= named
    assert sorted(named - known_flags()) == []


def test_an_unknown_flag_would_be_caught() -> None:
    commands = pipeline_run_commands("```bash\npython -m pipeline.run \\\n  --flink_mastr host:8081\n```\n")
    assert named_flags(commands) - known_flags() == {"--flink_mastr"}
