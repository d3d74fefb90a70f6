"""`logpipe replay s3://bucket/exports/<group path>/<from>..<to>`: backfill exported logs through the ingest routes."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from logpipe.s3replay import (
    DEFAULT_ROOT,
    CloudWatchStreamNames,
    ReplayTargetError,
    list_export_keys,
    logs_client,
    parse_target,
    replay_objects,
    s3_client,
)
from logpipe.settings import Settings, SettingsError
from logpipe_cli.progress import Progress

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from logpipe.pipeline import IngestPipeline
    from logpipe.s3replay import ExportKey, StreamNameResolver


def _account_id() -> str:
    """The caller's account (the live path's DATA_MESSAGE owner), or '' when STS is unavailable."""
    try:
        import boto3

        return str(boto3.client("sts").get_caller_identity().get("Account", ""))
    except Exception:  # noqa: BLE001 - the owner is cosmetic; replay must not fail on it
        return ""


def _build_pipeline(settings: Settings) -> IngestPipeline:
    from logpipe.runtime import build_ingest_pipeline

    return build_ingest_pipeline(settings)


def main_replay(  # noqa: PLR0913 - the command's options and injectable dependencies
    url: str,
    *,
    metrics: bool = False,
    log_group: str | None = None,
    root: str = DEFAULT_ROOT,
    out: TextIO | None = None,
    err: TextIO | None = None,
    s3: S3Client | None = None,
    build_pipeline: Callable[[Settings], IngestPipeline] = _build_pipeline,
    owner: str | None = None,
    stream_names: StreamNameResolver | None = None,
) -> int:
    """Replay the exported objects named by ``url``; progress on ``err``, the JSON summary on ``out``.

    Stream folders written with ``-`` for ``/`` get their real names back from CloudWatch Logs
    (``CloudWatchStreamNames``) unless ``stream_names`` is given.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        target = parse_target(url, root)
        settings = Settings.from_env()
    except (ReplayTargetError, SettingsError) as error:
        err.write(f"logpipe replay: {error}\n")
        return 2
    # Historical EMF older than 14 days is refused by CloudWatch, so metrics are off unless asked for.
    settings = dataclasses.replace(settings, metrics_enabled=metrics)
    # The pipeline's logger and EMF write to stdout (Lambda's log stream); here stdout is the summary.
    with contextlib.redirect_stdout(err):
        # The source first: a wrong bucket or prefix fails before anything is built.
        client = s3 if s3 is not None else s3_client()
        keys = list_export_keys(client, target)
        pipeline = build_pipeline(settings)
        pipeline.health = None  # the live path's self-metrics must not count a backfill
        pipeline.emf_writer = _writer(err)
        err.write(f"logpipe replay: {len(keys):,} export object(s) in s3://{target.bucket}\n")
        progress = Progress(len(keys), "objects", stream=err)
        events = 0

        def advance(_key: ExportKey, count: int) -> None:
            nonlocal events
            events += count
            progress.advance(1, f"{events:,} events")

        resolver = stream_names if stream_names is not None else CloudWatchStreamNames(logs_client())
        summary = replay_objects(
            client,
            target.bucket,
            keys,
            pipeline.run,
            owner=_account_id() if owner is None else owner,
            log_group=log_group,
            on_object=advance,
            stream_names=resolver,
        )
        progress.finish(f"{events:,} events")
        for problem in resolver.errors if isinstance(resolver, CloudWatchStreamNames) else ():
            err.write(f"logpipe replay: warning: {problem}; their exported names are kept\n")
    report: dict[str, Any] = {"source": url, "metrics": metrics, **summary.to_dict()}
    out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _writer(stream: TextIO) -> Callable[[bytes], object]:
    def write(line: bytes) -> None:
        stream.write(line.decode())

    return write
