"""Read a function's definition and environment from template.yaml, as `sam local invoke` would."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class TemplateError(ValueError):
    """The template does not define what was asked for."""


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short-form intrinsics as ``{"Fn::X": ...}`` dicts."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Parse template.yaml, intrinsics included."""
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except OSError as error:
        msg = f"cannot read {path}: {error.strerror or error}: run from the repository or pass --template"
        raise TemplateError(msg) from error
    except yaml.YAMLError as error:
        msg = f"{path} is not valid YAML: {str(error).splitlines()[0]}"
        raise TemplateError(msg) from error
    if not isinstance(document, dict):
        msg = f"{path} is not a CloudFormation template"
        raise TemplateError(msg)
    return document


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """What is needed to run one function in-process."""

    name: str
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    unresolved: tuple[str, ...]
    timeout_seconds: int
    memory_mb: int


def _functions(template: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    found: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        # Fn::ForEach::<loop> entries (AWS::LanguageExtensions) are lists, not resources.
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        code_uri = str(resource.get("Properties", {}).get("CodeUri", ""))
        short = Path(code_uri.rstrip("/")).name or logical_id
        found[short] = (logical_id, resource)
    return found


def function_names(template: Mapping[str, Any]) -> list[str]:
    """Every function in the template by its short name (the folder under functions/)."""
    return sorted(_functions(template))


def resolve_function_name(template: Mapping[str, Any], name: str, template_path: Path) -> str:
    """The short name of a function given by short name (``ingest``) or SAM logical id (``IngestFunction``)."""
    functions = _functions(template)
    if name in functions:
        return name
    for short, (logical_id, _) in functions.items():
        if name == logical_id:
            return short
    known = ", ".join(f"{short} ({logical_id})" for short, (logical_id, _) in sorted(functions.items()))
    msg = f"no function {name!r} in {template_path}: use one of {known}"
    raise TemplateError(msg)


def _resolve(value: object, parameters: Mapping[str, Any], resources: Mapping[str, str]) -> str | None:
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and "Ref" in value:
        ref = str(value["Ref"])
        if ref in resources:
            return resources[ref]
        default = parameters.get(ref, {}).get("Default")
        return None if default is None else str(default)
    return None


def function_spec(
    template_path: Path,
    name: str,
    resources: Mapping[str, str] | None = None,
) -> FunctionSpec:
    """The function's handler and environment: Globals, then the function's own, with Refs resolved."""
    template = load_template(template_path)
    functions = _functions(template)
    name = resolve_function_name(template, name, template_path)
    logical_id, resource = functions[name]
    properties = resource.get("Properties", {})
    global_function = template.get("Globals", {}).get("Function", {})
    variables: dict[str, Any] = {}
    variables.update(global_function.get("Environment", {}).get("Variables", {}))
    variables.update(properties.get("Environment", {}).get("Variables", {}))
    parameters = template.get("Parameters", {})
    environment: dict[str, str] = {}
    unresolved: list[str] = []
    for key, value in variables.items():
        resolved = _resolve(value, parameters, resources or {})
        if resolved is None:
            unresolved.append(key)
        else:
            environment[key] = resolved
    code_dir = (template_path.parent / str(properties.get("CodeUri", ""))).resolve()
    return FunctionSpec(
        name=name,
        logical_id=logical_id,
        code_dir=code_dir,
        handler=str(properties.get("Handler", global_function.get("Handler", "app.lambda_handler"))),
        environment=environment,
        unresolved=tuple(unresolved),
        timeout_seconds=int(properties.get("Timeout", global_function.get("Timeout", 60))),
        memory_mb=int(properties.get("MemorySize", global_function.get("MemorySize", 512))),
    )
