"""The `logpipe` command: local, Docker-free runs of the pipeline's functions."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from logpipe_cli.template_env import TemplateError, function_names, function_spec, load_template

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


def _cmd_invoke(args: argparse.Namespace) -> int:
    from logpipe_cli.embedded_aws import EmbeddedAws
    from logpipe_cli.invoke import function_environment, invoke
    from logpipe_cli.webhook_receiver import post_lines

    template = _find_template(args.template)
    event_path = Path(args.event)
    try:
        event = orjson.loads(event_path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        sys.stderr.write(f"logpipe invoke: cannot read event {event_path}: {error}\n")
        return 2
    with EmbeddedAws() as stack, ExitStack() as local:
        try:
            spec = function_spec(template, args.function, stack.template_resources())
        except TemplateError as error:
            sys.stderr.write(f"logpipe invoke: {error}\n")
            return 2
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

    return main_plan(bucket=args.bucket, as_json=args.json)


def _cmd_export_run(args: argparse.Namespace) -> int:
    from logpipe_cli.export import main_run

    return main_run(bucket=args.bucket, emit_metrics=args.metrics)


def _cmd_replay(args: argparse.Namespace) -> int:
    from logpipe_cli.replay_s3 import main_replay

    return main_replay(args.source, metrics=args.metrics, log_group=args.log_group)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="logpipe", description=__doc__)
    parser.add_argument("--template", help="path to template.yaml (default: found from the current directory)")
    commands = parser.add_subparsers(dest="command", required=True)
    invoke_parser = commands.add_parser(
        "invoke", help="run a function's handler in-process (Docker-free sam local invoke)"
    )
    invoke_parser.add_argument("function", help="function name, e.g. ingest (its folder under functions/)")
    invoke_parser.add_argument("--event", "-e", required=True, help="event JSON file, e.g. events/cwl-keycloak.json")
    invoke_parser.set_defaults(run=_cmd_invoke)
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
        "export", help="S3 export of aged logs (AWS, or moto with AWS_ENDPOINT_URL): plan (dry run) or run one step"
    )
    export_commands = export_parser.add_subparsers(dest="export_command", required=True)
    export_plan = export_commands.add_parser("plan", help="per group: checkpoint, pending day windows, running task")
    export_plan.add_argument("--json", action="store_true", help="print JSON instead of a table")
    export_plan.set_defaults(run=_cmd_export_plan)
    export_run = export_commands.add_parser("run", help="advance the export by one step and print the summary")
    export_run.add_argument("--metrics", action="store_true", help="also write the EMF self-metrics (to stderr)")
    export_run.set_defaults(run=_cmd_export_run)
    for sub in (export_plan, export_run):
        sub.add_argument("--bucket", help="destination bucket (default: LOGPIPE_EXPORT_BUCKET)")
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
    replay_parser.set_defaults(run=_cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
