"""The `logpipe` command: local, Docker-free runs of the pipeline's functions."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from logpipe_cli.errors import AwsWorld, CliError, check_endpoint_url, describe
from logpipe_cli.template_env import function_names, load_template, resolve_function_name

DEBUG_VARIABLE = "LOGPIPE_DEBUG"

if TYPE_CHECKING:
    from logpipe_cli.webhook_receiver import WebhookReceiver


def _find_template(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    for directory in (Path.cwd(), *Path.cwd().parents):
        candidate = directory / "template.yaml"
        if candidate.exists():
            return candidate
    return Path("template.yaml")


def _read_event(path: Path) -> dict[str, Any]:
    try:
        event = orjson.loads(path.read_bytes())
    except OSError as error:
        msg = (
            f"cannot read event {path}: {error.strerror or error}: pass an existing file, e.g. events/cwl-keycloak.json"
        )
        raise CliError(msg) from error
    except orjson.JSONDecodeError as error:
        msg = f"cannot read event {path}: not JSON ({error}): pass a Lambda event file, e.g. events/cwl-keycloak.json"
        raise CliError(msg) from error
    if not isinstance(event, dict):
        msg = f"cannot read event {path}: a Lambda event is a JSON object"
        raise CliError(msg)
    return event


@contextlib.contextmanager
def _aws(*, account: bool) -> Iterator[str | None]:
    """Embedded AWS unless ``account`` (``--aws``) or AWS_ENDPOINT_URL says otherwise; yields its export bucket.

    An endpoint of one's own (AWS_ENDPOINT_URL) or the account is used as it is: nothing is created there.
    """
    check_endpoint_url()
    if account or os.environ.get("AWS_ENDPOINT_URL"):
        yield None
        return
    from logpipe_cli.embedded_aws import EmbeddedAws

    with EmbeddedAws() as stack:
        yield stack.export_bucket


def _cmd_invoke(args: argparse.Namespace) -> int:
    from logpipe_cli.embedded_aws import EmbeddedAws
    from logpipe_cli.invoke import function_environment, invoke
    from logpipe_cli.samples import describe_offset, restamp_event
    from logpipe_cli.template_env import function_spec
    from logpipe_cli.webhook_receiver import post_lines

    # Everything that can be checked is checked before embedded AWS starts.
    template = _find_template(args.template)
    name = resolve_function_name(load_template(template), args.function, template)
    event = _read_event(Path(args.event))
    if not args.keep_timestamps:
        event, offset = restamp_event(event)
        if offset:
            sys.stderr.write(
                f"logpipe invoke: log events re-stamped to now ({describe_offset(offset)}): "
                "CloudWatch refuses metrics older than 14 days (--keep-timestamps keeps the sample's times)\n"
            )
    check_endpoint_url()
    with EmbeddedAws() as stack, ExitStack() as local:
        spec = function_spec(template, name, stack.template_resources())
        receiver, overrides = _local_chat(spec.name, local)
        invocation = invoke(spec, event, echo=sys.stderr, cold=True, environment=function_environment(spec, overrides))
        for post in receiver.received if receiver is not None else []:
            sys.stderr.write("\n".join(post_lines(post)) + "\n")
    sys.stdout.write(orjson.dumps(invocation.result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _local_chat(function: str, stack: ExitStack) -> tuple[WebhookReceiver | None, dict[str, str]]:
    """For the notifier without webhook URLs in the environment: a local Slack/Teams stand-in to post to."""
    from logpipe_cli.webhook_receiver import webhook_receiver

    variables = ("LOGPIPE_SLACK_WEBHOOK_URL", "LOGPIPE_TEAMS_WEBHOOK_URL")
    if function != "notify" or any(os.environ.get(variable) for variable in variables):
        return None, {}
    receiver = stack.enter_context(webhook_receiver())
    sys.stderr.write(
        f"logpipe invoke: no {' / '.join(variables)} set: posting to a local Slack/Teams stand-in at "
        f"{receiver.base_url} (what each would show follows the function's log)\n"
    )
    return receiver, {variables[0]: receiver.url("slack"), variables[1]: receiver.url("teams")}


def _cmd_restamp(args: argparse.Namespace) -> int:
    from logpipe_cli.samples import restamp_event

    paths = [Path(path) for path in args.events]
    if args.out is None and len(paths) != 1:
        msg = "several events need --out DIR (one event alone is written to stdout)"
        raise CliError(msg)
    events = [(path, _read_event(path)) for path in paths]
    if args.out is None:
        restamped, _ = restamp_event(events[0][1])
        sys.stdout.write(orjson.dumps(restamped, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, event in events:
        restamped, _ = restamp_event(event)
        (out / path.name).write_bytes(orjson.dumps(restamped, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stderr.write(f"logpipe restamp: {len(events)} event(s) stamped now in {out}/\n")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from logpipe_cli.demo import main_demo

    return main_demo(_find_template(args.template), args.events, sentry=not args.no_sentry, keep_open=args.keep_open)


def _cmd_functions(args: argparse.Namespace) -> int:
    for name in function_names(load_template(_find_template(args.template))):
        sys.stdout.write(name + "\n")
    return 0


def _cmd_smoke(args: argparse.Namespace) -> int:
    from logpipe_cli.smoke import main_smoke

    return main_smoke(args.stack, metric_timeout_s=args.metric_timeout, region=args.region)


def _cmd_export_plan(args: argparse.Namespace) -> int:
    from logpipe_cli.export import main_plan

    with _aws(account=args.aws) as local_bucket:
        return main_plan(bucket=_export_bucket(args, local_bucket), as_json=args.json)


def _cmd_export_run(args: argparse.Namespace) -> int:
    from logpipe_cli.export import main_run

    with _aws(account=args.aws) as local_bucket:
        return main_run(bucket=_export_bucket(args, local_bucket), emit_metrics=args.metrics)


def _export_bucket(args: argparse.Namespace, local_bucket: str | None) -> str:
    bucket = args.bucket or os.environ.get("LOGPIPE_EXPORT_BUCKET") or local_bucket
    if not bucket:
        msg = "no export bucket: pass --bucket (the stack's ExportBucketName output) or set LOGPIPE_EXPORT_BUCKET"
        raise CliError(msg)
    return bucket


def _cmd_replay(args: argparse.Namespace) -> int:
    from logpipe_cli.replay_s3 import main_replay

    with _aws(account=args.aws):
        return main_replay(args.source, metrics=args.metrics, log_group=args.log_group)


def _add_aws_switch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aws",
        action="store_true",
        help="use your AWS account (AWS_PROFILE or the AWS_* keys) instead of embedded AWS (moto on 127.0.0.1); "
        "AWS_ENDPOINT_URL, when set, is used instead of both",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="logpipe", description=__doc__)
    parser.add_argument("--template", help="path to template.yaml (default: found from the current directory)")
    commands = parser.add_subparsers(dest="command", required=True)
    invoke_parser = commands.add_parser(
        "invoke", help="run a function's handler in-process (Docker-free sam local invoke)"
    )
    invoke_parser.add_argument(
        "function", help="function: its folder under functions/ (ingest) or its SAM logical id (IngestFunction)"
    )
    invoke_parser.add_argument("--event", "-e", required=True, help="event JSON file, e.g. events/cwl-keycloak.json")
    invoke_parser.add_argument(
        "--keep-timestamps",
        action="store_true",
        help="keep the event's log times (default: moved to now, so the EMF is within CloudWatch's 14 days)",
    )
    invoke_parser.set_defaults(run=_cmd_invoke)
    restamp_parser = commands.add_parser(
        "restamp", help="write sample events with their log events moved to now (for sam local invoke -e)"
    )
    restamp_parser.add_argument("events", nargs="+", help="event JSON files, e.g. events/*.json")
    restamp_parser.add_argument("--out", help="directory to write them to (default: one event to stdout)")
    restamp_parser.set_defaults(run=_cmd_restamp)
    demo_parser = commands.add_parser("demo", help="push a synthetic PACS workload through the pipeline locally")
    demo_parser.add_argument("--events", type=int, default=20_000, help="how many log events to synthesize")
    demo_parser.add_argument("--no-sentry", action="store_true", help="do not start the local Sentry (Bugsink)")
    demo_parser.add_argument(
        "--keep-open",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep Bugsink running after the summary (default: only at a terminal)",
    )
    demo_parser.set_defaults(run=_cmd_demo)
    functions_parser = commands.add_parser("functions", help="list the functions in template.yaml")
    functions_parser.set_defaults(run=_cmd_functions)
    smoke_parser = commands.add_parser("smoke", help="post-deploy smoke check of a deployed stack (uses AWS)")
    smoke_parser.add_argument("--stack", required=True, help="the CloudFormation stack name, e.g. pacs-logpipe")
    smoke_parser.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    smoke_parser.add_argument(
        "--metric-timeout", type=float, default=300.0, help="seconds to wait for the synthetic event's metric"
    )
    smoke_parser.set_defaults(run=_cmd_smoke)
    export_parser = commands.add_parser(
        "export", help="S3 export of aged logs (embedded AWS, or your account with --aws): plan (dry run) or run"
    )
    export_commands = export_parser.add_subparsers(dest="export_command", required=True)
    export_plan = export_commands.add_parser("plan", help="per group: checkpoint, pending day windows, running task")
    export_plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    export_plan.set_defaults(run=_cmd_export_plan)
    export_run = export_commands.add_parser("run", help="advance the export by one step and print the summary")
    export_run.add_argument("--metrics", action="store_true", help="also write the EMF self-metrics (to stderr)")
    export_run.set_defaults(run=_cmd_export_run)
    for sub in (export_plan, export_run):
        sub.add_argument(
            "--bucket", help="destination bucket (default: LOGPIPE_EXPORT_BUCKET, or embedded AWS's own bucket)"
        )
        _add_aws_switch(sub)
    replay_parser = commands.add_parser(
        "replay", help="push exported logs from S3 back through the ingest routes (same scrubbing and ids)"
    )
    replay_parser.add_argument(
        "source", help="s3://bucket/exports/<group path>/<yyyy-mm-dd>..<yyyy-mm-dd>, or a prefix"
    )
    replay_parser.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="write the PACS EMF metrics too (default: off; EMF older than 14 days is refused)",
    )
    replay_parser.add_argument("--log-group", help="log group name (default: '/' + the group path in the key)")
    _add_aws_switch(replay_parser)
    replay_parser.set_defaults(run=_cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr (cause and fix) and a non-zero exit."""
    args = build_parser().parse_args(argv)
    world = AwsWorld.for_command(account=bool(getattr(args, "aws", False)))
    command = " ".join(part for part in (args.command, getattr(args, "export_command", None)) if part)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"logpipe {command}: interrupted\n")
        return 130
    except Exception as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        line = describe(error, world)
        if line is None:
            detail = str(error).splitlines()[0] if str(error) else ""
            line = f"unexpected {type(error).__name__}: {detail} (a bug: {DEBUG_VARIABLE}=1 shows the traceback)"
        sys.stderr.write(f"logpipe {command}: {line}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
