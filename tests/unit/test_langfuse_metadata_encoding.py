"""Metadata attributes as Langfuse documents them for OTLP spans.

https://langfuse.com/integrations/native/opentelemetry#property-mapping lists observation metadata as
``langfuse.observation.metadata.*``: ``string``, one attribute per top-level key (only top-level keys
are filterable). Langfuse's OTel ingestion (``OtelIngestionProcessor.extractMetadata``) takes the
suffix after the prefix as the key, as is (``a.b`` stays the key ``a.b``; nothing is unflattened), and
keeps the value as sent. Its v5 Python SDK JSON-encodes even plain strings because the server decodes
values of *its SDK's* spans; ours are not (own scope, no SDK headers), so a JSON-encoded string would
show with quotes. Hence: one attribute per top-level key, plain strings unquoted, every other value
(numbers, objects, lists) as a JSON string under its own top-level key.
"""

from __future__ import annotations

import json

import pytest

from logpipe.langfuse.mapping import Generation
from logpipe.langfuse.spans import OBSERVATION_METADATA, SCOPE_NAME, generation_attributes

pytestmark = pytest.mark.unit


def generation(metadata: dict[str, object]) -> Generation:
    return Generation(
        event_id="1" * 56,
        trace_seed="t",
        trace_id="a" * 32,
        observation_id="b" * 16,
        name="report-draft",
        model="gpt-4o",
        start_ns=1,
        end_ns=2,
        input="hi",
        output="ok",
        usage={},
        cost={},
        user_id=None,
        session_id=None,
        environment="prod",
        release=None,
        level=None,
        status_message=None,
        service="pacs-backend",
        log_group="/aws/ecs/pacs-backend/llm",
        log_stream="s",
        metadata=metadata,
    )


def metadata_attributes(metadata: dict[str, object]) -> dict[str, str]:
    prefix = OBSERVATION_METADATA + "."
    return {
        key.removeprefix(prefix): value
        for key, value in generation_attributes(generation(metadata)).items()
        if key.startswith(prefix)
    }


def test_each_top_level_key_is_one_string_attribute() -> None:
    attributes = metadata_attributes(
        {
            "study_uid": "1.2.840.113619",
            "attempt": 2,
            "urgent": True,
            "ratio": 0.5,
            "flags": {"retry": {"count": 1}},
            "tags": ["ct", "chest"],
            "gen_ai.system": "openai",
        }
    )
    assert attributes == {
        "study_uid": "1.2.840.113619",  # not '"1.2.840.113619"': the server does not decode our values
        "attempt": "2",
        "urgent": "true",
        "ratio": "0.5",
        "flags": '{"retry": {"count": 1}}',  # nested objects stay under their top-level key, as JSON
        "tags": '["ct", "chest"]',
        "gen_ai.system": "openai",
    }
    assert all(isinstance(value, str) for value in attributes.values())
    assert json.loads(attributes["flags"]) == {"retry": {"count": 1}}


def test_no_nested_key_is_flattened_and_no_whole_object_attribute_is_sent() -> None:
    attributes = generation_attributes(generation({"flags": {"retry": {"count": 1}}}))
    assert f"{OBSERVATION_METADATA}.flags" in attributes
    assert not [key for key in attributes if key.startswith(f"{OBSERVATION_METADATA}.flags.")]
    assert OBSERVATION_METADATA not in attributes  # the single-JSON-object form is not what the docs describe


def test_our_scope_is_not_the_langfuse_sdks() -> None:
    # Plain string values are only right while Langfuse does not take our spans for its SDK's.
    assert not SCOPE_NAME.startswith("langfuse-sdk")
