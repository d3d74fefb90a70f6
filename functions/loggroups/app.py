"""Service log groups: create-or-adopt each /aws/ecs/<svc>/... group for CloudFormation (Custom::ServiceLogGroup)."""

from __future__ import annotations

from typing import Any

from logpipe.runtime import build_logger
from logpipe.service_log_groups import ServiceLogGroups, answer, send_response

_groups: ServiceLogGroups | None = None
_logger: Any = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ARG001 - fixed Lambda signature
    """Answer one CloudFormation request on its pre-signed URL, whatever happens; return the response sent."""
    global _groups, _logger
    if _groups is None:
        _groups, _logger = ServiceLogGroups(), build_logger("logpipe-log-groups")
    response = answer(event, _groups)
    status = send_response(event, response)
    document = response.document(event)
    _logger.info(
        "Answered",
        extra={"request": event.get("RequestType"), "status": document["Status"], "reason": document["Reason"]},
    )
    return document | {"ResponseHttpStatus": status}
