from __future__ import annotations

import pytest

from logpipe.loggroups import parse_log_group

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("log_group", "platform", "service", "log_type"),
    [
        ("/aws/ecs/pacs-backend/application", "ecs", "pacs-backend", "application"),
        ("/aws/ecs/pacs-backend/errors", "ecs", "pacs-backend", "errors"),
        ("/aws/ecs/api/llm", "ecs", "api", "llm"),
        ("/aws/ecs/pacs-backend", "ecs", "pacs-backend", "application"),
        ("/aws/ecs/keycloak", "ecs", "keycloak", "application"),
        ("/aws/lambda/pacs-thumbnailer", "lambda", "pacs-thumbnailer", "lambda"),
        ("/aws/lambda/pacs-thumbnailer/errors", "lambda", "pacs-thumbnailer", "errors"),
        ("/aws/alb/pacs-alb/access-logs", "alb", "pacs-alb", "access-logs"),
        ("/aws/rds/pacs-postgresql/slowquery", "rds", "pacs-postgresql", "slowquery"),
        ("/aws/rds/instance/pacs-postgresql/postgresql", "rds", "pacs-postgresql", "postgresql"),
        ("/ecs/atlantis", "ecs", "atlantis", "application"),
        ("/pacs-worker", "unknown", "pacs-worker", "application"),
        ("", "unknown", "unknown", "application"),
    ],
)
def test_service_and_type_from_group_name(log_group: str, platform: str, service: str, log_type: str) -> None:
    info = parse_log_group(log_group)
    assert (info.platform, info.service, info.log_type) == (platform, service, log_type)
