"""The SAM template (template.yaml), as written and as CloudFormation would deploy it.

Two views are tested:

- the template as written (``template``): structure, parameters, mappings, conventions;
- the deployed view (``deployed``): Fn::ForEach and Fn::FindInMap defaults expanded for a
  two-service ``ServiceNames`` value (as the AWS::LanguageExtensions transform does), then the SAM
  transform applied offline by aws-sam-translator. This is what CloudFormation creates, down to the
  function's generated IAM role.

Nothing here calls AWS or the SAM CLI (tests/functional/test_sam_cli.py runs `sam validate`,
`sam build`, cfn-lint and checkov, and cross-checks the expansion below against the SAM CLI's own).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from logpipe.boundary import Boundary
from logpipe.formats import parse_line
from logpipe.health import HEALTH_METRICS, REPLAY_METRICS, HealthMetrics
from logpipe.metrics import MetricAggregator, MetricRule, load_metric_rules
from logpipe.notify.notifier import NOTIFY_METRICS
from logpipe.records import Level, LogRecord, StreamContext

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
GRAFANA_DASHBOARD = REPO_ROOT / "dashboards" / "grafana-pacs-logpipe.json"

PY_RUNTIME = "python3.12"
ARCH = "arm64"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"

# The deployed view: two services, one the PACS metric rules read (streamed whole) and one they do
# not (only its error lines are subscribed on the application group).
TWO_SERVICES = ("pacs-backend", "api")
DEPLOY_PARAMETERS: dict[str, Any] = {
    "Environment": "prod",
    "ServiceNames": list(TWO_SERVICES),
    "RdsInstanceIds": [""],
    "MonitoredBucketNames": [""],
}
PSEUDO_PARAMETERS = {
    "AWS::Region": "ap-northeast-2",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "pacs-logpipe",
}

# Values accepted by CloudWatch Logs PutRetentionPolicy.
ALLOWED_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)

# The design's log types per ECS service: retention parameter, its seed default, and the tags.
LOG_TYPES: dict[str, dict[str, Any]] = {
    "application": {
        "prefix": "Application",
        "parameter": "ApplicationLogRetentionDays",
        "days": 14,
        "tags": {
            "LogType": "application",
            "ExportEnabled": "true",
            "SentrySync": "enabled",
            "LangfuseSync": "disabled",
        },
    },
    "errors": {
        "prefix": "Errors",
        "parameter": "ErrorsLogRetentionDays",
        "days": 90,
        "tags": {"LogType": "errors", "ExportEnabled": "true", "SentrySync": "enabled", "LangfuseSync": "disabled"},
    },
    "llm": {
        "prefix": "Llm",
        "parameter": "LlmLogRetentionDays",
        "days": 60,
        "tags": {"LogType": "llm", "ExportEnabled": "true", "SentrySync": "disabled", "LangfuseSync": "enabled"},
    },
}

SERVICE_LOG_GROUP = "Custom::ServiceLogGroup"
# The pipeline's functions (logical id prefix -> name suffix), each with its own, never subscribed, log group.
PIPELINE_FUNCTIONS = {
    "Ingest": "ingest",
    "Replay": "replay",
    "Exporter": "exporter",
    "ServiceLogGroups": "log-groups",
    "Notify": "notify",
}

# Every LOGPIPE_* environment variable the code reads (layers/core/logpipe/settings.py). A name the
# template sets that is not among them is almost certainly a typo (the code would silently ignore it).
LOGPIPE_ENV_ALLOW_LIST = frozenset(
    re.findall(r'"(LOGPIPE_[A-Z_]+)"', (REPO_ROOT / "layers/core/logpipe/settings.py").read_text(encoding="utf-8"))
)

# Statistics that make sense for a metric unit (an alarm averaging a count is almost always a bug).
# The Sentry DSN secret: the one the stack creates, or the one given as a parameter (its ARN only).
SENTRY_SECRET = {"Fn::If": ["CreateSentrySecret", {"Ref": "SentrySecret"}, {"Ref": "SentrySecretArn"}]}
LANGFUSE_SECRET = {"Fn::If": ["CreateLangfuseSecret", {"Ref": "LangfuseSecret"}, {"Ref": "LangfuseSecretArn"}]}
# What Powertools Idempotency (layers/core/logpipe/idempotency.py) does with its table.
LEDGER_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}

STATISTICS_FOR_UNIT = {"Count": {"Sum", "SampleCount", "Maximum"}, "Milliseconds": {"Average", "Maximum", "p99"}}


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
# AWS::LanguageExtensions, as far as this template uses it
# ---------------------------------------------------------------------------
FOREACH_PREFIX = "Fn::ForEach::"


class ExpansionError(ValueError):
    """The template uses a language extension this expander does not implement."""


def _substitute(node: Any, identifier: str, value: str) -> Any:
    """Replace ${Id} / &{Id} (alphanumerics only) in every string and {"Ref": Id} by the item."""
    if isinstance(node, str):
        return node.replace("${" + identifier + "}", value).replace(
            "&{" + identifier + "}", re.sub(r"[^A-Za-z0-9]", "", value)
        )
    if isinstance(node, list):
        return [_substitute(item, identifier, value) for item in node]
    if isinstance(node, dict):
        if node == {"Ref": identifier}:
            return value
        return {_substitute(key, identifier, value): _substitute(item, identifier, value) for key, item in node.items()}
    return node


def _collection(node: Any, parameters: Mapping[str, Any]) -> list[str]:
    if isinstance(node, list):
        return [str(item) for item in node]
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in parameters:
        return [str(item) for item in parameters[node["Ref"]]]
    raise ExpansionError(f"unsupported Fn::ForEach collection {node!r}")


def _expand_section(section: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    expanded: dict[str, Any] = {}
    for key, value in section.items():
        if not key.startswith(FOREACH_PREFIX):
            expanded[key] = value
            continue
        identifier, collection, fragment = value
        for item in _collection(collection, parameters):
            produced = _expand_section(_substitute(fragment, identifier, item), parameters)
            duplicates = set(produced) & set(expanded)
            if duplicates:
                raise ExpansionError(f"{key} produces duplicate keys {sorted(duplicates)}")
            expanded.update(produced)
    return expanded


def _resolve_language_functions(node: Any, mappings: Mapping[str, Any]) -> Any:
    """Fn::FindInMap with DefaultValue (literal keys) and Ref of Fn::Sub without variables."""
    if isinstance(node, list):
        return [_resolve_language_functions(item, mappings) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _resolve_language_functions(item, mappings) for key, item in node.items()}
    find = node.get("Fn::FindInMap")
    if isinstance(find, list) and len(find) == 4 and all(isinstance(key, str) for key in find[:3]):
        top, second = mappings.get(find[0], {}).get(find[1]), None
        if isinstance(top, dict):
            second = top.get(find[2])
        return find[3]["DefaultValue"] if second is None else second
    ref = node.get("Ref")
    if isinstance(ref, dict) and set(ref) == {"Fn::Sub"} and isinstance(ref["Fn::Sub"], str):
        if "${" in ref["Fn::Sub"]:
            raise ExpansionError(f"Ref of a Fn::Sub with variables: {ref!r}")
        return {"Ref": ref["Fn::Sub"]}
    return node


def expand_language_extensions(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The template after AWS::LanguageExtensions (Fn::ForEach, FindInMap defaults), SAM still to run."""
    expanded = copy.deepcopy(dict(template))
    for section in ("Conditions", "Resources", "Outputs"):
        if section in expanded:
            expanded[section] = _expand_section(expanded[section], parameters)
    expanded = dict(_resolve_language_functions(expanded, expanded.get("Mappings", {})))
    transforms = expanded["Transform"]
    expanded["Transform"] = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    if len(expanded["Transform"]) == 1:
        expanded["Transform"] = expanded["Transform"][0]
    return expanded


def sam_transform(template: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Run aws-sam-translator offline: a fixed region, and no managed policy names to look up."""
    import boto3
    from samtranslator.parser.parser import Parser  # type: ignore[import-untyped]
    from samtranslator.translator.translator import Translator  # type: ignore[import-untyped]

    packaged = copy.deepcopy(dict(template))
    # What `sam package` does first: local code folders become S3 objects.
    for resource in packaged["Resources"].values():
        for uri in ("CodeUri", "ContentUri"):
            local = resource.get("Properties", {}).get(uri)
            if isinstance(local, str) and not local.startswith("s3://"):
                resource["Properties"][uri] = f"s3://artifacts/{local.strip('/')}.zip"
    values = {key: ",".join(value) if isinstance(value, list) else value for key, value in parameters.items()}
    values.update(PSEUDO_PARAMETERS)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="ap-northeast-2"))
    result: dict[str, Any] = translator.translate(packaged, parameter_values=values, get_managed_policy_map=dict)
    return result


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
        if isinstance(sub, list) and len(sub) == 2 and isinstance(sub[1], dict):
            found.difference_update(sub[1])
    return {ref for ref in found if not ref.startswith("AWS::")}


def resources_of_type(template: Mapping[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {
        name: res for name, res in template["Resources"].items() if isinstance(res, dict) and res.get("Type") in types
    }


def resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """Resolve Ref to a parameter (deployed value, else its default) and plain Fn::Sub, for assertions."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda match: str(parameters.get(match[1], match[0])), value["Fn::Sub"])
    return value


def tags_as_dict(tags: Any) -> dict[str, Any]:
    if isinstance(tags, dict):
        return dict(tags)
    return {tag["Key"]: tag["Value"] for tag in tags}


def statements(policy_document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = policy_document.get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = load_cfn_yaml(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "template.yaml must be a mapping"
    return loaded


@pytest.fixture(scope="module")
def parameter_values(template: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's deployed value: the defaults, overridden by DEPLOY_PARAMETERS."""
    values = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    values.update(DEPLOY_PARAMETERS)
    values.update(PSEUDO_PARAMETERS)
    return values


@pytest.fixture(scope="module")
def expanded(template: dict[str, Any]) -> dict[str, Any]:
    return expand_language_extensions(template, DEPLOY_PARAMETERS)


@pytest.fixture(scope="module")
def deployed(expanded: dict[str, Any]) -> dict[str, Any]:
    return sam_transform(expanded, DEPLOY_PARAMETERS)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return resources


@pytest.fixture(scope="module")
def ingest(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fn = resources["IngestFunction"]
    assert fn["Type"] == "AWS::Serverless::Function"
    return fn


@pytest.fixture(scope="module")
def deployed_ingest(deployed: dict[str, Any]) -> dict[str, Any]:
    fn: dict[str, Any] = deployed["Resources"]["IngestFunction"]
    assert fn["Type"] == "AWS::Lambda::Function"
    return fn


# ---------------------------------------------------------------------------
# The loader and the expander themselves
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
        "d": {"Fn::Sub": ["${Local}-${D}", {"Local": "x"}]},
    }
    assert referenced_ids(node) == {"A", "B", "C", "D"}


def test_expander_follows_the_documented_foreach_semantics() -> None:
    """${Id} keeps the item, &{Id} keeps its alphanumerics, Ref Id is the item, nested loops multiply."""
    template = {
        "Transform": [LANGUAGE_EXTENSIONS, SAM_TRANSFORM],
        "Mappings": {"M": {"a-b": {"V": "mapped"}}},
        "Resources": {
            "Fn::ForEach::Outer": [
                "Item",
                {"Ref": "Items"},
                {
                    "Fn::ForEach::Inner": [
                        "Kind",
                        ["x", "y"],
                        {
                            "R&{Item}${Kind}": {
                                "Type": "T",
                                "Properties": {
                                    "Name": {"Fn::Sub": "/${Item}/${Kind}/${AWS::Region}"},
                                    "Raw": {"Ref": "Item"},
                                    "Other": {"Ref": {"Fn::Sub": "R&{Item}x"}},
                                    "Mapped": {"Fn::FindInMap": ["M", {"Ref": "Item"}, "V", {"DefaultValue": "dflt"}]},
                                },
                            }
                        },
                    ]
                },
            ]
        },
    }
    result = expand_language_extensions(template, {"Items": ["a-b", "c"]})
    assert result["Transform"] == SAM_TRANSFORM
    assert sorted(result["Resources"]) == ["Rabx", "Raby", "Rcx", "Rcy"]
    props = result["Resources"]["Raby"]["Properties"]
    assert props["Name"] == {"Fn::Sub": "/a-b/y/${AWS::Region}"}
    assert props["Raw"] == "a-b"
    assert props["Other"] == {"Ref": "Rabx"}
    assert props["Mapped"] == "mapped"
    assert result["Resources"]["Rcx"]["Properties"]["Mapped"] == "dflt"


def test_expander_refuses_what_it_does_not_implement() -> None:
    template = {
        "Transform": [LANGUAGE_EXTENSIONS],
        "Resources": {"Fn::ForEach::L": ["I", {"Fn::Split": [",", "a"]}, {}]},
    }
    with pytest.raises(ExpansionError, match="collection"):
        expand_language_extensions(template, {})


# ---------------------------------------------------------------------------
# Template structure and parameters
# ---------------------------------------------------------------------------
def test_is_a_sam_template_with_language_extensions_first(template: dict[str, Any]) -> None:
    # LanguageExtensions must run before SAM: the SAM transform cannot read Fn::ForEach.
    assert template["Transform"] == [LANGUAGE_EXTENSIONS, SAM_TRANSFORM]


def test_environment_and_service_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["Environment"]["Default"] == "dev"
    assert set(params["Environment"]["AllowedValues"]) == {"dev", "stg", "prod"}
    assert params["LogLevel"]["Default"] == "INFO"
    assert params["ServiceNames"]["Type"] == "CommaDelimitedList"
    assert params["ServiceNames"]["Default"].split(",") == ["pacs-backend", "keycloak", "api", "atlantis"]


def test_retention_parameters_default_to_the_seed_and_allow_only_valid_days(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    for spec in LOG_TYPES.values():
        parameter = params[spec["parameter"]]
        assert parameter["Default"] == spec["days"], spec["parameter"]
        assert set(parameter["AllowedValues"]) == ALLOWED_RETENTION_DAYS, spec["parameter"]
    assert params["LambdaLogRetentionDays"]["Default"] == 14
    assert set(params["LambdaLogRetentionDays"]["AllowedValues"]) == ALLOWED_RETENTION_DAYS


def test_alert_and_credential_parameters(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    email = re.compile(params["AlertEmail"]["AllowedPattern"])
    assert email.fullmatch("")
    assert email.fullmatch("platform@example.com")
    assert not email.fullmatch("not an address")
    # Chat webhook URLs are credentials: they live in Secrets Manager, never in a parameter.
    assert not [name for name in params if "webhook" in name.lower()]
    assert params["NotifyLogContext"]["Default"] == "false"
    assert set(params["NotifyLogContext"]["AllowedValues"]) == {"true", "false"}
    for secret in ("SentrySecretArn", "LangfuseSecretArn"):
        pattern = re.compile(params[secret]["AllowedPattern"])
        assert pattern.fullmatch("")
        assert pattern.fullmatch("arn:aws:secretsmanager:ap-northeast-2:123456789012:secret:logpipe/sentry-AbCdEf")
        assert not pattern.fullmatch("https://key@sentry.example.com/1"), f"{secret} must be an ARN, never the secret"


def test_production_requires_an_alert_email(template: dict[str, Any]) -> None:
    rule = template["Rules"]["ProductionAlertsReachSomeone"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}


def test_log_level_parameter_maps_to_lambda_alc_levels(template: dict[str, Any]) -> None:
    """Every allowed LogLevel must have an Advanced-Logging-Controls level (FindInMap would fail at deploy)."""
    alc_levels = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    mapping = template["Mappings"]["AlcLogLevel"]
    for level in template["Parameters"]["LogLevel"]["AllowedValues"]:
        assert mapping[level]["Level"] in alc_levels, level


# Lambda Advanced Logging Controls levels, least to most severe.
ALC_SEVERITY = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4, "FATAL": 5}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def lambda_keeps(line: str, application_level: str) -> bool:
    """What Lambda does with one stdout line of a JSON-format function: a JSON line without a level is INFO."""
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    level = str(document.get("level", "INFO")) if isinstance(document, dict) else "INFO"
    level = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(level.upper(), level.upper())
    return ALC_SEVERITY.get(level, ALC_SEVERITY["INFO"]) >= ALC_SEVERITY[application_level]


def test_the_log_level_tests_cover_every_allowed_value(template: dict[str, Any]) -> None:
    assert tuple(template["Parameters"]["LogLevel"]["AllowedValues"]) == LOG_LEVELS


@pytest.mark.parametrize("log_level", LOG_LEVELS)
def test_no_allowed_log_level_filters_out_the_metrics(
    template: dict[str, Any],
    deployed: dict[str, Any],
    log_level: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Lambda drops lines below ApplicationLogLevel and reads EMF (no level) as INFO: EMF must survive every value.

    The pipeline's own lines still follow LogLevel: that is POWERTOOLS_LOG_LEVEL, applied by build_logger.
    """
    from logpipe.runtime import build_logger

    functions = resources_of_type(deployed, "AWS::Lambda::Function")
    assert len(functions) >= 3
    for name, function in functions.items():
        props = function["Properties"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON", name
        assert props["LoggingConfig"]["ApplicationLogLevel"] == {
            "Fn::FindInMap": ["AlcLogLevel", {"Ref": "LogLevel"}, "Level"]
        }, name
        assert props["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}, name
    application_level = template["Mappings"]["AlcLogLevel"][log_level]["Level"]
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", application_level)  # what Lambda sets from ApplicationLogLevel
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", log_level)
    logger = build_logger(service=f"log-level-{log_level.lower()}")
    logger.debug("pipeline debug line")
    logger.info("pipeline info line")
    logger.warning("pipeline warning line")
    logger.error("pipeline error line")
    HealthMetrics(environment="prod", namespace="LogPipe", service="logpipe-ingest").publish(Counter(events_in=3))
    rule = load_metric_rules().rules[0]
    for document in _published_pacs_documents(rule, "prod"):
        print(json.dumps(document))  # what the EMF writer puts on stdout
    kept = [line for line in capsys.readouterr().out.splitlines() if lambda_keeps(line, application_level)]
    namespaces = {
        json.loads(line)["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in kept if '"CloudWatchMetrics"' in line
    }
    assert namespaces == {"LogPipe", rule.namespace}, f"LogLevel={log_level} loses metrics"
    severity = ("DEBUG", "INFO", "WARNING", "ERROR").index(log_level)
    for index, word in enumerate(("debug", "info", "warning", "error")):
        shown = any(f"pipeline {word} line" in line for line in kept)
        assert shown == (index >= severity), (
            f"LogLevel={log_level}: the {word} line {'vanished' if shown is False else 'leaked'}"
        )


def test_full_stream_services_are_exactly_the_services_the_metric_rules_read(template: dict[str, Any]) -> None:
    """An application group the rules read must be streamed whole, or INFO/WARN metrics would never arrive."""
    rules = load_metric_rules().rules
    rule_services = set().union(*(rule.services or frozenset() for rule in rules))
    assert rule_services, "the metric rules name no service"
    mapping = template["Mappings"]["FullStreamServices"]
    assert set(mapping) == rule_services
    assert all(entry["FilterPattern"] == "" for entry in mapping.values())


def test_every_parameter_is_used(template: dict[str, Any]) -> None:
    referenced = referenced_ids({key: value for key, value in template.items() if key != "Parameters"})
    unused = set(template["Parameters"]) - referenced
    assert not unused, f"unused parameters: {sorted(unused)}"


def test_every_reference_resolves_after_expansion(expanded: dict[str, Any]) -> None:
    known = set(expanded["Resources"]) | set(expanded.get("Parameters", {}))
    unresolved = referenced_ids(expanded["Resources"]) - known
    assert not unresolved, f"dangling references: {sorted(unresolved)}"
    conditions = set(expanded["Conditions"])
    for name, resource in expanded["Resources"].items():
        if "Condition" in resource:
            assert resource["Condition"] in conditions, name


# ---------------------------------------------------------------------------
# Functions and layer
# ---------------------------------------------------------------------------
def test_every_function_is_python312_on_arm64(deployed: dict[str, Any]) -> None:
    functions = resources_of_type(deployed, "AWS::Lambda::Function")
    assert functions, "template defines no functions"
    for name, fn in functions.items():
        assert fn["Properties"]["Runtime"] == PY_RUNTIME, name
        assert fn["Properties"]["Architectures"] == [ARCH], name


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
    layer_dir = REPO_ROOT / "layers" / "core"
    assert (layer_dir / "requirements.txt").is_file()
    assert (layer_dir / "logpipe" / "__init__.py").is_file()


def test_ingest_function_code_and_handler(ingest: dict[str, Any]) -> None:
    props = ingest["Properties"]
    assert props["Handler"] == "app.lambda_handler"
    assert props["CodeUri"].rstrip("/") == "functions/ingest"
    assert (REPO_ROOT / "functions" / "ingest" / "app.py").is_file()


def test_ingest_function_environment(deployed_ingest: dict[str, Any]) -> None:
    env = deployed_ingest["Properties"]["Environment"]["Variables"]
    assert env["LOGPIPE_PARKING_QUEUE_URL"] == {"Ref": "ParkingQueue"}
    assert env["LOGPIPE_DEAD_LETTER_QUEUE_URL"] == {"Ref": "ParkingDeadLetterQueue"}
    assert env["LOGPIPE_SENTRY_SECRET"] == SENTRY_SECRET
    assert env["LOGPIPE_LANGFUSE_SECRET"] == LANGFUSE_SECRET
    assert env["LOGPIPE_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert env["LOGPIPE_ENVIRONMENT"] == {"Ref": "Environment"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "logpipe-ingest"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LogPipe"
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert deployed_ingest["Properties"]["KmsKeyArn"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}
    (layer,) = deployed_ingest["Properties"]["Layers"]
    assert layer["Ref"].startswith("CoreLayer"), "SAM names the layer version CoreLayer<hash>"


def test_every_logpipe_env_var_is_known(template: dict[str, Any]) -> None:
    assert {"LOGPIPE_ENVIRONMENT", "LOGPIPE_PARKING_QUEUE_URL"} <= LOGPIPE_ENV_ALLOW_LIST, "settings.py moved?"
    names: list[tuple[str, str]] = []
    for path, value in walk(template):
        if len(path) >= 2 and path[-2:] == ("Environment", "Variables") and isinstance(value, dict):
            names.extend((".".join(map(str, path)), key) for key in value)
    logpipe = [(where, name) for where, name in names if name.startswith("LOGPIPE_")]
    assert logpipe, "no LOGPIPE_* variables found - is the walker broken?"
    unknown = [f"{where}.{name}" for where, name in logpipe if name not in LOGPIPE_ENV_ALLOW_LIST]
    assert not unknown, f"unknown LOGPIPE_* environment variables (typo?): {unknown}"


def test_ingest_reliability_settings(deployed: dict[str, Any], deployed_ingest: dict[str, Any]) -> None:
    invoke_configs = resources_of_type(deployed, "AWS::Lambda::EventInvokeConfig")
    assert {str(c["Properties"]["FunctionName"]["Ref"]) for c in invoke_configs.values()} == {
        "IngestFunction",
        "NotifyFunction",
    }
    config = next(
        c["Properties"] for c in invoke_configs.values() if c["Properties"]["FunctionName"] == {"Ref": "IngestFunction"}
    )
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["IngestFailureQueue", "Arn"]}
    # Reserved concurrency is a parameter; -1 (the default) reserves none.
    assert deployed_ingest["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "IngestReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert deployed["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "IngestReservedConcurrency"}, -1]}]
    }


def test_high_volume_mode_uses_an_encrypted_stream_with_partial_batch_failures(deployed: dict[str, Any]) -> None:
    stream = deployed["Resources"]["LogStream"]
    assert stream["Condition"] == "UseKinesis"
    assert stream["Properties"]["StreamEncryption"] == {
        "EncryptionType": "KMS",
        "KeyId": {"Fn::GetAtt": ["PipelineKey", "Arn"]},
    }
    mapping = deployed["Resources"]["IngestStreamMapping"]
    assert mapping["Condition"] == "UseKinesis"
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["LogStream", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["IngestFailureQueue", "Arn"]}
    assert 1 <= props["ParallelizationFactor"] <= 10
    assert props["BatchSize"] <= 10_000


# ---------------------------------------------------------------------------
# Log groups, for a two-service ServiceNames value
# ---------------------------------------------------------------------------
def test_each_service_gets_its_three_log_groups_named_retained_encrypted_and_tagged(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    groups = resources_of_type(deployed, SERVICE_LOG_GROUP)
    by_name = {resolve(group["Properties"]["LogGroupName"], parameter_values): group for group in groups.values()}
    expected_names = {f"/aws/ecs/{service}/{log_type}" for service in TWO_SERVICES for log_type in LOG_TYPES}
    assert expected_names <= set(by_name)
    for service in TWO_SERVICES:
        for log_type, spec in LOG_TYPES.items():
            logical_id = f"{spec['prefix']}LogGroup{service.replace('-', '')}"
            group = groups[logical_id]
            props = group["Properties"]
            assert resolve(props["LogGroupName"], parameter_values) == f"/aws/ecs/{service}/{log_type}"
            assert props["RetentionInDays"] == {"Ref": spec["parameter"]}
            assert resolve(props["RetentionInDays"], parameter_values) == spec["days"]
            assert props["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}
            tags = tags_as_dict(props["Tags"])
            assert {key: tags[key] for key in spec["tags"]} == spec["tags"], logical_id
            assert tags["RetentionDays"] == props["RetentionInDays"], logical_id
            assert tags["Service"] == service
            assert tags["Environment"] == {"Ref": "Environment"}
            assert tags["Project"] == "pacs-logpipe"
            # Created, or adopted when the service already logs there (an AWS::Logs::LogGroup would fail).
            assert props["ServiceToken"] == {"Fn::GetAtt": ["ServiceLogGroupsFunction", "Arn"]}
            assert 60 <= int(props["ServiceTimeout"]) <= 3600
            # Log data outlives the stack: deleting the stack never deletes a group; a rolled-back first deploy
            # undoes what it did (logpipe.service_log_groups).
            assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_a_failed_first_deploy_cleans_up_after_itself(deployed: dict[str, Any]) -> None:
    """Retain would leave keys, bucket and groups behind a rolled-back first deploy, blocking the retry."""
    policies = {name: resource.get("DeletionPolicy", "Delete") for name, resource in deployed["Resources"].items()}
    assert "Retain" not in policies.values(), sorted(name for name, policy in policies.items() if policy == "Retain")
    data = {"LogsKey", "PipelineKey", "ExportBucket", *resources_of_type(deployed, SERVICE_LOG_GROUP)}
    for name in data:
        assert policies[name] == "RetainExceptOnCreate", name
        assert deployed["Resources"][name]["UpdateReplacePolicy"] == "Retain", name


def test_the_service_log_groups_provider_may_touch_only_the_service_groups(deployed: dict[str, Any]) -> None:
    function = deployed["Resources"]["ServiceLogGroupsFunction"]["Properties"]
    assert function["Handler"] == "app.lambda_handler"
    role = deployed["Resources"][function["Role"]["Fn::GetAtt"][0]]["Properties"]
    granted = {
        action: as_list(statement["Resource"])
        for policy in role["Policies"]
        for statement in statements(policy["PolicyDocument"])
        for action in as_list(statement["Action"])
    }
    service_groups = [{"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/ecs/*"}]
    for action in ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:AssociateKmsKey", "logs:TagResource"):
        assert granted[action] == service_groups, action
    # Every CloudWatch Logs call the provider makes is granted (the code is the list).
    source = (REPO_ROOT / "layers/core/logpipe/service_log_groups.py").read_text(encoding="utf-8")
    called = {
        "logs:" + "".join(part.capitalize() for part in name.split("_"))
        for name in re.findall(
            r"\.(create_log_group|delete_log_group|put_retention_policy|delete_retention_policy|"
            r"associate_kms_key|disassociate_kms_key|tag_resource|untag_resource|list_tags_for_resource)\(",
            source,
        )
    } | {"logs:DescribeLogGroups"}
    assert len(called) == 10, sorted(called)
    assert called <= set(granted), sorted(called - set(granted))


@pytest.mark.parametrize("function", PIPELINE_FUNCTIONS)
def test_the_pipelines_own_log_groups_are_encrypted_retained_and_explicit(
    deployed: dict[str, Any], parameter_values: dict[str, Any], function: str
) -> None:
    fn = deployed["Resources"][f"{function}Function"]["Properties"]
    assert fn["LoggingConfig"]["LogGroup"] == {"Ref": f"{function}FunctionLogGroup"}
    props = deployed["Resources"][f"{function}FunctionLogGroup"]["Properties"]
    expected = f"pacs-logpipe-{PIPELINE_FUNCTIONS[function]}"
    assert resolve(props["LogGroupName"], parameter_values) == f"/aws/lambda/{expected}"
    assert resolve(fn["FunctionName"], parameter_values) == expected
    assert resolve(props["RetentionInDays"], parameter_values) == 14
    assert props["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}


def test_every_log_group_is_encrypted_with_the_logs_key_and_validly_retained(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    groups = resources_of_type(deployed, "AWS::Logs::LogGroup", SERVICE_LOG_GROUP)
    assert len(groups) == 3 * len(TWO_SERVICES) + len(PIPELINE_FUNCTIONS)
    for name, group in groups.items():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}, name
        assert resolve(group["Properties"]["RetentionInDays"], parameter_values) in ALLOWED_RETENTION_DAYS, name


def test_logs_key_policy_is_scoped_to_cloudwatch_logs_without_a_cycle(deployed: dict[str, Any]) -> None:
    key = deployed["Resources"]["LogsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    logs_statements = [
        statement
        for statement in statements(key["KeyPolicy"])
        if statement["Principal"].get("Service") == {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}
    ]
    assert len(logs_statements) == 1
    statement = logs_statements[0]
    assert set(statement["Action"]) == {
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
    }
    arns = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert all(set(arn) == {"Fn::Sub"} for arn in arns), "build the ARNs with !Sub (GetAtt would be a cycle)"
    assert any("log-group:/aws/ecs/*" in arn["Fn::Sub"] for arn in arns)
    # No reference from the key policy to any log group: that would be a circular dependency.
    groups = set(resources_of_type(deployed, "AWS::Logs::LogGroup"))
    assert referenced_ids(key["KeyPolicy"]).isdisjoint(groups)
    alias = deployed["Resources"]["LogsKeyAlias"]["Properties"]
    assert alias["TargetKeyId"] == {"Ref": "LogsKey"}


# ---------------------------------------------------------------------------
# Subscriptions and the single permission
# ---------------------------------------------------------------------------
def test_every_service_group_is_subscribed_once_to_the_ingest_route(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    filters = resources_of_type(deployed, "AWS::Logs::SubscriptionFilter")
    assert len(filters) == 3 * len(TWO_SERVICES)
    subscribed: Counter[str] = Counter()
    for name, subscription in filters.items():
        props = subscription["Properties"]
        target = deployed["Resources"][props["LogGroupName"]["Ref"]]
        group_name = resolve(target["Properties"]["LogGroupName"], parameter_values)
        subscribed[group_name] += 1
        assert props["DestinationArn"] == {
            "Fn::If": ["UseKinesis", {"Fn::GetAtt": ["LogStream", "Arn"]}, {"Fn::GetAtt": ["IngestFunction", "Arn"]}]
        }, name
        assert props["RoleArn"] == {
            "Fn::If": ["UseKinesis", {"Fn::GetAtt": ["LogsToStreamRole", "Arn"]}, {"Ref": "AWS::NoValue"}]
        }, name
        assert "IngestInvokePermission" in as_list(subscription["DependsOn"]), name
    assert set(subscribed) == {f"/aws/ecs/{s}/{t}" for s in TWO_SERVICES for t in LOG_TYPES}
    assert set(subscribed.values()) == {1}, "a group has at most 2 subscription filters: use one"


def test_filter_patterns_cut_cost_only_where_nothing_is_lost(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    filters = resources_of_type(deployed, "AWS::Logs::SubscriptionFilter")
    by_group = {
        resolve(
            deployed["Resources"][f["Properties"]["LogGroupName"]["Ref"]]["Properties"]["LogGroupName"],
            parameter_values,
        ): f["Properties"]["FilterPattern"]
        for f in filters.values()
    }
    # pacs-backend feeds the PACS metric rules: its application lines all go.
    assert by_group["/aws/ecs/pacs-backend/application"] == ""
    # api feeds no metric rule: only its error lines are routed.
    assert by_group["/aws/ecs/api/application"] == {"Ref": "ErrorsOnlyFilterPattern"}
    errors_only = parameter_values["ErrorsOnlyFilterPattern"]
    assert "?ERROR" in errors_only.split()
    assert "?error" in errors_only.split()
    for service in TWO_SERVICES:
        assert by_group[f"/aws/ecs/{service}/errors"] == "", "error groups hold trace continuations too"
        assert by_group[f"/aws/ecs/{service}/llm"] == ""


def test_one_wildcard_lambda_permission_instead_of_one_per_group(deployed: dict[str, Any]) -> None:
    permissions = resources_of_type(deployed, "AWS::Lambda::Permission")
    from_logs = [name for name, p in permissions.items() if "logs." in json.dumps(p["Properties"]["Principal"])]
    assert from_logs == ["IngestInvokePermission"], "one permission per group overflows the 20 KB policy"
    # The only other one: SNS (the alert topic) invoking the notifier.
    notify = permissions["NotifyFunctionAlertTopicPermission"]["Properties"]
    assert (notify["Principal"], notify["SourceArn"]) == ("sns.amazonaws.com", {"Ref": "AlertTopic"})
    assert set(permissions) == {"IngestInvokePermission", "NotifyFunctionAlertTopicPermission"}
    props = permissions["IngestInvokePermission"]["Properties"]
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["FunctionName"] == {"Fn::GetAtt": ["IngestFunction", "Arn"]}
    assert props["Principal"] == {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    condition, account_wide, ecs_only = props["SourceArn"]["Fn::If"]
    assert condition == "UseAccountSubscriptionPolicy"
    assert account_wide["Fn::Sub"].endswith(":log-group:*")
    assert ecs_only["Fn::Sub"].endswith(":log-group:/aws/ecs/*")


def test_pipeline_log_groups_are_never_subscribed(deployed: dict[str, Any], parameter_values: dict[str, Any]) -> None:
    """Subscribing the pipeline's own logs would feed its output back into itself."""
    filters = resources_of_type(deployed, "AWS::Logs::SubscriptionFilter")
    assert filters
    for name, subscription in filters.items():
        target = deployed["Resources"][subscription["Properties"]["LogGroupName"]["Ref"]]
        group_name = resolve(target["Properties"]["LogGroupName"], parameter_values)
        assert not group_name.startswith("/aws/lambda/"), f"{name} subscribes a Lambda log group ({group_name})"
    functions = resources_of_type(deployed, "AWS::Lambda::Function")
    assert all("Events" not in fn["Properties"] for fn in functions.values())
    # The notifier is the one function SNS invokes; nothing delivers log data to it.
    subscriptions = resources_of_type(deployed, "AWS::SNS::Subscription", "AWS::Logs::SubscriptionFilter")
    assert not [
        name
        for name, sub in subscriptions.items()
        if sub["Type"] == "AWS::Logs::SubscriptionFilter"
        and "NotifyFunction" in referenced_ids(sub["Properties"]["DestinationArn"])
    ]


def test_account_level_subscription_policy_excludes_the_pipeline_and_subscribed_groups(
    deployed: dict[str, Any],
) -> None:
    policy = deployed["Resources"]["AccountSubscriptionFilterPolicy"]
    assert policy["Condition"] == "UseAccountSubscriptionPolicy"
    props = policy["Properties"]
    assert props["PolicyType"] == "SUBSCRIPTION_FILTER_POLICY"
    template_string, variables = props["SelectionCriteria"]["Fn::Sub"]
    rendered = template_string.replace("${AWS::StackName}", "pacs-logpipe")
    for name, join in variables.items():
        separator, _ = join["Fn::Join"]
        rendered = rendered.replace("${" + name + "}", separator.join(TWO_SERVICES))
    excluded = json.loads(rendered.removeprefix("LogGroupName NOT IN "))
    assert {
        "/aws/lambda/pacs-logpipe-ingest",
        "/aws/lambda/pacs-logpipe-replay",
        "/aws/lambda/pacs-logpipe-exporter",
        "/aws/lambda/pacs-logpipe-notify",
    } <= set(excluded)
    assert {f"/aws/ecs/{s}/{t}" for s in TWO_SERVICES for t in LOG_TYPES} <= set(excluded)
    assert len(excluded) <= 50, "the selection criteria hold at most 50 names"


# ---------------------------------------------------------------------------
# Queues, table, secrets
# ---------------------------------------------------------------------------
def test_parking_queue_redrives_to_dlq(deployed: dict[str, Any]) -> None:
    queue = deployed["Resources"]["ParkingQueue"]
    dlq = deployed["Resources"]["ParkingDeadLetterQueue"]
    assert queue["Type"] == dlq["Type"] == "AWS::SQS::Queue"
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ParkingDeadLetterQueue", "Arn"]}
    assert "RedrivePolicy" not in dlq["Properties"], "the DLQ must be the end of the chain"


def test_only_the_replay_horizon_sends_an_undeliverable_item_to_the_dlq(
    template: dict[str, Any], deployed: dict[str, Any]
) -> None:
    """The redrive count is a safety net above every receive an item can reach within the longest horizon."""
    from logpipe.replay import max_receives_within
    from logpipe.settings import DEFAULT_REPLAY_HORIZON_HOURS, MAX_REPLAY_HORIZON_HOURS

    horizon = template["Parameters"]["ReplayHorizonHours"]
    assert horizon["Default"] == DEFAULT_REPLAY_HORIZON_HOURS
    assert horizon["MaxValue"] == MAX_REPLAY_HORIZON_HOURS
    redrive = deployed["Resources"]["ParkingQueue"]["Properties"]["RedrivePolicy"]
    worst = max_receives_within(MAX_REPLAY_HORIZON_HOURS * 3600)
    # + room for not-yet-due receives and the odd crashed invocation; SQS allows at most 1000.
    assert worst + 20 <= redrive["maxReceiveCount"] <= 1000
    replay = deployed["Resources"]["ReplayFunction"]["Properties"]["Environment"]["Variables"]
    assert replay["LOGPIPE_REPLAY_HORIZON_HOURS"] == {"Ref": "ReplayHorizonHours"}


def test_queue_retention_and_visibility(deployed: dict[str, Any], deployed_ingest: dict[str, Any]) -> None:
    fourteen_days = 14 * 24 * 60 * 60
    for name in ("ParkingQueue", "ParkingDeadLetterQueue", "IngestFailureQueue"):
        assert deployed["Resources"][name]["Properties"]["MessageRetentionPeriod"] == fourteen_days, name
    timeout = deployed_ingest["Properties"]["Timeout"]
    assert deployed["Resources"]["ParkingQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_every_queue_refuses_plain_http(deployed: dict[str, Any]) -> None:
    queues = set(resources_of_type(deployed, "AWS::SQS::Queue"))
    policies = resources_of_type(deployed, "AWS::SQS::QueuePolicy")
    covered: set[str] = set()
    for policy in policies.values():
        denies = [
            s
            for s in statements(policy["Properties"]["PolicyDocument"])
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        if denies:
            covered.update(ref["Ref"] for ref in policy["Properties"]["Queues"])
    assert covered == queues


def test_idempotency_table_matches_powertools_layout(deployed: dict[str, Any]) -> None:
    props = deployed["Resources"]["IdempotencyTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_secrets_are_created_empty_unless_given_and_never_hold_a_value(deployed: dict[str, Any]) -> None:
    for name, condition, parameter in (
        ("SentrySecret", "CreateSentrySecret", "SentrySecretArn"),
        ("LangfuseSecret", "CreateLangfuseSecret", "LangfuseSecretArn"),
    ):
        secret = deployed["Resources"][name]
        assert secret["Condition"] == condition
        assert deployed["Conditions"][condition] == {"Fn::Equals": [{"Ref": parameter}, ""]}
        assert "SecretString" not in secret["Properties"], "a secret value in the template leaks it"
        assert "GenerateSecretString" not in secret["Properties"]
        output = deployed["Outputs"][parameter]["Value"]
        assert output == {"Fn::If": [condition, {"Ref": name}, {"Ref": parameter}]}


def test_every_queue_topic_table_bucket_stream_and_secret_is_kms_encrypted(deployed: dict[str, Any]) -> None:
    key_refs = ({"Ref": "PipelineKey"}, {"Fn::GetAtt": ["PipelineKey", "Arn"]})
    checks: dict[str, Callable[[dict[str, Any]], Any]] = {
        "AWS::SQS::Queue": lambda p: p.get("KmsMasterKeyId"),
        "AWS::SNS::Topic": lambda p: p.get("KmsMasterKeyId"),
        "AWS::DynamoDB::Table": lambda p: (
            p["SSESpecification"]["KMSMasterKeyId"]
            if p.get("SSESpecification", {}).get("SSEEnabled") and p["SSESpecification"].get("SSEType") == "KMS"
            else None
        ),
        "AWS::Kinesis::Stream": lambda p: p.get("StreamEncryption", {}).get("KeyId"),
        "AWS::SecretsManager::Secret": lambda p: p.get("KmsKeyId"),
        "AWS::S3::Bucket": lambda p: (
            p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"].get(
                "KMSMasterKeyID"
            )
            if "BucketEncryption" in p
            else None
        ),
    }
    checked: Counter[str] = Counter()
    for resource_type, key_of in checks.items():
        for name, resource in resources_of_type(deployed, resource_type).items():
            assert key_of(resource["Properties"]) in key_refs, f"{name} ({resource_type}) is not KMS-encrypted"
            checked[resource_type] += 1
    assert checked["AWS::SQS::Queue"] == 4
    assert checked["AWS::SNS::Topic"] == 1
    assert checked["AWS::DynamoDB::Table"] == 1
    assert checked["AWS::S3::Bucket"] == 1
    assert checked["AWS::Kinesis::Stream"] == 1
    assert checked["AWS::SecretsManager::Secret"] == 4
    rotation = [r["Properties"]["EnableKeyRotation"] for r in resources_of_type(deployed, "AWS::KMS::Key").values()]
    assert rotation == [True, True]


# ---------------------------------------------------------------------------
# IAM: least privilege
# ---------------------------------------------------------------------------
def _iam_statements(deployed: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in resources_of_type(
        deployed, "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"
    ).items():
        props = resource["Properties"]
        documents = [policy["PolicyDocument"] for policy in _flatten_if(props.get("Policies", []))]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in statements(document):
                yield name, statement


def _flatten_if(policies: list[Any]) -> Iterator[dict[str, Any]]:
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            branch = policy["Fn::If"][1]
            if branch != {"Ref": "AWS::NoValue"}:
                yield branch
        else:
            yield policy


def test_no_iam_statement_allows_every_action(deployed: dict[str, Any]) -> None:
    found = list(_iam_statements(deployed))
    assert len(found) >= 4, "expected the function role's and the stream role's statements"
    for name, statement in found:
        actions = as_list(statement.get("Action", []))
        assert "*" not in actions, f"{name} allows Action '*'"
        assert not any(str(action).endswith(":*") for action in actions), f"{name} allows a whole service: {actions}"
        assert "NotAction" not in statement, f"{name} uses NotAction"


def test_ingest_role_lists_only_what_the_function_uses(deployed: dict[str, Any]) -> None:
    role = deployed["Resources"]["IngestFunctionRole"]["Properties"]
    # Managed policies: the basic execution role (its own log group) and X-Ray writes (Tracing).
    assert {str(arn).rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]} == {
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    }
    allowed_resources = {
        "ParkingQueue",
        "ParkingDeadLetterQueue",
        "IngestFailureQueue",
        "PipelineKey",
        "LogStream",
        "SentrySecret",
        "SentrySecretArn",
        "LangfuseSecret",
        "LangfuseSecretArn",
        "IdempotencyTable",
    }
    actions: set[str] = set()
    for policy in _flatten_if(role["Policies"]):
        for statement in statements(policy["PolicyDocument"]):
            assert statement["Effect"] == "Allow"
            actions.update(as_list(statement["Action"]))
            refs = referenced_ids(statement["Resource"])
            assert refs, f"{statement} is not bound to a resource of this stack"
            assert refs <= allowed_resources, f"{statement} reaches beyond its queues, key and stream"
    assert {"sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt", "kinesis:GetRecords"} <= actions
    assert {a for a in actions if a.startswith("secretsmanager:")} == {"secretsmanager:GetSecretValue"}
    assert {a for a in actions if a.startswith("dynamodb:")} == LEDGER_ACTIONS
    assert not any(action.startswith(("s3:", "logs:", "ssm:", "sqs:Receive", "sqs:Delete")) for action in actions)
    _assert_ledger_and_langfuse_secret_grants(role)


def test_replay_consumes_the_parking_queue_with_partial_batch_responses(deployed: dict[str, Any]) -> None:
    fn = deployed["Resources"]["ReplayFunction"]["Properties"]
    assert fn["Handler"] == "app.lambda_handler"
    assert (REPO_ROOT / "functions" / "replay" / "app.py").is_file()
    env = fn["Environment"]["Variables"]
    assert env["LOGPIPE_PARKING_QUEUE_URL"] == {"Ref": "ParkingQueue"}
    assert env["LOGPIPE_DEAD_LETTER_QUEUE_URL"] == {"Ref": "ParkingDeadLetterQueue"}
    assert env["LOGPIPE_SENTRY_SECRET"] == SENTRY_SECRET
    (mapping,) = [
        m
        for m in resources_of_type(deployed, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "ReplayFunction"}
    ]
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["ParkingQueue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Messages stay invisible while a replay invocation works on them (>= 6 x the function timeout).
    visibility = deployed["Resources"]["ParkingQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * fn["Timeout"]
    role = deployed["Resources"]["ReplayFunctionRole"]["Properties"]
    actions: set[str] = set()
    for policy in _flatten_if(role["Policies"]):
        for statement in statements(policy["PolicyDocument"]):
            actions.update(as_list(statement["Action"]))
            assert referenced_ids(statement["Resource"]) <= {
                "ParkingQueue",
                "ParkingDeadLetterQueue",
                "PipelineKey",
                "SentrySecret",
                "SentrySecretArn",
                "LangfuseSecret",
                "LangfuseSecretArn",
                "IdempotencyTable",
            }, statement
    assert {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage*", "kms:Decrypt"} <= actions
    # Not AWSLambdaSQSQueueExecutionRole (receive and delete on every queue), which a SAM SQS event adds.
    assert {str(arn).rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]} == {
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    }
    assert {"secretsmanager:GetSecretValue"} == {a for a in actions if a.startswith("secretsmanager:")}
    assert {a for a in actions if a.startswith("dynamodb:")} == LEDGER_ACTIONS
    assert env["LOGPIPE_LANGFUSE_SECRET"] == LANGFUSE_SECRET
    assert env["LOGPIPE_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    _assert_ledger_and_langfuse_secret_grants(role)


def _assert_ledger_and_langfuse_secret_grants(role: Mapping[str, Any]) -> None:
    """The ledger actions reach only the idempotency table; the Langfuse secret is readable."""
    ledger_resources: list[Any] = []
    secret_resources: list[Any] = []
    for policy in _flatten_if(role["Policies"]):
        for statement in statements(policy["PolicyDocument"]):
            actions = set(as_list(statement["Action"]))
            if actions & LEDGER_ACTIONS:
                assert actions == LEDGER_ACTIONS, statement
                ledger_resources.extend(as_list(statement["Resource"]))
            if "secretsmanager:GetSecretValue" in actions:
                secret_resources.append(statement["Resource"])
    assert ledger_resources == [{"Fn::GetAtt": ["IdempotencyTable", "Arn"]}]
    # SAM's AWSSecretsManagerGetSecretValuePolicy renders the ARN as Fn::Sub ["${secretArn}", {secretArn: ...}].
    assert {"Fn::Sub": ["${secretArn}", {"secretArn": LANGFUSE_SECRET}]} in secret_resources


def test_stream_role_can_only_put_records(deployed: dict[str, Any]) -> None:
    role = deployed["Resources"]["LogsToStreamRole"]
    assert role["Condition"] == "UseKinesis"
    trust = statements(role["Properties"]["AssumeRolePolicyDocument"])[0]
    assert trust["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    assert "aws:SourceArn" in trust["Condition"]["StringLike"]
    actions = {action for _, s in _iam_statements({"Resources": {"R": role}}) for action in as_list(s["Action"])}
    assert actions == {"kinesis:PutRecord", "kinesis:PutRecords", "kms:GenerateDataKey"}


# ---------------------------------------------------------------------------
# Alarms, tied to what the code publishes
# ---------------------------------------------------------------------------
def _synthetic_line(rule: MetricRule) -> str:
    """A JSON log line that the rule's first alternative matches."""
    matcher = rule.when[0]
    document: dict[str, Any] = {"message": matcher.message or matcher.message_prefix or "synthetic"}
    if matcher.levels:
        document["level"] = min(level.value for level in matcher.levels)
    for field in (*matcher.has_fields, *rule.positional_fields):
        document[field] = 42
    document.update(dict(matcher.fields))
    return json.dumps(document)


def _published_pacs_documents(rule: MetricRule, environment: str) -> list[dict[str, Any]]:
    """The EMF documents the metric code renders for one matching record of the rule's first service."""
    service = min(rule.services or {"pacs-backend"})
    now_ms = 1_795_300_000_000
    context = StreamContext(
        f"/aws/ecs/{service}/application", "s", "1", "ap-northeast-2", "ecs", service, "application", environment
    )
    line = _synthetic_line(rule)
    parsed = parse_line(line)
    record = LogRecord(
        now_ms,
        parsed.level or Level.INFO,
        parsed.message,
        service,
        environment,
        parsed.request_id,
        parsed.fields,
        parsed.exception,
        "1",
        context,
        parsed.format,
        parsed.logger,
        line,
    )
    aggregator = MetricAggregator(load_metric_rules())
    aggregator.observe(record)
    documents = list(aggregator.documents(now_ms))
    assert documents, f"the rule {rule.name} did not match its own synthetic line {line}"
    return documents


def _alarm_dimensions(alarm: Mapping[str, Any], parameter_values: Mapping[str, Any]) -> dict[str, Any]:
    return {d["Name"]: resolve(d["Value"], parameter_values) for d in alarm["Properties"].get("Dimensions", [])}


def test_pacs_alarms_match_the_seed_thresholds(deployed: dict[str, Any]) -> None:
    errors = deployed["Resources"]["PacsBackendErrorRateAlarm"]["Properties"]
    assert (errors["MetricName"], errors["Statistic"], errors["Period"], errors["EvaluationPeriods"]) == (
        "PACSBackendErrors",
        "Sum",
        300,
        2,
    )
    assert (errors["Threshold"], errors["ComparisonOperator"]) == (10, "GreaterThanThreshold")
    latency = deployed["Resources"]["PacsBackendResponseTimeAlarm"]["Properties"]
    assert (latency["MetricName"], latency["Statistic"], latency["Period"], latency["EvaluationPeriods"]) == (
        "PACSBackendResponseTime",
        "Average",
        300,
        2,
    )
    assert (latency["Threshold"], latency["ComparisonOperator"]) == (5000, "GreaterThanThreshold")


def test_every_pacs_alarm_watches_a_series_the_emf_code_publishes(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    rules = {rule.name: rule for rule in load_metric_rules().rules}
    namespaces = {rule.namespace for rule in rules.values()}
    alarms = {
        name: alarm
        for name, alarm in resources_of_type(deployed, "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("Namespace") in namespaces
    }
    assert {"PacsBackendErrorRateAlarm", "PacsBackendResponseTimeAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        rule = rules.get(props["MetricName"])
        assert rule is not None, f"{name} watches {props['MetricName']}, which no metric rule publishes"
        assert props["Namespace"] == rule.namespace, name
        assert props["Statistic"] in STATISTICS_FOR_UNIT[rule.unit], f"{name}: {props['Statistic']} of a {rule.unit}"
        dimensions = _alarm_dimensions(alarm, parameter_values)
        published = [
            (directive["Namespace"], set(metric_set), {m["Name"] for m in directive["Metrics"]}, document)
            for document in _published_pacs_documents(rule, "prod")
            for directive in document["_aws"]["CloudWatchMetrics"]
            for metric_set in directive["Dimensions"]
        ]
        matching = [
            document
            for namespace, dimension_names, metric_names, document in published
            if namespace == props["Namespace"]
            and props["MetricName"] in metric_names
            and dimension_names == set(dimensions)
        ]
        assert matching, f"{name}: no EMF series {props['Namespace']}/{props['MetricName']} with {sorted(dimensions)}"
        for key, value in dimensions.items():
            assert matching[0][key] == value, f"{name}: dimension {key}"


def test_every_pipeline_health_alarm_watches_a_series_the_function_publishes(
    deployed: dict[str, Any],
    deployed_ingest: dict[str, Any],
    parameter_values: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = deployed_ingest["Properties"]["Environment"]["Variables"]
    namespace = env["POWERTOOLS_METRICS_NAMESPACE"]
    service = env["POWERTOOLS_SERVICE_NAME"]
    environment = parameter_values["Environment"]
    HealthMetrics(environment=environment, namespace=namespace, service=service).publish(Counter())
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    assert documents, "the health metrics printed no EMF"
    exporter_metrics = {name for _, name, _ in _exporter_emf_series("prod")}
    alarms = {
        name: alarm
        for name, alarm in resources_of_type(deployed, "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("Namespace") == namespace
        and alarm["Properties"]["MetricName"] not in exporter_metrics
        and alarm["Properties"]["MetricName"] not in NOTIFY_METRICS.values()
    }
    assert {"IngestProcessingErrorsAlarm", "IngestMalformedPayloadsAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["MetricName"] in HEALTH_METRICS.values(), f"{name}: {props['MetricName']} is not published"
        assert props["Statistic"] == "Sum", name
        dimensions = _alarm_dimensions(alarm, parameter_values)
        matching = [
            document
            for document in documents
            for directive in document["_aws"]["CloudWatchMetrics"]
            if directive["Namespace"] == namespace
            and props["MetricName"] in {m["Name"] for m in directive["Metrics"]}
            and any(set(metric_set) == set(dimensions) for metric_set in directive["Dimensions"])
        ]
        assert matching, f"{name}: no EMF series {namespace}/{props['MetricName']} with {sorted(dimensions)}"
        for key, value in dimensions.items():
            assert matching[0][key] == value, f"{name}: dimension {key}"


def test_every_alarm_notifies_pacs_alerts(deployed: dict[str, Any]) -> None:
    alarms = resources_of_type(deployed, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 12
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlertTopic"}], name
        assert props["OKActions"] == [{"Ref": "AlertTopic"}], name
        assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
        assert props["TreatMissingData"] == "notBreaching", name
    assert deployed["Resources"]["AlertTopic"]["Properties"]["TopicName"] == "pacs-alerts"


def test_pipeline_health_alarms_cover_errors_throttles_dlq_and_retry_age(deployed: dict[str, Any]) -> None:
    watched = {
        (
            a["Properties"].get("Namespace"),
            a["Properties"].get("MetricName"),
            tuple(referenced_ids(a["Properties"].get("Dimensions", []))),
        )
        for a in resources_of_type(deployed, "AWS::CloudWatch::Alarm").values()
    }
    assert ("AWS/Lambda", "Errors", ("IngestFunction",)) in watched
    assert ("AWS/Lambda", "Throttles", ("IngestFunction",)) in watched
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", ("ParkingDeadLetterQueue",)) in watched
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", ("IngestFailureQueue",)) in watched
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", ("ParkingQueue",)) in watched
    dlq = deployed["Resources"]["ParkingDeadLetterDepthAlarm"]["Properties"]
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_infrastructure_alarms_exist_only_where_named(template: dict[str, Any]) -> None:
    named = expand_language_extensions(
        template,
        DEPLOY_PARAMETERS | {"RdsInstanceIds": ["pacs-postgresql"], "MonitoredBucketNames": ["pacs-storage"]},
    )
    rds_cpu = named["Resources"]["RdsCpuAlarmpacspostgresql"]["Properties"]
    assert rds_cpu["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": "pacs-postgresql"}]
    assert (rds_cpu["MetricName"], rds_cpu["Threshold"], rds_cpu["EvaluationPeriods"]) == ("CPUUtilization", 80, 2)
    connections = named["Resources"]["RdsConnectionsAlarmpacspostgresql"]["Properties"]
    assert (connections["MetricName"], connections["Threshold"]) == ("DatabaseConnections", 80)
    bucket = named["Resources"]["BucketSizeAlarmpacsstorage"]["Properties"]
    assert (bucket["MetricName"], bucket["Threshold"], bucket["Period"]) == ("BucketSizeBytes", 100_000_000_000, 86400)
    ecs = named["Resources"]["EcsCpuAlarmpacsbackend"]
    assert ecs["Condition"] == "HasEcsCluster"
    assert {d["Name"] for d in ecs["Properties"]["Dimensions"]} == {"ClusterName", "ServiceName"}
    # Unnamed (the default, an empty list): the alarms are switched off by their conditions.
    assert named["Conditions"]["HasRdsInstances"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "RdsInstanceIds"}]}, ""]}]
    }
    for name in ("RdsCpuAlarmpacspostgresql", "RdsConnectionsAlarmpacspostgresql"):
        assert named["Resources"][name]["Condition"] == "HasRdsInstances"
    assert named["Resources"]["BucketSizeAlarmpacsstorage"]["Condition"] == "HasMonitoredBuckets"


# ---------------------------------------------------------------------------
# SNS
# ---------------------------------------------------------------------------
def test_alert_topic_subscriptions_and_policy(deployed: dict[str, Any]) -> None:
    subscriptions = resources_of_type(deployed, "AWS::SNS::Subscription")
    protocols = {name: (s["Properties"]["Protocol"], s.get("Condition")) for name, s in subscriptions.items()}
    assert protocols == {
        "AlertEmailSubscription": ("email", "HasAlertEmail"),
        "NotifyFunctionAlertTopic": ("lambda", None),
    }
    policy = deployed["Resources"]["AlertTopicPolicy"]["Properties"]["PolicyDocument"]
    publish = [s for s in statements(policy) if s["Effect"] == "Allow"]
    assert publish[0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements(policy)
    )
    # The alarms publish to a KMS-encrypted topic: the key must let CloudWatch use it.
    key_statements = statements(deployed["Resources"]["PipelineKey"]["Properties"]["KeyPolicy"])
    assert any(s["Principal"].get("Service") == "cloudwatch.amazonaws.com" for s in key_statements)


# ---------------------------------------------------------------------------
# Dashboard and Logs Insights queries
# ---------------------------------------------------------------------------
def test_dashboard_shows_every_pacs_metric_and_the_pipeline_health(deployed: dict[str, Any]) -> None:
    body = deployed["Resources"]["PipelineDashboard"]["Properties"]["DashboardBody"]["Fn::ToJsonString"]
    series = {
        (metric[0], metric[1])
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for metric in widget["properties"]["metrics"]
        if isinstance(metric[0], str)  # [namespace, name, ...]; Metrics Insights entries: the exporter test
    }
    for rule in load_metric_rules().rules:
        assert (rule.namespace, rule.name) in series, rule.name
    # The exporter's series (test_dashboard_charts_every_exporter_series) are the other LogPipe metrics.
    exporter_metrics = {metric for _, metric, _ in _exporter_emf_series("prod")}
    # the ingest, replay and notify functions'
    published = {*HEALTH_METRICS.values(), *REPLAY_METRICS.values(), *NOTIFY_METRICS.values()}
    for namespace, metric in series:
        if namespace == "LogPipe" and metric not in exporter_metrics:
            assert metric in published, metric
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert {"PacsBackendErrorRateAlarm", "ParkingDeadLetterDepthAlarm"} <= referenced_ids(alarm_widget)


SEED_QUERIES = {
    "ErrorSearchQuery": ("filter @message like /ERROR/", {"errors", "application"}),
    "RequestIdTraceQuery": ("request_id", {"errors", "application", "llm"}),
    "ResponseTimeStatsQuery": ("stats avg(duration), max(duration), min(duration) by bin(5m)", {"application"}),
    "LlmCostQuery": ("sum(total_cost) as total", {"llm"}),
    "PacsErrorAnalysisQuery": ("filter @message like /ERROR/", {"application"}),
    "PacsPerformanceAnalysisQuery": ("parse @message /duration=(?<duration>\\d+)/", {"application"}),
    "DicomProcessingAnalysisQuery": ("stats count() by bin(1h)", {"application"}),
}


def test_every_seed_query_is_a_query_definition_over_the_service_groups(deployed: dict[str, Any]) -> None:
    queries = resources_of_type(deployed, "AWS::Logs::QueryDefinition")
    assert set(queries) == set(SEED_QUERIES)
    for name, (fragment, log_types) in SEED_QUERIES.items():
        props = queries[name]["Properties"]
        assert fragment in props["QueryString"], name
        split = props["LogGroupNames"]["Fn::Split"]
        assert split[0] == ","
        text, variables = split[1]["Fn::Sub"]
        for variable, join in variables.items():
            separator, _ = join["Fn::Join"]
            text = text.replace("${" + variable + "}", separator.join(TWO_SERVICES))
        assert set(text.split(",")) == {f"/aws/ecs/{s}/{t}" for s in TWO_SERVICES for t in log_types}, name


# ---------------------------------------------------------------------------
# Grafana dashboard (CloudWatch data source), tied to the code's metrics
# ---------------------------------------------------------------------------
def test_grafana_dashboard_charts_every_pacs_metric_from_cloudwatch() -> None:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    targets = [
        (panel, target) for panel in dashboard["panels"] if panel.get("type") != "row" for target in panel["targets"]
    ]
    assert targets
    rules = {rule.name: rule for rule in load_metric_rules().rules}
    charted: set[str] = set()
    # The exporter's series are checked by test_grafana_dashboard_charts_every_exporter_series.
    exporter = {(namespace, metric) for namespace, metric, _ in _exporter_emf_series("prod")}
    for panel, target in targets:
        assert target["datasource"]["type"] == "cloudwatch", panel["title"]
        namespace, metric, dimensions = target["namespace"], target["metricName"], target["dimensions"]
        if (namespace, metric) in exporter:
            continue
        if namespace == "LogPipe":
            assert metric in HEALTH_METRICS.values(), metric
            assert set(dimensions) == {"Environment", "service"}, panel["title"]
            assert dimensions["service"] == "logpipe-ingest"
            continue
        rule = rules[metric]
        assert namespace == rule.namespace, metric
        # Both series the EMF documents publish: dimensionless, and per Service and Environment.
        assert set(dimensions) in (set(), {"Service", "Environment"}), panel["title"]
        assert target["statistic"] in STATISTICS_FOR_UNIT[rule.unit] | {"p95", "p50"}, panel["title"]
        charted.add(metric)
    assert charted == set(rules)
    assert {variable["name"] for variable in dashboard["templating"]["list"]} >= {"datasource", "environment"}


# ---------------------------------------------------------------------------
# `logpipe smoke` reads this stack: keep its expectations equal to the template
# ---------------------------------------------------------------------------
def test_smoke_check_expects_exactly_the_unconditional_alarms_and_existing_outputs(deployed: dict[str, Any]) -> None:
    from logpipe_cli.smoke import EXPECTED_ALARM_SUFFIXES, RETENTION_PARAMETERS

    unconditional = {
        alarm["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for alarm in resources_of_type(deployed, "AWS::CloudWatch::Alarm").values()
        if "Condition" not in alarm
    }
    assert set(EXPECTED_ALARM_SUFFIXES) == unconditional
    for log_type, parameter in RETENTION_PARAMETERS.items():
        assert LOG_TYPES[log_type]["parameter"] == parameter
    outputs = deployed["Outputs"]
    for name in (
        "LogsKeyArn",
        "AlertTopicArn",
        "AlarmNamePrefix",
        "IngestFunctionArn",
        "IngestFunctionName",
        "ReplayFunctionName",
    ):
        assert name in outputs, name
    assert outputs["AlarmNamePrefix"]["Value"] == {"Fn::Sub": "${AWS::StackName}-"}
    assert outputs["LogStreamArn"]["Condition"] == "UseKinesis"


# ---------------------------------------------------------------------------
# Exporter of aged logs to S3 (functions/exporter, layers/core/logpipe/export.py)
# ---------------------------------------------------------------------------
EXPORTER_ALARM_SUFFIXES = {
    "export-lag",
    "export-retention-headroom",
    "export-consecutive-failures",
    "export-tasks-failed",
    "exporter-errors",
}
EXPORT_PREFIX = "exports"
LOGS_SERVICE = {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}
LOGS_SOURCE_CONDITION = {
    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
    "ArnLike": {
        "aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}
    },
}
# SELECT MAX(Metric) FROM SCHEMA("Namespace", Dim1, Dim2) WHERE Environment = '${Environment}'
METRICS_INSIGHTS = re.compile(
    r"""^SELECT (?P<stat>MAX|MIN|SUM|AVG)\((?P<metric>\w+)\) FROM SCHEMA\("(?P<namespace>[^"]+)", (?P<dims>[\w, ]+)\)"""
    r""" WHERE Environment = '\$\{Environment\}'$"""
)


def _exporter_emf_documents(environment: str) -> list[dict[str, Any]]:
    """Every EMF document one exporter run prints: a group with retention and failures, plus the run counters."""
    from logpipe.export import DAY_MS, Checkpoint, Exporter, ExportSummary, LogGroup, MemoryCheckpointStore

    now_ms = 1_763_337_600_000
    lines: list[str] = []
    exporter = Exporter(
        None,  # type: ignore[arg-type]  # publishing calls no AWS API
        MemoryCheckpointStore(),
        bucket="b",
        environment=environment,
        clock=lambda: now_ms / 1000,
        emit=lines.append,
    )
    group = LogGroup("/aws/ecs/api/errors", 90)
    checkpoint = Checkpoint(exported_to_ms=now_ms - 2 * DAY_MS, failures=1)
    summary = ExportSummary(failed=[{"log_group": group.name}])
    exporter._publish([group], {group.name: checkpoint}, {group.name: checkpoint.exported_to_ms}, summary, now_ms)
    return [json.loads(line) for line in lines]


def _exporter_emf_series(environment: str) -> list[tuple[str, str, frozenset[str]]]:
    """(namespace, metric, dimension names) of every series the exporter publishes."""
    return [
        (directive["Namespace"], metric["Name"], frozenset(dimension_set))
        for document in _exporter_emf_documents(environment)
        for directive in document["_aws"]["CloudWatchMetrics"]
        for dimension_set in directive["Dimensions"]
        for metric in directive["Metrics"]
    ]


def test_exporter_function_code_schedule_and_environment(
    deployed: dict[str, Any], template: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    source = template["Resources"]["ExporterFunction"]["Properties"]
    assert source["CodeUri"].rstrip("/") == "functions/exporter"
    assert source["Handler"] == "app.lambda_handler"
    assert (REPO_ROOT / "functions" / "exporter" / "app.py").is_file()
    (event,) = source["Events"].values()
    assert event["Type"] == "ScheduleV2"
    schedule = event["Properties"]
    assert schedule["ScheduleExpression"] == {"Fn::Sub": "rate(${ExportScheduleRateMinutes} minutes)"}
    assert resolve(schedule["ScheduleExpression"], parameter_values) == "rate(15 minutes)"
    assert schedule["ScheduleExpressionTimezone"] == "Asia/Seoul"
    # Deployed: an EventBridge Scheduler schedule that invokes the function.
    (scheduler,) = resources_of_type(deployed, "AWS::Scheduler::Schedule").values()
    props = scheduler["Properties"]
    assert props["ScheduleExpressionTimezone"] == "Asia/Seoul"
    assert props["Target"]["Arn"] == {"Fn::GetAtt": ["ExporterFunction", "Arn"]}
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    fn = deployed["Resources"]["ExporterFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["LOGPIPE_EXPORT_BUCKET"] == {"Ref": "ExportBucket"}
    assert env["LOGPIPE_EXPORT_PREFIX"] == EXPORT_PREFIX
    assert env["LOGPIPE_EXPORT_MIN_AGE_HOURS"] == {"Ref": "ExportMinAgeHours"}
    assert env["LOGPIPE_EXPORT_LOG_GROUPS"] == {"Fn::Join": [",", {"Ref": "ExportLogGroups"}]}
    assert env["LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX"] == {"Ref": "ExportCheckpointParameterPrefix"}
    assert env["LOGPIPE_ENVIRONMENT"] == {"Ref": "Environment"}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LogPipe"
    assert fn["KmsKeyArn"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}
    # Settings accept the deployed values (the code enforces the 12 h floor too).
    from logpipe.settings import ExportSettings

    settings = ExportSettings.from_env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "pacs-logpipe-exporter",
            "LOGPIPE_ENVIRONMENT": "prod",
            "LOGPIPE_EXPORT_BUCKET": "bucket",
            "LOGPIPE_EXPORT_PREFIX": env["LOGPIPE_EXPORT_PREFIX"],
            "LOGPIPE_EXPORT_MIN_AGE_HOURS": str(parameter_values["ExportMinAgeHours"]),
            "LOGPIPE_EXPORT_CHECKPOINT_PARAMETER_PREFIX": parameter_values["ExportCheckpointParameterPrefix"],
        }
    )
    assert settings.checkpoint_parameter_prefix == "/logpipe/export/checkpoints"
    assert template["Parameters"]["ExportMinAgeHours"]["MinValue"] == 12
    assert parameter_values["ExportMinAgeHours"] == 24


def test_exporter_role_is_least_privilege(deployed: dict[str, Any]) -> None:
    role = deployed["Resources"]["ExporterFunctionRole"]["Properties"]
    assert {str(arn).rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]} == {
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    }
    by_action: dict[str, list[Any]] = {}
    for policy in _flatten_if(role["Policies"]):
        for statement in statements(policy["PolicyDocument"]):
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                by_action.setdefault(action, []).extend(as_list(statement["Resource"]))
    assert set(by_action) == {
        "logs:DescribeLogGroups",
        "logs:ListTagsForResource",
        "logs:ListTagsLogGroup",
        "logs:DescribeLogStreams",
        "logs:DescribeExportTasks",
        "logs:CreateExportTask",
        "ssm:GetParameter",
        "ssm:PutParameter",
        "s3:GetBucketAcl",
        "s3:PutObject",
    }
    # Only DescribeExportTasks (no resource-level permissions) needs "*".
    assert by_action["logs:DescribeExportTasks"] == ["*"]
    log_groups = {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"}
    for action in ("logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:CreateExportTask"):
        assert by_action[action] == [log_groups], action
    parameters = {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ExportCheckpointParameterPrefix}/*"
    }
    assert by_action["ssm:GetParameter"] == by_action["ssm:PutParameter"] == [parameters]
    assert by_action["s3:PutObject"] == [
        {"Fn::GetAtt": ["ExportBucket", "Arn"]},
        {"Fn::Sub": "${ExportBucket.Arn}/" + EXPORT_PREFIX + "/*"},
    ]


def test_export_bucket_is_encrypted_private_versioned_and_tiered(
    deployed: dict[str, Any], template: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    bucket = deployed["Resources"]["ExportBucket"]
    # The log archive: kept with the stack, except when the deploy that created it (empty) rolls back.
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
    props = bucket["Properties"]
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["PipelineKey", "Arn"]},
    }
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": {"Ref": "ExportStandardIaDays"}},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": {"Ref": "ExportGlacierIrDays"}},
    ]
    assert rule["ExpirationInDays"] == {"Ref": "ExportExpirationDays"}
    days = [parameter_values[name] for name in ("ExportStandardIaDays", "ExportGlacierIrDays", "ExportExpirationDays")]
    assert days == [30, 90, 365]
    # S3 needs 30 days in Standard-IA before Glacier IR; expiry after the last transition.
    assert days[0] >= 30
    assert days[1] - days[0] >= 30
    assert days[2] > days[1]
    params = template["Parameters"]
    assert params["ExportStandardIaDays"]["MinValue"] == 30
    # Object Lock is optional (a condition on a parameter, off by default).
    assert props["ObjectLockEnabled"] == {"Fn::If": ["UseExportObjectLock", True, {"Ref": "AWS::NoValue"}]}
    condition, lock, none = props["ObjectLockConfiguration"]["Fn::If"]
    assert (condition, none) == ("UseExportObjectLock", {"Ref": "AWS::NoValue"})
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Days"] == {"Ref": "ExportObjectLockRetentionDays"}
    assert deployed["Conditions"]["UseExportObjectLock"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ExportObjectLockRetentionDays"}, 0]}]
    }
    assert parameter_values["ExportObjectLockRetentionDays"] == 0
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}, "Object Lock needs versioning"


def test_export_bucket_policy_is_tls_only_and_lets_cloudwatch_logs_export(deployed: dict[str, Any]) -> None:
    (policy,) = resources_of_type(deployed, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "ExportBucket"}
    found = statements(policy["Properties"]["PolicyDocument"])
    (deny,) = [s for s in found if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*"
    assert deny["Resource"] == [{"Fn::GetAtt": ["ExportBucket", "Arn"]}, {"Fn::Sub": "${ExportBucket.Arn}/*"}]
    allows = {s["Action"]: s for s in found if s["Effect"] == "Allow"}
    assert set(allows) == {"s3:GetBucketAcl", "s3:PutObject"}
    acl, put = allows["s3:GetBucketAcl"], allows["s3:PutObject"]
    for statement in (acl, put):
        assert statement["Principal"] == {"Service": LOGS_SERVICE}
    assert acl["Resource"] == {"Fn::GetAtt": ["ExportBucket", "Arn"]}
    assert acl["Condition"] == LOGS_SOURCE_CONDITION
    # The exporter writes under LOGPIPE_EXPORT_PREFIX: the policy allows exactly that prefix.
    env = deployed["Resources"]["ExporterFunction"]["Properties"]["Environment"]["Variables"]
    assert put["Resource"] == {"Fn::Sub": "${ExportBucket.Arn}/" + env["LOGPIPE_EXPORT_PREFIX"] + "/*"}
    assert put["Condition"] == {
        "StringEquals": {
            "s3:x-amz-acl": "bucket-owner-full-control",
            **LOGS_SOURCE_CONDITION["StringEquals"],
        },
        "ArnLike": LOGS_SOURCE_CONDITION["ArnLike"],
    }
    # SSE-KMS: CloudWatch Logs must be able to use the bucket's key, for this account's groups only.
    key_statements = statements(deployed["Resources"]["PipelineKey"]["Properties"]["KeyPolicy"])
    (logs,) = [s for s in key_statements if s["Principal"].get("Service") == LOGS_SERVICE]
    assert set(logs["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert logs["Condition"] == LOGS_SOURCE_CONDITION


def test_every_exporter_alarm_watches_a_series_the_exporter_publishes(
    deployed: dict[str, Any], parameter_values: dict[str, Any]
) -> None:
    environment = parameter_values["Environment"]
    published = _exporter_emf_series(environment)
    documents = _exporter_emf_documents(environment)
    assert all(document["Environment"] == environment for document in documents)
    exporter_metrics = {metric for _, metric, _ in published}
    assert {"ExportLagHours", "ExportRetentionHeadroomHours", "ExportConsecutiveFailures", "ExportTasksFailed"} <= (
        exporter_metrics
    )
    alarms = resources_of_type(deployed, "AWS::CloudWatch::Alarm")
    watched: dict[str, str] = {}
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        if "Metrics" in props:
            (query,) = props["Metrics"]
            assert query["ReturnData"] is True, name
            match = METRICS_INSIGHTS.match(query["Expression"]["Fn::Sub"])
            assert match, f"{name}: unexpected expression {query['Expression']}"
            dimensions = frozenset(part.strip() for part in match["dims"].split(","))
            series = (match["namespace"], match["metric"], dimensions)
            assert series in published, f"{name}: the exporter publishes no series {series}"
            watched[match["metric"]] = name
        elif props.get("MetricName") in exporter_metrics:
            dimensions_values = _alarm_dimensions(alarm, parameter_values)
            series = (props["Namespace"], props["MetricName"], frozenset(dimensions_values))
            assert series in published, f"{name}: the exporter publishes no series {series}"
            assert dimensions_values == {"Environment": environment}, name
            assert props["Statistic"] == "Sum", name
            watched[props["MetricName"]] = name
    assert watched == {
        "ExportLagHours": "ExportLagAlarm",
        "ExportRetentionHeadroomHours": "ExportRetentionHeadroomAlarm",
        "ExportConsecutiveFailures": "ExportConsecutiveFailuresAlarm",
        "ExportTasksFailed": "ExportTasksFailedAlarm",
    }
    lag = alarms["ExportLagAlarm"]["Properties"]
    assert (lag["Threshold"], lag["ComparisonOperator"]) == ({"Ref": "ExportLagAlarmHours"}, "GreaterThanThreshold")
    # A lag alarm below one day past the minimum age would fire on every healthy day.
    assert parameter_values["ExportLagAlarmHours"] > parameter_values["ExportMinAgeHours"] + 24
    headroom = alarms["ExportRetentionHeadroomAlarm"]["Properties"]
    assert headroom["ComparisonOperator"] == "LessThanThreshold"
    assert "MIN(ExportRetentionHeadroomHours)" in headroom["Metrics"][0]["Expression"]["Fn::Sub"]
    crashes = alarms["ExporterErrorsAlarm"]["Properties"]
    assert (crashes["Namespace"], crashes["MetricName"]) == ("AWS/Lambda", "Errors")
    assert crashes["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ExporterFunction"}}]
    suffixes = {
        alarm["Properties"]["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for name, alarm in alarms.items()
        if name.startswith("Export")
    }
    assert suffixes == EXPORTER_ALARM_SUFFIXES


# A dashboard's Metrics Insights query: the alarms' form plus one line per group (GROUP BY).
DASHBOARD_INSIGHTS = re.compile(METRICS_INSIGHTS.pattern.removesuffix("$") + r" GROUP BY (?P<group>[\w, ]+)$")
INSIGHTS_TO_STATISTIC = {"MAX": "Maximum", "MIN": "Minimum", "SUM": "Sum", "AVG": "Average"}


def _exporter_alarm_statistics(deployed: dict[str, Any]) -> dict[str, str]:
    """Metric -> the statistic its alarm evaluates (``Maximum``, ``Minimum``, ``Sum``), for the exporter's alarms."""
    exporter_metrics = {metric for _, metric, _ in _exporter_emf_series("prod")}
    statistics: dict[str, str] = {}
    for alarm in resources_of_type(deployed, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if "Metrics" in props:
            match = METRICS_INSIGHTS.match(props["Metrics"][0]["Expression"]["Fn::Sub"])
            if match and match["metric"] in exporter_metrics:
                statistics[match["metric"]] = INSIGHTS_TO_STATISTIC[match["stat"]]
        elif props.get("MetricName") in exporter_metrics:
            statistics[props["MetricName"]] = props["Statistic"]
    return statistics


def _dimension_pairs(entry: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dashboard metrics-array entry ``[ns, name, dim, value, ..., {options}]`` -> (dimensions, options)."""
    rest = entry[2:]
    options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
    return dict(zip(rest[::2], rest[1::2], strict=True)), options


def test_dashboard_charts_every_exporter_series(deployed: dict[str, Any], parameter_values: dict[str, Any]) -> None:
    published = set(_exporter_emf_series(parameter_values["Environment"]))
    namespaces = {namespace for namespace, _, _ in published}
    alarm_statistics = _exporter_alarm_statistics(deployed)
    assert alarm_statistics  # the lag, headroom, failures and failed-task alarms
    body = deployed["Resources"]["PipelineDashboard"]["Properties"]["DashboardBody"]["Fn::ToJsonString"]
    widgets = body["widgets"]
    charted: dict[str, str] = {}
    for widget in widgets:
        if widget["type"] != "metric":
            continue
        for entry in widget["properties"]["metrics"]:
            if isinstance(entry[0], dict):
                match = DASHBOARD_INSIGHTS.match(entry[0]["expression"]["Fn::Sub"])
                assert match, f"{widget['properties']['title']}: unexpected expression {entry[0]['expression']}"
                dimensions = frozenset(part.strip() for part in match["dims"].split(","))
                series = (match["namespace"], match["metric"], dimensions)
                assert series in published, f"the exporter publishes no series {series}"
                # One line per log group: grouped by every dimension but the environment it filters on.
                assert {part.strip() for part in match["group"].split(",")} == dimensions - {"Environment"}
                statistic = INSIGHTS_TO_STATISTIC[match["stat"]]
            elif entry[0] in namespaces:
                dimensions_values, options = _dimension_pairs(entry)
                series = (entry[0], entry[1], frozenset(dimensions_values))
                if series[1] not in {metric for _, metric, _ in published}:
                    continue  # a health metric in the same namespace
                assert series in published, f"the exporter publishes no series {series}"
                assert dimensions_values["Environment"] == {"Ref": "Environment"}
                statistic = options["stat"]
            else:
                continue
            charted[series[1]] = statistic
            # A chart shows what its alarm evaluates: the worst lag (MAX), the least headroom (MIN), ...
            assert statistic == alarm_statistics.get(series[1], "Sum"), series[1]
    assert set(charted) == {metric for _, metric, _ in published}
    assert any(
        entry[:4] == ["AWS/Lambda", "Errors", "FunctionName", {"Ref": "ExporterFunction"}]
        for widget in widgets
        if widget["type"] == "metric"
        for entry in widget["properties"]["metrics"]
    )
    # The new widgets must not cover the others.
    cells = Counter(
        (x, y)
        for widget in widgets
        for x in range(widget["x"], widget["x"] + widget["width"])
        for y in range(widget["y"], widget["y"] + widget["height"])
    )
    assert max(cells.values()) == 1


def test_grafana_dashboard_charts_every_exporter_series(deployed: dict[str, Any]) -> None:
    published = {(namespace, metric): dimensions for namespace, metric, dimensions in _exporter_emf_series("prod")}
    alarm_statistics = _exporter_alarm_statistics(deployed)
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    charted: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            dimensions = published.get((target["namespace"], target["metricName"]))
            if dimensions is None:
                continue
            assert target["datasource"]["type"] == "cloudwatch", panel["title"]
            assert set(target["dimensions"]) == dimensions, panel["title"]
            assert target["dimensions"]["Environment"] == "$environment", panel["title"]
            if "LogGroup" in dimensions:
                # Every export-enabled group, one line each: a wildcard needs matchExact off.
                assert target["dimensions"]["LogGroup"] == "*", panel["title"]
                assert target["matchExact"] is False, panel["title"]
            else:
                assert target["matchExact"] is True, panel["title"]
            assert target["statistic"] == alarm_statistics.get(target["metricName"], "Sum"), panel["title"]
            charted.add(target["metricName"])
    assert charted == {metric for _, metric in published}


# ---------------------------------------------------------------------------
# Langfuse: delivery-failure alarm, per-service prompt scrubbing
# ---------------------------------------------------------------------------
class _RefusingPoster:
    """Langfuse refusing every request (HTTP 400): every LLM record ends dead-lettered."""

    def post(self, body: bytes, deadline: float) -> Any:
        from logpipe.langfuse.transport import PostOutcome, PostResult

        return PostResult(PostOutcome.REJECTED, 400, None, "HTTP 400: refused")


def test_langfuse_delivery_failure_alarm_watches_the_series_the_pipeline_publishes(
    deployed: dict[str, Any],
    deployed_ingest: dict[str, Any],
    parameter_values: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from logpipe.idempotency import DeliveryLedger
    from logpipe.langfuse.sink import SINK_NAME, LangfuseSink
    from logpipe.parking import MemoryParkingLot
    from logpipe.pipeline import IngestPipeline
    from logpipe.settings import Settings
    from logpipe.sinks import DeliveryOutcome
    from payloads import data_message, subscription_event

    # The counter the pipeline keeps per sink and outcome, and the metric name it is published under.
    metric = HEALTH_METRICS[f"delivery.{SINK_NAME}.{DeliveryOutcome.DEAD_LETTERED.value}"]
    (alarm,) = [
        alarm
        for alarm in resources_of_type(deployed, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric
    ]
    props = alarm["Properties"]
    env = deployed_ingest["Properties"]["Environment"]["Variables"]
    assert props["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert props["Dimensions"] == [
        {"Name": "Environment", "Value": {"Ref": "Environment"}},
        {"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]},
    ]
    assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    assert props["AlarmActions"] == props["OKActions"] == [{"Ref": "AlertTopic"}]
    assert "Condition" not in alarm

    # The real pipeline, Langfuse refusing everything: the alarm's series must carry the dead letters.
    environment = parameter_values["Environment"]
    lines = [
        json.dumps({"event": "llm_call", "model": "gpt-4o-mini", "prompt": f"p{i}", "prompt_tokens": 3})
        for i in range(3)
    ]
    pipeline = IngestPipeline(
        Settings(environment=environment),
        rules=load_metric_rules(),
        parking=MemoryParkingLot(),
        boundary=Boundary.default(),
        sinks=[LangfuseSink(_RefusingPoster(), DeliveryLedger.in_memory(key_prefix="t", expires_after_seconds=60))],
        health=HealthMetrics(
            environment=environment,
            namespace=env["POWERTOOLS_METRICS_NAMESPACE"],
            service=env["POWERTOOLS_SERVICE_NAME"],
        ),
        emf_writer=lambda line: None,
    )
    capsys.readouterr()
    pipeline.run(subscription_event(data_message("/aws/ecs/pacs-backend/llm", lines)))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    dimensions = _alarm_dimensions(alarm, parameter_values)
    published = [
        document[metric]
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        if directive["Namespace"] == props["Namespace"]
        and metric in {m["Name"] for m in directive["Metrics"]}
        and any(set(metric_set) == set(dimensions) for metric_set in directive["Dimensions"])
        and all(document.get(key) == value for key, value in dimensions.items())
    ]
    # Powertools writes a value list per metric; one document, all three dead letters in it.
    assert [sum(value) if isinstance(value, list) else value for value in published] == [3]


def test_prompt_scrubbing_parameter_scrubs_every_service_by_default_and_reaches_the_ingest_function(
    template: dict[str, Any], deployed: dict[str, Any]
) -> None:
    from logpipe.settings import Settings, SettingsError

    parameter = template["Parameters"]["LangfuseUnscrubbedPromptServices"]
    assert parameter["Default"] == ""
    assert "WITHOUT PII scrubbing" in parameter["Description"]
    assert "unscrubbed on the SQS retry queue" in parameter["Description"]
    pattern = re.compile(parameter["AllowedPattern"])
    variable = "LOGPIPE_LANGFUSE_UNSCRUBBED_PROMPT_SERVICES"
    # The deploy-time pattern and the run-time validation agree on what a service list is.
    for accepted in ("", "pacs-backend", "pacs-backend,api", "thumbnailer/errors-v2"):
        assert pattern.fullmatch(accepted), accepted
        Settings.from_env({variable: accepted})
    for refused in ("*", "pacs-backend,,api", "pacs-backend;api", "api,"):
        assert not pattern.fullmatch(refused), refused
        with pytest.raises(SettingsError):
            Settings.from_env({variable: refused})
    assert Settings.from_env({variable: parameter["Default"]}).langfuse_unscrubbed_prompt_services == frozenset()
    resources = deployed["Resources"]
    ingest_env = resources["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert ingest_env[variable] == {"Ref": "LangfuseUnscrubbedPromptServices"}
    # The replay function re-sends parked items as ingest built them and never reads the setting.
    assert variable not in resources["ReplayFunction"]["Properties"]["Environment"]["Variables"]


# ---------------------------------------------------------------------------
# The notifier: pacs-alerts -> Slack and Teams (functions/notify, logpipe/notify)
# ---------------------------------------------------------------------------
# Hosts of chat webhooks (Slack incoming webhooks, Teams connectors and Workflows / Power Automate).
CHAT_WEBHOOK_HOSTS = re.compile(
    r"hooks\.slack\.com|webhook\.office\.com|outlook\.office|logic\.azure\.com|powerautomate|powerplatform"
    r"|flow\.microsoft\.com",
    re.IGNORECASE,
)
NOTIFY_SECRETS = {"SlackWebhookSecret", "TeamsWebhookSecret"}


def test_no_sns_subscription_targets_a_chat_webhook_and_the_notifier_is_subscribed(
    template: dict[str, Any], deployed: dict[str, Any]
) -> None:
    subscriptions = resources_of_type(deployed, "AWS::SNS::Subscription")
    assert subscriptions
    for name, subscription in subscriptions.items():
        props = subscription["Properties"]
        # An http(s) subscription must confirm itself (fetch SubscribeURL), which no chat webhook can do.
        assert props["Protocol"] not in {"http", "https"}, f"{name} subscribes an HTTP endpoint"
        assert not CHAT_WEBHOOK_HOSTS.search(json.dumps(props["Endpoint"])), f"{name} targets a chat webhook"
    to_notifier = [
        subscription["Properties"]
        for subscription in subscriptions.values()
        if subscription["Properties"]["Endpoint"] == {"Fn::GetAtt": ["NotifyFunction", "Arn"]}
    ]
    assert to_notifier == [
        {"Endpoint": {"Fn::GetAtt": ["NotifyFunction", "Arn"]}, "Protocol": "lambda", "TopicArn": {"Ref": "AlertTopic"}}
    ]
    assert not [name for name, s in subscriptions.items() if "NotifyFunction" in referenced_ids(s) and "Condition" in s]
    # SNS may invoke the function, and only from the alert topic.
    permission = deployed["Resources"]["NotifyFunctionAlertTopicPermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": "NotifyFunction"}
    assert (permission["Principal"], permission["SourceArn"]) == ("sns.amazonaws.com", {"Ref": "AlertTopic"})
    # Nothing of the old https route is left: no webhook parameter, condition or subscription resource.
    assert not [name for name in template["Parameters"] if "Webhook" in name]
    assert not [name for name in template["Conditions"] if "Webhook" in name]


def test_notify_function_code_environment_and_failure_handling(deployed: dict[str, Any]) -> None:
    from logpipe.settings import NotifySettings

    fn = deployed["Resources"]["NotifyFunction"]["Properties"]
    assert fn["Handler"] == "app.lambda_handler"
    assert (REPO_ROOT / "functions" / "notify" / "app.py").is_file()
    env = fn["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "logpipe-notify"
    assert env["LOGPIPE_SLACK_WEBHOOK_SECRET"] == {"Ref": "SlackWebhookSecret"}
    assert env["LOGPIPE_TEAMS_WEBHOOK_SECRET"] == {"Ref": "TeamsWebhookSecret"}
    assert env["LOGPIPE_IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert env["LOGPIPE_NOTIFY_LOG_CONTEXT"] == {"Ref": "NotifyLogContext"}
    assert env["LOGPIPE_DASHBOARD_NAME"] == {"Ref": "PipelineDashboard"}
    assert referenced_ids(env["LOGPIPE_PIPELINE_LOG_GROUPS"]) == {
        f"{name}FunctionLogGroup" for name in ("Ingest", "Replay", "Exporter", "Notify")
    }
    assert "LOGPIPE_SLACK_WEBHOOK_URL" not in env, "a URL in the environment would be a credential in plain text"
    assert "https://" not in json.dumps(env)
    # The settings the function reads in Lambda accept exactly this environment (the table is required there).
    settings = NotifySettings.from_env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "pacs-logpipe-notify",
            "LOGPIPE_IDEMPOTENCY_TABLE": "t",
            "LOGPIPE_NOTIFY_LOG_CONTEXT": "false",
        }
    )
    assert (settings.idempotency_table, settings.log_context) == ("t", False)
    # 5xx / 429 / timeout fail the invocation: two retries, then the failure queue; never dropped silently.
    configs = [
        c["Properties"]
        for c in resources_of_type(deployed, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "NotifyFunction"}
    ]
    assert len(configs) == 1
    assert configs[0]["MaximumRetryAttempts"] == 2
    assert configs[0]["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["NotifyFailureQueue", "Arn"]}
    # The timeout holds the bounded context query and one bounded post per channel.
    assert fn["Timeout"] >= settings.context_seconds + 2 * settings.webhook_timeout_seconds


def _notify_role_statements(deployed: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The notifier role's unconditional statements, and the Fn::If of its log-context policy."""
    plain: list[dict[str, Any]] = []
    conditional: list[Any] = []
    for policy in deployed["Resources"]["NotifyFunctionRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy:
            conditional = policy["Fn::If"]
            continue
        plain.extend(statements(policy["PolicyDocument"]))
    return plain, conditional


def test_notify_role_is_least_privilege(deployed: dict[str, Any]) -> None:
    from logpipe.notify.queries import load_alarm_queries

    role = deployed["Resources"]["NotifyFunctionRole"]["Properties"]
    assert {str(arn).rsplit("/", 1)[-1] for arn in role["ManagedPolicyArns"]} == {
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    }
    plain, conditional = _notify_role_statements(deployed)
    actions: set[str] = set()
    for statement in plain:
        actions.update(as_list(statement["Action"]))
        assert referenced_ids(statement["Resource"]) <= {
            *NOTIFY_SECRETS,
            "IdempotencyTable",
            "PipelineKey",
            "NotifyFailureQueue",
        }
        if {"dynamodb:PutItem"} & set(as_list(statement["Action"])):
            assert set(as_list(statement["Action"])) == LEDGER_ACTIONS  # what Powertools Idempotency calls
            assert statement["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    assert {a for a in actions if a.startswith("secretsmanager:")} == {"secretsmanager:GetSecretValue"}
    assert not [a for a in actions if a.startswith(("logs:", "s3:", "ssm:", "sqs:Receive"))], actions
    secrets = {
        next(iter(referenced_ids(s["Resource"])))
        for s in plain
        if "secretsmanager:GetSecretValue" in as_list(s["Action"])
    }
    assert secrets == NOTIFY_SECRETS
    # Logs Insights only with NotifyLogContext, StartQuery only on the groups the context queries read.
    condition, with_context, without = conditional
    assert condition == "NotifyWithLogContext"
    assert deployed["Conditions"][condition] == {"Fn::Equals": [{"Ref": "NotifyLogContext"}, "true"]}
    assert without == {"Ref": "AWS::NoValue"}
    by_action = {
        action: statement["Resource"]
        for statement in statements(with_context["PolicyDocument"])
        for action in as_list(statement["Action"])
    }
    assert set(by_action) == {"logs:StartQuery", "logs:GetQueryResults", "logs:StopQuery"}
    # Neither supports resource-level permissions; they only reach a query by the id StartQuery returned.
    assert by_action["logs:GetQueryResults"] == by_action["logs:StopQuery"] == "*"
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    granted = {item["Fn::Sub"].removeprefix(prefix).removesuffix(":*") for item in by_action["logs:StartQuery"]}
    read = {g for q in load_alarm_queries().by_metric.values() if q.error_context for g in q.log_groups}
    assert granted == read


def test_alarm_queries_are_the_saved_queries_over_the_alarmed_services_groups(deployed: dict[str, Any]) -> None:
    from logpipe.notify.queries import load_alarm_queries

    definitions = {
        d["Properties"]["Name"]["Fn::Sub"].removeprefix("${AWS::StackName}/"): d["Properties"]
        for d in resources_of_type(deployed, "AWS::Logs::QueryDefinition").values()
    }
    alarmed = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName"))
        for a in resources_of_type(deployed, "AWS::CloudWatch::Alarm").values()
    }
    rules = {rule.name: rule for rule in load_metric_rules().rules}
    queries = load_alarm_queries()
    assert {("PACS/Application", "PACSBackendErrors"), ("PACS/Application", "PACSBackendResponseTime")} <= set(
        queries.by_metric
    )
    for (namespace, metric), query in queries.by_metric.items():
        assert (namespace, metric) in alarmed, metric
        assert query.saved_query in definitions, query.saved_query
        assert query.query == definitions[query.saved_query]["QueryString"], query.saved_query
        # The groups of the service the metric rule reads, of the log types the stack creates.
        services = rules[metric].services
        assert services
        assert set(query.log_groups) <= {f"/aws/ecs/{s}/{t}" for s in services for t in LOG_TYPES}, metric
    assert queries.by_metric["PACS/Application", "PACSBackendErrors"].error_context
    assert not queries.by_metric["PACS/Application", "PACSBackendResponseTime"].error_context


def test_notifier_alarms_watch_what_the_notifier_publishes(
    deployed: dict[str, Any], parameter_values: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    HealthMetrics(parameter_values["Environment"], service="logpipe-notify", metrics=NOTIFY_METRICS).publish(Counter())
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"CloudWatchMetrics"' in line]
    assert len(documents) == 1
    resources = deployed["Resources"]
    failures = resources["NotifierFailuresAlarm"]["Properties"]
    assert (failures["Namespace"], failures["MetricName"]) == ("LogPipe", NOTIFY_METRICS["rejected"])
    dimensions = _alarm_dimensions(resources["NotifierFailuresAlarm"], parameter_values)
    directive = documents[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == failures["Namespace"]
    assert [sorted(dimensions)] == [sorted(d) for d in directive["Dimensions"]]
    assert all(documents[0][key] == value for key, value in dimensions.items())
    assert failures["MetricName"] in {m["Name"] for m in directive["Metrics"]}
    assert (failures["Statistic"], failures["Threshold"], failures["ComparisonOperator"]) == (
        "Sum",
        0,
        "GreaterThanThreshold",
    )
    errors = resources["NotifyErrorsAlarm"]["Properties"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert referenced_ids(errors["Dimensions"]) == {"NotifyFunction"}
    depth = resources["NotifyFailureQueueDepthAlarm"]["Properties"]
    assert (depth["Namespace"], depth["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert referenced_ids(depth["Dimensions"]) == {"NotifyFailureQueue"}


def test_webhook_secrets_are_created_empty_and_only_the_notifier_reads_them(deployed: dict[str, Any]) -> None:
    resources = deployed["Resources"]
    for name in NOTIFY_SECRETS:
        secret = resources[name]
        assert "Condition" not in secret
        assert "SecretString" not in secret["Properties"], "a webhook URL in the template leaks it"
        assert "GenerateSecretString" not in secret["Properties"]
        assert secret["Properties"]["KmsKeyId"] == {"Ref": "PipelineKey"}
        assert deployed["Outputs"][f"{name}Arn"]["Value"] == {"Ref": name}
    readers = {
        role
        for role, statement in _iam_statements(deployed)
        if "secretsmanager:GetSecretValue" in as_list(statement.get("Action", []))
        and referenced_ids(statement["Resource"]) & NOTIFY_SECRETS
    }
    assert readers == {"NotifyFunctionRole"}


def test_idempotency_table_is_the_one_delivery_ledger(deployed: dict[str, Any]) -> None:
    """One mechanism, one table: Powertools Idempotency's, wired to every function that sends once."""
    users = {
        name
        for name, resource in deployed["Resources"].items()
        if name != "IdempotencyTable" and "IdempotencyTable" in referenced_ids(resource)
    }
    senders = {"IngestFunction", "ReplayFunction", "NotifyFunction"}
    assert users == senders | {f"{name}Role" for name in senders}
    tables = resources_of_type(deployed, "AWS::DynamoDB::Table")
    assert set(tables) == {"IdempotencyTable"}
    for code in (REPO_ROOT / "layers/core/logpipe").rglob("*.py"):
        text = code.read_text(encoding="utf-8")
        # Nothing writes DynamoDB by hand any more: every ledger goes through Powertools.
        assert "put_item(" not in text, code
        assert "update_item(" not in text, code


# ---------------------------------------------------------------------------
# No unused resources
# ---------------------------------------------------------------------------
# Types that do their job by existing: an alarm notifies, a subscription filter streams, a schedule
# invokes, a permission or policy grants, a query definition or dashboard is there to be opened.
ACTING_TYPES = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::KMS::Alias",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Lambda::Permission",
        "AWS::Logs::AccountPolicy",
        "AWS::Logs::QueryDefinition",
        "AWS::Logs::SubscriptionFilter",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::Scheduler::Schedule",
        "Custom::ServiceLogGroup",
    }
)
# Referencing a resource from these is not using it: an alarm or a dashboard only watches it, a
# policy or an alias is attached to it (a queue only its TLS policy and its depth alarm name is unused).
NOT_A_USE = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::KMS::Alias",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
    }
)


def unused_resources(template: Mapping[str, Any]) -> dict[str, str]:
    """Resources (name -> type) that nothing uses: no resource of a using type references them.

    Outputs do not count (an output is not a use), nor does a reference from a resource's own
    DependsOn; a function, a role, a subscription, a mapping, a log group... referencing it does.
    """
    resources: Mapping[str, Mapping[str, Any]] = template["Resources"]
    used: set[str] = set()
    for name, resource in resources.items():
        if resource["Type"] in NOT_A_USE:
            continue
        used.update(ref for ref in referenced_ids(resource.get("Properties", {})) if ref != name)
    return {
        name: resource["Type"]
        for name, resource in resources.items()
        if resource["Type"] not in ACTING_TYPES and name not in used
    }


def test_every_resource_is_used(deployed: dict[str, Any]) -> None:
    assert unused_resources(deployed) == {}


def test_an_unused_resource_fails_the_template(deployed: dict[str, Any]) -> None:
    """What the check catches: a table only an output names, a queue only its policy and alarm name."""
    broken = copy.deepcopy(deployed)
    broken["Resources"]["OrphanTable"] = {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "orphan"}}
    broken["Outputs"]["OrphanTableName"] = {"Value": {"Ref": "OrphanTable"}}
    broken["Resources"]["OrphanQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    broken["Resources"]["OrphanQueueAlarm"] = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {"Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["OrphanQueue", "QueueName"]}}]},
    }
    broken["Resources"]["QueuesRequireTls"]["Properties"]["Queues"].append({"Ref": "OrphanQueue"})
    # A role no function assumes is unused too, even though it names a resource that is used.
    broken["Resources"]["OrphanRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {"Policies": [{"PolicyDocument": {"Statement": [{"Resource": {"Ref": "ParkingQueue"}}]}}]},
    }
    assert unused_resources(broken) == {
        "OrphanTable": "AWS::DynamoDB::Table",
        "OrphanQueue": "AWS::SQS::Queue",
        "OrphanRole": "AWS::IAM::Role",
    }
