"""S3 replay: URL ranges, export keys, line parsing, deterministic ids and batching, all in memory."""

from __future__ import annotations

import base64
import gzip
import io
import json
from datetime import date
from typing import Any, cast

import pytest

from logpipe.pipeline import IngestSummary
from logpipe.s3replay import (
    ID_DIGITS,
    MAX_BATCH_EVENTS,
    CloudWatchStreamNames,
    ReplayTargetError,
    data_messages,
    event_id,
    list_export_keys,
    parse_export_key,
    parse_export_text,
    parse_target,
    replay_objects,
    subscription_event,
)

pytestmark = pytest.mark.unit

GROUP = "/aws/ecs/pacs-backend/application"
KEY = "exports/aws/ecs/pacs-backend/application/2026/11/20/3f2a-task/ecs/app/abc123/000000.gz"


def test_range_url_lists_one_prefix_per_day_inclusive() -> None:
    target = parse_target("s3://bucket/exports/aws/ecs/pacs-backend/application/2026-02-27..2026-03-01")
    assert target.bucket == "bucket"
    assert target.days == (date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1))
    assert target.prefixes == tuple(
        f"exports/aws/ecs/pacs-backend/application/2026/{day}/" for day in ("02/27", "02/28", "03/01")
    )


def test_plain_prefix_is_listed_as_is() -> None:
    target = parse_target("s3://bucket/exports/aws/ecs/pacs-backend/application/2026/11/")
    assert target.prefixes == ("exports/aws/ecs/pacs-backend/application/2026/11/",)
    assert target.days == ()


@pytest.mark.parametrize(
    "url",
    [
        "bucket/exports/x/2026-01-01..2026-01-02",
        "s3:///exports/x",
        "s3://bucket/exports/x/2026-01-03..2026-01-02",
        "s3://bucket/exports/x/2026-13-01..2026-13-02",
        "s3://bucket/2026-01-01..2026-01-02",
        "s3://bucket/exports/x/2000-01-01..2026-01-02",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ReplayTargetError):
        parse_target(url)


def test_export_key_is_split_into_group_day_task_stream_part() -> None:
    parsed = parse_export_key(KEY)
    assert parsed is not None
    assert parsed.log_group == GROUP
    assert (parsed.day, parsed.task_id, parsed.stream, parsed.part) == (
        "2026/11/20",
        "3f2a-task",
        "ecs/app/abc123",
        "000000.gz",
    )
    assert parse_export_key("exports/aws-logs-write-test") is None
    assert parse_export_key("elsewhere/aws/x/2026/11/20/t/s/000000.gz") is None


@pytest.mark.parametrize(
    ("stream_folder", "stream"),
    [
        # AWS documents <prefix>/<task id>/<log stream>/000000.gz; a name keeping its slashes parses whole.
        ("ecs/pacs-backend/3f9c2a71d4e84b6f", "ecs/pacs-backend/3f9c2a71d4e84b6f"),
        # A Lambda stream starts with a date: it stays in the stream, the export day stays the day.
        ("2026/11/21/[$LATEST]0a1b2c3d4e5f", "2026/11/21/[$LATEST]0a1b2c3d4e5f"),
        ("/leading/slash", "/leading/slash"),
        # moto (and exports seen in the wild) write '/' as '-': the folder is taken as is.
        ("ecs-pacs-backend-3f9c2a71d4e84b6f", "ecs-pacs-backend-3f9c2a71d4e84b6f"),
        ("web-1", "web-1"),
    ],
)
def test_export_key_stream_with_slashes_kept_or_written_as_dashes(stream_folder: str, stream: str) -> None:
    key = f"exports/aws/lambda/pacs-thumbnailer/2026/11/20/2d6c7e1f-task/{stream_folder}/000001.gz"
    parsed = parse_export_key(key)
    assert parsed is not None
    assert (parsed.log_group, parsed.day, parsed.task_id, parsed.stream, parsed.part) == (
        "/aws/lambda/pacs-thumbnailer",
        "2026/11/20",
        "2d6c7e1f-task",
        stream,
        "000001.gz",
    )


class FakeLogs:
    """DescribeLogStreams pagination over a dict of group -> stream names, counting the listings."""

    def __init__(self, streams: dict[str, list[str]], *, fail: bool = False) -> None:
        self.streams = streams
        self.fail = fail
        self.listings: list[tuple[str, str | None]] = []

    def get_paginator(self, name: str) -> FakeLogs:
        assert name == "describe_log_streams"
        return self

    def paginate(self, *, logGroupName: str, logStreamNamePrefix: str | None = None) -> Any:  # noqa: N803 - boto3's
        self.listings.append((logGroupName, logStreamNamePrefix))
        if self.fail:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeLogStreams")
        names = [n for n in self.streams.get(logGroupName, []) if n.startswith(logStreamNamePrefix or "")]
        # Two pages, as the paginator yields them.
        return [
            {"logStreams": [{"logStreamName": n} for n in names[:1]]},
            {"logStreams": [{"logStreamName": n} for n in names[1:]]},
        ]


def test_dash_folders_get_their_stream_name_back_when_exactly_one_stream_matches() -> None:
    logs = FakeLogs(
        {
            GROUP: ["ecs/pacs-backend/3f9c", "ecs/pacs-backend/8a1d", "web-2", "a/b", "a-b", "c/d", "c-d/x"],
            "/aws/lambda/fn": ["2026/11/21/[$LATEST]0a1b", "-odd/name"],
        }
    )
    names = CloudWatchStreamNames(cast("Any", logs))
    assert names(GROUP, "ecs-pacs-backend-3f9c") == "ecs/pacs-backend/3f9c"
    assert names(GROUP, "ecs-pacs-backend-8a1d") == "ecs/pacs-backend/8a1d"
    assert logs.listings == [(GROUP, "ecs")]  # one listing per group and prefix, however many streams
    assert names(GROUP, "web-2") == "web-2"  # a stream of that very name exists
    assert names(GROUP, "a-b") == "a-b"  # "a/b" and "a-b" both exist: not guessed
    assert names(GROUP, "c-d") == "c/d"  # "c-d/x" flattens to "c-d-x", not "c-d"
    assert names(GROUP, "gone-stream") == "gone-stream"  # deleted by retention: the folder name stays
    assert names("/aws/lambda/fn", "2026-11-21-[$LATEST]0a1b") == "2026/11/21/[$LATEST]0a1b"
    assert names("/aws/lambda/fn", "-odd-name") == "-odd/name"
    assert ("/aws/lambda/fn", None) in logs.listings  # the API refuses an empty prefix: list them all
    calls = len(logs.listings)
    assert names(GROUP, "ecs/pacs-backend/3f9c") == "ecs/pacs-backend/3f9c"  # slashes kept by the export
    assert names(GROUP, "plain") == "plain"  # no '-' that could stand for a '/'
    assert len(logs.listings) == calls
    assert names.errors == []


def test_a_failed_stream_listing_keeps_the_folder_names_and_is_reported_once() -> None:
    logs = FakeLogs({}, fail=True)
    names = CloudWatchStreamNames(cast("Any", logs))
    assert names(GROUP, "ecs-app-1") == "ecs-app-1"
    assert names(GROUP, "ecs-app-2") == "ecs-app-2"
    assert len(logs.listings) == 1
    assert len(names.errors) == 1
    assert GROUP in names.errors[0]
    assert "AccessDenied" in names.errors[0]


def test_lines_become_events_and_continuations_join_the_previous_message() -> None:
    text = (
        "garbage before any event\n"
        "2026-11-20T01:02:03.456Z ERROR boom\n"
        "Traceback (most recent call last):\n"
        "2026-11-20T01:02:04Z \n"
        "2026-11-20T01:02:05.1Z last line\n"
    )
    parsed = parse_export_text(text, GROUP, "web-1")
    assert parsed.unparsed_lines == 1
    assert parsed.lines == 5
    assert [(e["timestamp"], e["message"]) for e in parsed.events] == [
        (1_795_136_523_456, "ERROR boom\nTraceback (most recent call last):"),
        (1_795_136_524_000, ""),
        (1_795_136_525_100, "last line"),
    ]
    assert [e["id"] for e in parsed.events] == [
        event_id(GROUP, "web-1", 1_795_136_523_456, 2),
        event_id(GROUP, "web-1", 1_795_136_524_000, 4),
        event_id(GROUP, "web-1", 1_795_136_525_100, 5),
    ]


def test_ids_are_56_digits_deterministic_and_distinct_per_input() -> None:
    first = event_id(GROUP, "web-1", 1_795_136_523_456, 1)
    assert first == event_id(GROUP, "web-1", 1_795_136_523_456, 1)
    assert len(first) == ID_DIGITS
    assert first.isdigit()
    others = {
        event_id("/other", "web-1", 1_795_136_523_456, 1),
        event_id(GROUP, "web-2", 1_795_136_523_456, 1),
        event_id(GROUP, "web-1", 1_795_136_523_457, 1),
        event_id(GROUP, "web-1", 1_795_136_523_456, 2),
    }
    assert first not in others
    assert len(others) == 4


def test_ids_sort_in_file_order_within_a_millisecond() -> None:
    text = "".join(f"2026-11-20T01:02:03.000Z part {n}\n" for n in range(12))
    events = parse_export_text(text, GROUP, "web-1").events
    assert sorted(events, key=lambda e: (e["timestamp"], e["id"])) == events
    assert len({e["id"] for e in events}) == 12


def test_batches_hold_at_most_a_thousand_events_in_order() -> None:
    events = [{"id": str(i), "timestamp": i, "message": f"m{i}"} for i in range(2_500)]
    batches = list(data_messages(GROUP, "web-1", events, owner="123456789012"))
    assert [len(b["logEvents"]) for b in batches] == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 500]
    assert [e["message"] for b in batches for e in b["logEvents"]] == [e["message"] for e in events]
    assert {(b["messageType"], b["logGroup"], b["logStream"], b["owner"]) for b in batches} == {
        ("DATA_MESSAGE", GROUP, "web-1", "123456789012")
    }
    with pytest.raises(ValueError, match="batch_size"):
        list(data_messages(GROUP, "web-1", events, batch_size=0))


def test_subscription_event_round_trips() -> None:
    document = next(data_messages(GROUP, "web-1", [{"id": "1", "timestamp": 2, "message": "x"}]))
    data = subscription_event(document)["awslogs"]["data"]
    assert json.loads(gzip.decompress(base64.b64decode(data))) == document


class FakeS3:
    """list_objects_v2 pagination and get_object over a dict of key -> bytes."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, _name: str) -> FakeS3:
        return self

    def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803 - boto3's names
        return [{"Contents": [{"Key": key} for key in sorted(self.objects) if key.startswith(Prefix)]}]

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        body = self.objects[Key]
        return {"Body": type("Body", (), {"read": lambda _self: body})()}


def test_replay_numbers_lines_across_parts_and_counts_everything() -> None:
    prefix = "exports/aws/ecs/pacs-backend/application/2026/11/20/task/web-1/"
    line = b"2026-11-20T01:02:03.000Z same\n"
    s3 = FakeS3({prefix + "000000.gz": gzip.compress(line * 3), prefix + "000001.gz": gzip.compress(line * 3)})
    target = parse_target("s3://b/exports/aws/ecs/pacs-backend/application/2026-11-20..2026-11-20")
    keys = list_export_keys(cast("Any", s3), target)
    assert [k.part for k in keys] == ["000000.gz", "000001.gz"]
    seen: list[dict[str, Any]] = []

    def run(event: dict[str, Any]) -> IngestSummary:
        seen.append(json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"]))))
        summary = IngestSummary()
        summary.counters["records.info"] += len(seen[-1]["logEvents"])
        summary.counters["delivery.fake-error.delivered"] += 1
        return summary

    done: list[int] = []
    summary = replay_objects(cast("Any", s3), "b", keys, run, batch_size=2, on_object=lambda _k, n: done.append(n))
    ids = [e["id"] for doc in seen for e in doc["logEvents"]]
    assert len(set(ids)) == 6  # same timestamp and text, but line numbers continue into the second part
    assert done == [3, 3]
    report = summary.to_dict()
    assert (report["objects"], report["events"], report["batches"]) == (2, 6, 4)
    assert report["records"] == {"info": 6}
    assert report["deliveries"] == {"fake-error": {"delivered": 4}}
    assert report["streams_renamed"] == 0


def test_replay_uses_the_real_stream_name_and_keeps_ids_derived_from_the_folder() -> None:
    key = "exports/aws/ecs/pacs-backend/application/2026/11/20/task/ecs-app-abc123/000000.gz"
    s3 = FakeS3({key: gzip.compress(b"2026-11-20T01:02:03.000Z one\n2026-11-20T01:02:04.000Z two\n")})
    keys = list_export_keys(cast("Any", s3), parse_target("s3://b/exports/aws/ecs/pacs-backend/application/"))
    seen: list[dict[str, Any]] = []

    def run(event: dict[str, Any]) -> IngestSummary:
        seen.append(json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"]))))
        return IngestSummary()

    names = CloudWatchStreamNames(cast("Any", FakeLogs({GROUP: ["ecs/app/abc123"]})))
    summary = replay_objects(cast("Any", s3), "b", keys, run, stream_names=names)
    assert [doc["logStream"] for doc in seen] == ["ecs/app/abc123"]
    assert [e["id"] for e in seen[0]["logEvents"]] == [
        event_id(GROUP, "ecs-app-abc123", 1_795_136_523_000, 1),
        event_id(GROUP, "ecs-app-abc123", 1_795_136_524_000, 2),
    ]
    assert summary.to_dict()["streams_renamed"] == 1


def test_cli_replay_warns_when_stream_names_cannot_be_looked_up() -> None:
    from logpipe_cli.replay_s3 import main_replay

    key = "exports/aws/ecs/pacs-backend/application/2026/11/20/task/ecs-app-abc123/000000.gz"
    s3 = FakeS3({key: gzip.compress(b"2026-11-20T01:02:03.000Z one\n")})
    streams: list[str] = []

    class Pipeline:
        health: object = None
        emf_writer: object = None

        def run(self, event: dict[str, Any]) -> IngestSummary:
            streams.append(json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))["logStream"])
            return IngestSummary()

    out, err = io.StringIO(), io.StringIO()
    code = main_replay(
        "s3://b/exports/aws/ecs/pacs-backend/application/",
        out=out,
        err=err,
        s3=cast("Any", s3),
        build_pipeline=lambda _settings: cast("Any", Pipeline()),
        owner="123456789012",
        stream_names=CloudWatchStreamNames(cast("Any", FakeLogs({}, fail=True))),
    )
    assert code == 0
    assert streams == ["ecs-app-abc123"]
    assert "stream names not looked up" in err.getvalue()
    assert json.loads(out.getvalue())["streams_renamed"] == 0
