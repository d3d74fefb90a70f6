"""Static checks of the SAM template (template.yaml).

These tests read the template as data; they never call AWS or the SAM CLI
(see tests/functional/test_sam_cli.py for `sam validate` / `sam build`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"

PY_RUNTIME = "python3.12"
ARCH = "arm64"

# Values accepted by CloudWatch Logs PutRetentionPolicy.
ALLOWED_RETENTION_DAYS = frozenset(
    {
        1,
        3,
        5,
        7,
        14,
        30,
        60,
        90,
        120,
        150,
        180,
        365,
        400,
        545,
        731,
        1096,
        1827,
        2192,
        2557,
        2922,
        3288,
        3653,
    }
)

# Every LOGPIPE_* environment variable the code understands. A name that is
# not listed here is almost certainly a typo (the code would silently ignore it).
LOGPIPE_ENV_ALLOW_LIST = frozenset(
    {
        "LOGPIPE_ENVIRONMENT",
        "LOGPIPE_PARKING_QUEUE_URL",
        "LOGPIPE_METRIC_RULES",
        "LOGPIPE_SCRUB_RULES",
        "LOGPIPE_SCRUB_ENABLED",
    }
)

# SAM policy templates the ingest function may use (least privilege).
INGEST_ALLOWED_POLICY_TEMPLATES = frozenset({"SQSSendMessagePolicy"})

EXAMPLE_LOG_GROUP_TAGS = {
    "LogType": "application",
    "ExportEnabled": "true",
    "SentrySync": "pending",
    "LangfuseSync": "pending",
}


# ---------------------------------------------------------------------------
# CloudFormation-aware YAML loader
# ---------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into long form.

    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Condition C`` -> ``{"Condition": "C"}``, ``!Sub s`` -> ``{"Fn::Sub": s}`` ...
    """


CFN_SHORT_TAGS = (
    "Ref",
    "Condition",
    "Sub",
    "GetAtt",
    "If",
    "Equals",
    "Select",
    "Join",
    "Split",
    "FindInMap",
    "Not",
    "And",
    "Or",
    "GetAZs",
    "ImportValue",
    "Base64",
    "Cidr",
)


def _construct_cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if tag_suffix not in CFN_SHORT_TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]

    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_cfn_yaml(text: str) -> Any:
    return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - CfnLoader derives from SafeLoader


# ---------------------------------------------------------------------------
# Template helpers
# ---------------------------------------------------------------------------
def walk(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Yield (path, value) for every node of a loaded template."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


def referenced_ids(node: Any) -> set[str]:
    """Logical IDs / parameters referenced via Ref, GetAtt or ${...} in Sub."""
    found: set[str] = set()
    for _, value in walk(node):
        if not isinstance(value, dict):
            continue
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        getatt = value.get("Fn::GetAtt")
        if isinstance(getatt, list) and getatt:
            found.add(getatt[0])
        sub = value.get("Fn::Sub")
        sub_str = sub[0] if isinstance(sub, list) else sub
        if isinstance(sub_str, str):
            found.update(m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", sub_str))
    return {ref for ref in found if not ref.startswith("AWS::")}


def resources_of_type(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") in types}


def function_globals(template: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    return section


def effective_function_property(template: dict[str, Any], function: dict[str, Any], name: str) -> Any:
    """A function property as SAM resolves it (the function's own value wins over Globals)."""
    props = function.get("Properties", {})
    return props.get(name, function_globals(template).get(name))


def effective_layers(template: dict[str, Any], function: dict[str, Any]) -> list[Any]:
    # SAM merges list-valued globals: Globals entries first, then the function's own.
    return list(function_globals(template).get("Layers", [])) + list(function["Properties"].get("Layers", []))


def effective_env(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    merged = dict(function_globals(template).get("Environment", {}).get("Variables", {}))
    merged.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    return merged


def log_group_name(template: dict[str, Any], value: Any) -> str:
    """Render a LogGroupName value (literal, Sub, or Ref to a log group in this template) as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    if isinstance(value, dict) and "Ref" in value:
        target = template["Resources"].get(value["Ref"])
        assert target is not None, f"LogGroupName refers to unknown resource/parameter {value['Ref']!r}"
        assert target["Type"] == "AWS::Logs::LogGroup", f"{value['Ref']} is not a log group"
        return log_group_name(template, target["Properties"]["LogGroupName"])
    raise AssertionError(f"cannot interpret log group name {value!r}")


def subscription_targets(template: dict[str, Any]) -> list[tuple[str, Any]]:
    """(origin, LogGroupName value) of every CloudWatch Logs subscription in the template."""
    targets: list[tuple[str, Any]] = []
    for fn_name, fn in resources_of_type(template, "AWS::Serverless::Function").items():
        for event_name, event in fn["Properties"].get("Events", {}).items():
            if event.get("Type") == "CloudWatchLogs":
                targets.append(
                    (
                        f"{fn_name}.Events.{event_name}",
                        event["Properties"]["LogGroupName"],
                    )
                )
    for name, res in resources_of_type(template, "AWS::Logs::SubscriptionFilter").items():
        targets.append((name, res["Properties"]["LogGroupName"]))
    return targets


def tags_as_dict(tags: Any) -> dict[str, Any]:
    if isinstance(tags, dict):
        return dict(tags)
    return {tag["Key"]: tag["Value"] for tag in tags}


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = load_cfn_yaml(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "template.yaml must be a mapping"
    return loaded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return resources


@pytest.fixture(scope="module")
def ingest(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fn = resources["IngestFunction"]
    assert fn["Type"] == "AWS::Serverless::Function"
    return fn


# ---------------------------------------------------------------------------
# The loader itself
# ---------------------------------------------------------------------------
def test_loader_understands_every_cloudformation_short_tag() -> None:
    doc = load_cfn_yaml(
        """
        ref: !Ref Thing
        cond: !Condition IsProd
        sub: !Sub "${AWS::StackName}-x"
        getatt: !GetAtt Queue.Arn
        getatt_list: !GetAtt [Queue, QueueName]
        if: !If [IsProd, a, b]
        equals: !Equals [!Ref Environment, prod]
        select: !Select [0, !GetAZs ""]
        join: !Join ["", [a, b]]
        split: !Split [",", "a,b"]
        findinmap: !FindInMap [M, K, V]
        not: !Not [!Condition IsProd]
        and: !And [!Condition A, !Condition B]
        or: !Or [!Condition A, !Condition B]
        importvalue: !ImportValue exported
        base64: !Base64 text
        cidr: !Cidr ["10.0.0.0/16", 4, 8]
        """
    )
    assert doc["ref"] == {"Ref": "Thing"}
    assert doc["cond"] == {"Condition": "IsProd"}
    assert doc["sub"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert doc["getatt"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert doc["getatt_list"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert doc["if"] == {"Fn::If": ["IsProd", "a", "b"]}
    assert doc["equals"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    assert doc["select"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert doc["join"] == {"Fn::Join": ["", ["a", "b"]]}
    assert doc["split"] == {"Fn::Split": [",", "a,b"]}
    assert doc["findinmap"] == {"Fn::FindInMap": ["M", "K", "V"]}
    assert doc["not"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    assert doc["and"] == {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]}
    assert doc["or"] == {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]}
    assert doc["importvalue"] == {"Fn::ImportValue": "exported"}
    assert doc["base64"] == {"Fn::Base64": "text"}
    assert doc["cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}


def test_loader_rejects_unknown_tags() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="!Reff"):
        load_cfn_yaml("x: !Reff Thing")


def test_referenced_ids_helper() -> None:
    node = {
        "a": {"Ref": "A"},
        "b": {"Fn::GetAtt": ["B", "Arn"]},
        "c": {"Fn::Sub": "${C.Arn}/${AWS::Region}/${!Literal}"},
    }
    assert referenced_ids(node) == {"A", "B", "C"}


# ---------------------------------------------------------------------------
# Template structure
# ---------------------------------------------------------------------------
def test_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["Environment"]["Default"] == "dev"
    assert set(params["Environment"]["AllowedValues"]) == {"dev", "stg", "prod"}
    assert params["LogLevel"]["Default"] == "INFO"
    assert params["ExampleServiceName"]["Default"] == "pacs-backend"


def test_log_level_parameter_maps_to_lambda_alc_levels(
    template: dict[str, Any],
) -> None:
    """Every allowed LogLevel must have an Advanced-Logging-Controls level (FindInMap would fail at deploy)."""
    alc_levels = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    mapping = template["Mappings"]["AlcLogLevel"]
    for level in template["Parameters"]["LogLevel"]["AllowedValues"]:
        assert mapping[level]["Level"] in alc_levels, level


def test_globals_environment(template: dict[str, Any]) -> None:
    variables = function_globals(template)["Environment"]["Variables"]
    assert variables["LOGPIPE_ENVIRONMENT"] == {"Ref": "Environment"}
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "LogPipe"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


# ---------------------------------------------------------------------------
# Runtime / architecture
# ---------------------------------------------------------------------------
def test_every_function_is_python312_on_arm64(template: dict[str, Any]) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function", "AWS::Lambda::Function")
    assert functions, "template defines no functions"
    for name, fn in functions.items():
        assert effective_function_property(template, fn, "Runtime") == PY_RUNTIME, name
        assert effective_function_property(template, fn, "Architectures") == [ARCH], name


def test_every_layer_is_built_for_python312_arm64(template: dict[str, Any]) -> None:
    layers = resources_of_type(template, "AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
    assert "CoreLayer" in layers
    for name, layer in layers.items():
        props = layer["Properties"]
        assert props["CompatibleRuntimes"] == [PY_RUNTIME], name
        assert props["CompatibleArchitectures"] == [ARCH], name
        if layer["Type"] == "AWS::Serverless::LayerVersion":
            assert layer["Metadata"]["BuildMethod"] == PY_RUNTIME, name
            assert layer["Metadata"]["BuildArchitecture"] == ARCH, name


def test_core_layer_content(resources: dict[str, dict[str, Any]]) -> None:
    props = resources["CoreLayer"]["Properties"]
    assert props["ContentUri"].rstrip("/") == "layers/core"
    assert props["RetentionPolicy"] in ("Retain", "Delete")
    layer_dir = TEMPLATE_PATH.parent / "layers" / "core"
    assert (layer_dir / "requirements.txt").is_file()
    assert (layer_dir / "logpipe" / "__init__.py").is_file()


# ---------------------------------------------------------------------------
# Ingest function
# ---------------------------------------------------------------------------
def test_ingest_function_code_and_handler(ingest: dict[str, Any]) -> None:
    props = ingest["Properties"]
    assert props["Handler"] == "app.lambda_handler"
    assert props["CodeUri"].rstrip("/") == "functions/ingest"
    assert (TEMPLATE_PATH.parent / "functions" / "ingest" / "app.py").is_file()


def test_ingest_function_uses_core_layer(template: dict[str, Any], ingest: dict[str, Any]) -> None:
    assert {"Ref": "CoreLayer"} in effective_layers(template, ingest)


def test_ingest_function_environment(template: dict[str, Any], ingest: dict[str, Any]) -> None:
    env = effective_env(template, ingest)
    assert env["LOGPIPE_PARKING_QUEUE_URL"] == {"Ref": "ParkingQueue"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "logpipe-ingest"
    assert env["LOGPIPE_ENVIRONMENT"] == {"Ref": "Environment"}


def test_ingest_function_policies_are_least_privilege(ingest: dict[str, Any]) -> None:
    props = ingest["Properties"]
    assert "Role" not in props, "an explicit role would bypass the policy templates checked here"
    policies = props["Policies"]
    assert isinstance(policies, list)
    assert policies
    for policy in policies:
        # Strings are managed policy names/ARNs and dicts with Statement are
        # inline documents: both are too easy to make broader than needed.
        assert isinstance(policy, dict), f"managed policy {policy!r} not allowed"
        assert len(policy) == 1, policy
        (template_name, args) = next(iter(policy.items()))
        assert template_name in INGEST_ALLOWED_POLICY_TEMPLATES, template_name
        assert referenced_ids(args) == {"ParkingQueue"}, f"{template_name} must target only ParkingQueue"


def test_no_hand_written_iam_resources(template: dict[str, Any]) -> None:
    iam = resources_of_type(template, "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
    assert not iam, f"IAM resources bypass the least-privilege checks: {sorted(iam)}"


def test_ingest_function_logs_to_its_explicit_log_group(
    template: dict[str, Any],
    ingest: dict[str, Any],
    resources: dict[str, dict[str, Any]],
) -> None:
    logging_config = ingest["Properties"]["LoggingConfig"]
    assert logging_config["LogGroup"] == {"Ref": "IngestFunctionLogGroup"}
    group = resources["IngestFunctionLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 14
    name = log_group_name(template, group["Properties"]["LogGroupName"])
    assert name.startswith("/aws/lambda/"), name
    function_name = ingest["Properties"].get("FunctionName")
    if function_name is not None:
        assert name == "/aws/lambda/" + log_group_name(template, function_name)


def test_pipeline_log_groups_are_never_subscribed(template: dict[str, Any]) -> None:
    """Subscribing the pipeline's own logs would feed its output back into itself."""
    targets = subscription_targets(template)
    assert targets, "expected at least one CloudWatch Logs subscription"
    own_groups = {
        fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for fn in resources_of_type(template, "AWS::Serverless::Function").values()
        if isinstance(fn["Properties"].get("LoggingConfig", {}).get("LogGroup"), dict)
    }
    for origin, target in targets:
        name = log_group_name(template, target)
        assert not name.startswith("/aws/lambda/"), f"{origin} subscribes a Lambda log group ({name})"
        assert referenced_ids(target).isdisjoint(own_groups), f"{origin} subscribes the pipeline's own log group"


# ---------------------------------------------------------------------------
# Parking queue
# ---------------------------------------------------------------------------
def test_parking_queue_redrives_to_dlq(resources: dict[str, dict[str, Any]]) -> None:
    queue = resources["ParkingQueue"]
    dlq = resources["ParkingDeadLetterQueue"]
    assert queue["Type"] == dlq["Type"] == "AWS::SQS::Queue"
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ParkingDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == 5
    assert "RedrivePolicy" not in dlq["Properties"], "the DLQ must be the end of the chain"


def test_parking_queues_retention_and_encryption(
    resources: dict[str, dict[str, Any]],
) -> None:
    fourteen_days = 14 * 24 * 60 * 60
    for name in ("ParkingQueue", "ParkingDeadLetterQueue"):
        props = resources[name]["Properties"]
        assert props["MessageRetentionPeriod"] == fourteen_days, name
        # SSE-SQS now; a customer-managed KMS key replaces it later.
        assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props, name


def test_parking_queue_visibility_timeout_covers_six_function_timeouts(
    template: dict[str, Any],
    resources: dict[str, dict[str, Any]],
    ingest: dict[str, Any],
) -> None:
    timeout = effective_function_property(template, ingest, "Timeout")
    assert isinstance(timeout, int)
    assert timeout > 0
    assert resources["ParkingQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


# ---------------------------------------------------------------------------
# Example subscribed source
# ---------------------------------------------------------------------------
def test_example_log_group_is_subscribed_to_ingest(template: dict[str, Any], ingest: dict[str, Any]) -> None:
    events = {
        name: event
        for name, event in ingest["Properties"].get("Events", {}).items()
        if event["Type"] == "CloudWatchLogs"
    }
    assert events, "IngestFunction has no CloudWatchLogs event"
    for name, event in events.items():
        assert event["Properties"]["FilterPattern"] == "", name
        assert log_group_name(template, event["Properties"]["LogGroupName"]).startswith("/aws/ecs/"), name


def test_subscribed_log_groups_follow_naming_and_tagging_convention(
    template: dict[str, Any],
) -> None:
    subscribed = [
        template["Resources"][target["Ref"]]
        for _, target in subscription_targets(template)
        if isinstance(target, dict) and "Ref" in target
    ]
    assert subscribed, "no subscribed log group is defined in the template"
    for group in subscribed:
        props = group["Properties"]
        name = log_group_name(template, props["LogGroupName"])
        assert re.fullmatch(r"/aws/ecs/(\$\{ExampleServiceName\}|[a-z0-9-]+)/application", name), name
        tags = tags_as_dict(props["Tags"])
        for key, value in EXAMPLE_LOG_GROUP_TAGS.items():
            assert tags.get(key) == value, f"{name}: tag {key}"
        assert tags.get("RetentionDays") == str(props["RetentionInDays"]), f"{name}: RetentionDays tag"
        assert tags.get("Environment") == {"Ref": "Environment"}
        assert tags.get("Project") == "pacs-logpipe"


def test_example_log_group_name_uses_service_parameter(
    resources: dict[str, dict[str, Any]],
) -> None:
    props = resources["ExampleApplicationLogGroup"]["Properties"]
    assert props["LogGroupName"] == {"Fn::Sub": "/aws/ecs/${ExampleServiceName}/application"}
    assert props["RetentionInDays"] == 14


# ---------------------------------------------------------------------------
# Whole-template invariants
# ---------------------------------------------------------------------------
def test_every_retention_value_is_allowed_by_cloudwatch(
    template: dict[str, Any],
) -> None:
    checked = 0
    for path, value in walk(template):
        if path and path[-1] == "RetentionInDays":
            assert value in ALLOWED_RETENTION_DAYS, f"{'.'.join(map(str, path))} = {value!r}"
            checked += 1
        if isinstance(value, dict) and value.get("Key") == "RetentionDays":
            assert int(value["Value"]) in ALLOWED_RETENTION_DAYS, f"{'.'.join(map(str, path))} = {value!r}"
            checked += 1
    assert checked >= 3  # two log groups + the RetentionDays tag


def test_every_logpipe_env_var_is_known(template: dict[str, Any]) -> None:
    names: list[tuple[str, str]] = []
    for path, value in walk(template):
        if len(path) >= 2 and path[-2:] == ("Environment", "Variables") and isinstance(value, dict):
            names.extend((".".join(map(str, path)), key) for key in value)
    logpipe = [(where, name) for where, name in names if name.startswith("LOGPIPE_")]
    assert logpipe, "no LOGPIPE_* variables found - is the walker broken?"
    unknown = [f"{where}.{name}" for where, name in logpipe if name not in LOGPIPE_ENV_ALLOW_LIST]
    assert not unknown, f"unknown LOGPIPE_* environment variables (typo?): {unknown}"


def test_every_reference_resolves(template: dict[str, Any]) -> None:
    known = set(template["Resources"]) | set(template.get("Parameters", {}))
    unresolved = referenced_ids(template) - known
    assert not unresolved, f"dangling references: {sorted(unresolved)}"


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["IngestFunctionArn"]["Value"] == {"Fn::GetAtt": ["IngestFunction", "Arn"]}
    assert outputs["ParkingQueueUrl"]["Value"] == {"Ref": "ParkingQueue"}
    assert outputs["ParkingDeadLetterQueueUrl"]["Value"] == {"Ref": "ParkingDeadLetterQueue"}
    assert outputs["CoreLayerArn"]["Value"] == {"Ref": "CoreLayer"}
