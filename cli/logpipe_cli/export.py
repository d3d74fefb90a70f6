"""`logpipe export plan|run`: inspect or advance the S3 export (embedded AWS, AWS_ENDPOINT_URL, or --aws)."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

import orjson

from logpipe.export import GroupPlan, build_exporter, iso
from logpipe.settings import ExportSettings, SettingsError

if TYPE_CHECKING:
    from logpipe.export import Exporter


def _exporter(bucket: str | None, emit_metrics: bool) -> Exporter:
    settings = ExportSettings.from_env()
    if bucket:
        settings = replace(settings, bucket=bucket)
    # EMF lines would drown the CLI's own output; they matter only in Lambda, where stdout feeds CloudWatch.
    return build_exporter(settings, emit=_stderr_line if emit_metrics else _drop)


def _drop(_line: str) -> None:
    """Discard an EMF line."""


def _stderr_line(line: str) -> None:
    """Write an EMF line to stderr, apart from the command's output."""
    sys.stderr.write(line + "\n")


def render_plan(plans: list[GroupPlan], out: TextIO) -> None:
    """A readable table: one block per group."""
    if not plans:
        out.write("no log groups selected (tag ExportEnabled=true or set LOGPIPE_EXPORT_LOG_GROUPS)\n")
        return
    for plan in plans:
        out.write(f"{plan.log_group}\n")
        out.write(f"  checkpoint:  {iso(plan.checkpoint_ms) or 'none (starts at the oldest retained event)'}\n")
        if plan.pending:
            first, last = plan.pending[0], plan.pending[-1]
            out.write(f"  pending:     {len(plan.pending)} day(s), {first.day} .. {last.day}\n")
        else:
            out.write("  pending:     none\n")
        task = plan.task
        out.write(f"  task:        {'none' if task is None else f'{task.task_id} {task.status}'}\n")
        if plan.failures:
            out.write(f"  failures:    {plan.failures} in a row\n")


def main_plan(*, bucket: str | None = None, as_json: bool = False, out: TextIO | None = None) -> int:
    """Show each group's checkpoint, pending windows and running task; change nothing."""
    stream = out or sys.stdout
    try:
        plans = _exporter(bucket, emit_metrics=False).plan()
    except SettingsError as error:
        sys.stderr.write(f"logpipe export plan: {error}\n")
        return 2
    if as_json:
        stream.write(orjson.dumps([plan.to_dict() for plan in plans], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render_plan(plans, stream)
    return 0


def main_run(*, bucket: str | None = None, emit_metrics: bool = False, out: TextIO | None = None) -> int:
    """Advance the export by one step and print the run summary as JSON."""
    stream = out or sys.stdout
    try:
        summary = _exporter(bucket, emit_metrics=emit_metrics).run()
    except SettingsError as error:
        sys.stderr.write(f"logpipe export run: {error}\n")
        return 2
    stream.write(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
