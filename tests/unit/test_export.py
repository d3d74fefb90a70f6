from __future__ import annotations

import itertools
from typing import Any, cast

import pytest

from logpipe.export import (
    DAY_MS,
    Checkpoint,
    Exporter,
    MemoryCheckpointStore,
    Window,
    day_windows,
    destination_prefix,
    floor_day,
    parameter_name,
    task_name_for,
)
from logpipe.settings import ExportSettings, SettingsError

pytestmark = pytest.mark.unit

DAY0 = 1_763_337_600_000  # 2025-11-17T00:00:00Z


def test_window_to_is_the_last_millisecond_of_the_day_and_day_is_the_partition_path() -> None:
    window = Window(DAY0, DAY0 + DAY_MS)
    assert window.to_ms == DAY0 + DAY_MS - 1
    assert window.day == "2025/11/17"
    assert window.to_dict() == {"from": "2025-11-17T00:00:00Z", "to": "2025-11-18T00:00:00Z", "day": "2025/11/17"}


def test_day_windows_are_whole_consecutive_days_ending_before_the_cut() -> None:
    windows = day_windows(DAY0 + 5_000, DAY0 + 3 * DAY_MS + 1)
    assert [w.start_ms for w in windows] == [DAY0, DAY0 + DAY_MS, DAY0 + 2 * DAY_MS]
    assert all(b.start_ms == a.end_ms for a, b in itertools.pairwise(windows))
    assert day_windows(DAY0, DAY0 + DAY_MS - 1) == []
    assert floor_day(DAY0 + DAY_MS - 1) == DAY0


def test_destination_prefix_is_athena_friendly() -> None:
    window = Window(DAY0, DAY0 + DAY_MS)
    assert (
        destination_prefix("exports", "/aws/ecs/pacs-backend/errors", window)
        == "exports/aws/ecs/pacs-backend/errors/2025/11/17"
    )
    assert destination_prefix("/archive/", "/aws/rds/db/error", window) == "archive/aws/rds/db/error/2025/11/17"


def test_task_names_are_deterministic_and_distinct_per_group_and_window() -> None:
    window = Window(DAY0, DAY0 + DAY_MS)
    name = task_name_for("/aws/a", window)
    assert name == task_name_for("/aws/a", window)
    assert name != task_name_for("/aws/b", window)
    assert name != task_name_for("/aws/a", Window(DAY0 + DAY_MS, DAY0 + 2 * DAY_MS))


def test_checkpoint_round_trips_and_tracks_the_in_flight_window() -> None:
    checkpoint = Checkpoint(exported_to_ms=DAY0, failures=2)
    checkpoint.begin("t", Window(DAY0, DAY0 + DAY_MS))
    checkpoint.task_id = "id-1"
    restored = Checkpoint.from_json(checkpoint.to_json())
    assert restored == checkpoint
    assert restored.window == Window(DAY0, DAY0 + DAY_MS)
    restored.clear_task()
    assert restored == Checkpoint(exported_to_ms=DAY0, failures=2)


def test_memory_store_returns_an_empty_checkpoint_for_unknown_groups() -> None:
    store = MemoryCheckpointStore()
    assert store.load("/aws/x") == Checkpoint()
    store.save("/aws/x", Checkpoint(exported_to_ms=DAY0))
    assert store.load("/aws/x").exported_to_ms == DAY0


def test_parameter_names_keep_the_path_and_hash_what_ssm_cannot_hold() -> None:
    assert (
        parameter_name("/logpipe/export/checkpoints/", "/aws/ecs/svc/errors")
        == "/logpipe/export/checkpoints/aws/ecs/svc/errors"
    )
    hashed = parameter_name("/p", "/aws/odd#group")
    assert hashed.startswith("/p/sha256-")
    assert hashed != parameter_name("/p", "/aws/odd_group")
    deep = "/" + "/".join(["a"] * 20)
    assert parameter_name("/p", deep).startswith("/p/sha256-")


def test_exporter_refuses_a_minimum_age_below_twelve_hours() -> None:
    with pytest.raises(ValueError, match="at least 12"):
        Exporter(cast("Any", object()), MemoryCheckpointStore(), bucket="b", min_age_hours=11)


def test_export_settings_defaults() -> None:
    settings = ExportSettings.from_env({})
    assert settings.bucket is None
    assert settings.prefix == "exports"
    assert settings.min_age_hours == 24
    assert settings.log_groups == ()
    assert settings.checkpoint_parameter_prefix == "/logpipe/export/checkpoints"


def test_export_settings_read_every_variable() -> None:
    settings = ExportSettings.from_env(
        {
            "LOGPIPE_ENVIRONMENT": "prod",
            "AWS_REGION": "us-west-2",
            "LOGPIPE_EXPORT_BUCKET": "pacs-log-archive",
            "LOGPIPE_EXPORT_PREFIX": "/archive/",
            "LOGPIPE_EXPORT_MIN_AGE_HOURS": "36",
            "LOGPIPE_EXPORT_LOG_GROUPS": " /aws/a , ,/aws/b",
            "LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX": "/pacs/export/",
        },
    )
    assert (settings.environment, settings.region, settings.bucket) == ("prod", "us-west-2", "pacs-log-archive")
    assert settings.prefix == "archive"
    assert settings.min_age_hours == 36
    assert settings.log_groups == ("/aws/a", "/aws/b")
    assert settings.checkpoint_parameter_prefix == "/pacs/export"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"LOGPIPE_EXPORT_MIN_AGE_HOURS": "11"}, "at least 12"),
        ({"LOGPIPE_EXPORT_MIN_AGE_HOURS": "soon"}, "positive integer"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "exporter"}, "LOGPIPE_EXPORT_BUCKET is required"),
        ({"LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX": "relative"}, "must start with '/'"),
        ({"LOGPIPE_EXPORT_PREFIX": "///"}, "only slashes"),
    ],
)
def test_export_settings_reject_bad_values(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        ExportSettings.from_env(env)


def test_export_settings_in_lambda_need_no_parking_queue() -> None:
    settings = ExportSettings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "exporter", "LOGPIPE_EXPORT_BUCKET": "b"})
    assert settings.in_lambda
    assert settings.bucket == "b"
