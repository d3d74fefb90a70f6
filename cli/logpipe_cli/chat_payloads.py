"""What Slack and Microsoft Teams accept, and what they would show: payload checks and text renderings.

The checks follow the platforms' published rules (no official JSON Schema exists for Block Kit):

- Slack incoming webhooks take ``text`` and/or ``blocks``. With blocks, ``text`` is the fallback that
  notifications (on mobile, only it) show. At most 50 blocks; ``block_id`` unique and at most 255
  characters. header: a ``plain_text`` object of at most 150 characters. section: ``text`` (at most
  3000) and/or ``fields`` (at most 10, each at most 2000). context: 1-10 text or image elements.
  actions: 1-25 elements; a button has ``plain_text`` text of at most 75 characters, ``url`` at most
  3000, unique ``action_id`` at most 255. Text objects are ``plain_text`` (``emoji`` allowed) or
  ``mrkdwn`` (``verbatim`` allowed) with non-empty ``text``.
- A Teams Workflows webhook takes ``{"type": "message", "attachments": [...]}``; each attachment has
  ``contentType`` ``application/vnd.microsoft.card.adaptive`` and an Adaptive Card as ``content``:
  ``type`` ``AdaptiveCard`` and ``version`` (required on the top-level card), at most 1.5 (what
  Teams renders), and no element or action newer than the card's version. TextBlock needs
  ``text``, FactSet non-empty ``facts`` of ``title``/``value`` strings, Container ``items``,
  ColumnSet ``columns``, Image ``url``; Action.OpenUrl needs an absolute ``url``.

A payload that breaks a rule gets a list of problems (empty when valid); the loopback receiver
answers such a payload with HTTP 400, as the real services do.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

SLACK_BLOCK_TYPES = frozenset({"header", "section", "context", "actions", "divider", "image"})
TEAMS_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
TEAMS_MAX_VERSION = (1, 5)
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# Element and action -> (schema version it appeared in, required properties).
CARD_ELEMENTS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "TextBlock": ((1, 0), ("text",)),
    "FactSet": ((1, 0), ("facts",)),
    "Container": ((1, 0), ("items",)),
    "ColumnSet": ((1, 0), ()),
    "Column": ((1, 0), ()),
    "Image": ((1, 0), ("url",)),
    "ImageSet": ((1, 0), ("images",)),
    "ActionSet": ((1, 2), ("actions",)),
    "RichTextBlock": ((1, 2), ("inlines",)),
    "Table": ((1, 5), ()),
}
CARD_ACTIONS: dict[str, tuple[tuple[int, int], tuple[str, ...]]] = {
    "Action.OpenUrl": ((1, 0), ("url",)),
    "Action.Submit": ((1, 0), ()),
    "Action.ShowCard": ((1, 0), ("card",)),
    "Action.ToggleVisibility": ((1, 2), ("targetElements",)),
    "Action.Execute": ((1, 4), ()),
}
_CONTAINER_STYLES = frozenset({"default", "emphasis", "good", "attention", "warning", "accent"})
_TEXT_COLORS = frozenset({"default", "dark", "light", "accent", "good", "warning", "attention"})
_VERSION = re.compile(r"^(\d+)\.(\d+)$")


# ------------------------------------------------------------------------------------------------
# Slack
# ------------------------------------------------------------------------------------------------
def _text_object(value: object, where: str, limit: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: a text object is required"]
    kind = value.get("type")
    problems = []
    if kind not in {"plain_text", "mrkdwn"} or (plain_only and kind != "plain_text"):
        problems.append(f"{where}.type must be {'plain_text' if plain_only else 'plain_text or mrkdwn'}, got {kind!r}")
    text = value.get("text")
    if not isinstance(text, str) or not text:
        problems.append(f"{where}.text must be a non-empty string")
    elif len(text) > limit:
        problems.append(f"{where}.text is {len(text)} characters, at most {limit}")
    if "emoji" in value and (kind != "plain_text" or not isinstance(value["emoji"], bool)):
        problems.append(f"{where}.emoji is only a boolean of plain_text")
    if "verbatim" in value and (kind != "mrkdwn" or not isinstance(value["verbatim"], bool)):
        problems.append(f"{where}.verbatim is only a boolean of mrkdwn")
    return problems


def _slack_element(element: object, where: str, action_ids: set[str]) -> list[str]:
    if not isinstance(element, Mapping):
        return [f"{where} must be an object"]
    if element.get("type") != "button":
        return [f"{where}: only buttons are checked here, got {element.get('type')!r}"]
    problems = _text_object(element.get("text"), f"{where}.text", 75, plain_only=True)
    url = element.get("url")
    if url is not None and (not isinstance(url, str) or len(url) > 3000):
        problems.append(f"{where}.url must be a string of at most 3000 characters")
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or len(action_id) > 255:
            problems.append(f"{where}.action_id must be a string of at most 255 characters")
        elif action_id in action_ids:
            problems.append(f"{where}.action_id {action_id!r} is not unique")
        else:
            action_ids.add(action_id)
    return problems


def _slack_block(block: Mapping[str, Any], where: str, action_ids: set[str]) -> list[str]:  # noqa: PLR0912 - one branch per block type
    kind = block.get("type")
    problems: list[str] = []
    if kind == "header":
        problems += _text_object(block.get("text"), f"{where}.text", 150, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{where}: a section needs text or fields")
        if "text" in block:
            problems += _text_object(block["text"], f"{where}.text", 3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields or len(fields) > 10:
                problems.append(f"{where}.fields must hold 1 to 10 text objects")
            else:
                for index, item in enumerate(fields):
                    problems += _text_object(item, f"{where}.fields[{index}]", 2000)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > 10:
            problems.append(f"{where}.elements must hold 1 to 10 elements")
        else:
            for index, item in enumerate(elements):
                if isinstance(item, Mapping) and item.get("type") == "image":
                    continue
                problems += _text_object(item, f"{where}.elements[{index}]", 3000)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements or len(elements) > 25:
            problems.append(f"{where}.elements must hold 1 to 25 elements")
        else:
            for index, item in enumerate(elements):
                problems += _slack_element(item, f"{where}.elements[{index}]", action_ids)
    elif kind not in SLACK_BLOCK_TYPES:
        problems.append(f"{where}.type {kind!r} is not a Block Kit block")
    return problems


def slack_problems(payload: object) -> list[str]:
    """Every rule of an incoming-webhook message that ``payload`` breaks (empty: valid)."""
    if not isinstance(payload, Mapping):
        return ["the message must be a JSON object"]
    problems: list[str] = []
    text = payload.get("text")
    blocks = payload.get("blocks")
    if blocks is None and not text:
        problems.append("a message needs text or blocks")
    if blocks is not None and (not isinstance(text, str) or not text.strip()):
        problems.append("text is required with blocks: it is the notification fallback")
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
        return [*problems, "blocks must hold 1 to 50 blocks"]
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"blocks[{index}]"
        if not isinstance(block, Mapping) or "type" not in block:
            problems.append(f"{where} must be an object with a type")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > 255:
                problems.append(f"{where}.block_id must be a string of at most 255 characters")
            elif block_id in block_ids:
                problems.append(f"{where}.block_id {block_id!r} is not unique")
            block_ids.add(str(block_id))
        problems += _slack_block(block, where, action_ids)
    return problems


_SLACK_LINK = re.compile(r"<([^<>|]+)\|([^<>]+)>")


def slack_mrkdwn_text(text: str) -> str:
    """Slack mrkdwn as a reader sees it: links by their label, no bold markers, entities decoded."""
    shown = _SLACK_LINK.sub(lambda match: f"[{match.group(2)}]", text)
    shown = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", shown)
    return html.unescape(shown)


def slack_text(payload: Mapping[str, Any]) -> str:
    """What a Slack channel shows for an incoming-webhook message (blocks, else the text)."""
    blocks = payload.get("blocks")
    if not blocks:
        return slack_mrkdwn_text(str(payload.get("text", "")))
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(block["text"]["text"])
        elif kind == "section":
            if "text" in block:
                lines.extend(slack_mrkdwn_text(block["text"]["text"]).splitlines())
            for item in block.get("fields", []):
                name, _, value = slack_mrkdwn_text(item["text"]).partition("\n")
                lines.append(f"  {name}: {value}")
        elif kind == "context":
            lines.extend(slack_mrkdwn_text(e.get("text", "")) for e in block["elements"] if "text" in e)
        elif kind == "divider":
            lines.append("---")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Microsoft Teams (Workflows webhook, Adaptive Card)
# ------------------------------------------------------------------------------------------------
def _version(value: object) -> tuple[int, int] | None:
    match = _VERSION.match(value) if isinstance(value, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _card_items(items: object, where: str, card_version: tuple[int, int]) -> list[str]:
    if not isinstance(items, list):
        return [f"{where} must be a list"]
    problems = []
    for index, item in enumerate(items):
        problems += _card_element(item, f"{where}[{index}]", card_version)
    return problems


def _card_element(element: object, where: str, card_version: tuple[int, int]) -> list[str]:  # noqa: PLR0912 - one branch per element type
    if not isinstance(element, Mapping):
        return [f"{where} must be an object"]
    kind = str(element.get("type"))
    known = CARD_ELEMENTS.get(kind)
    if known is None:
        return [f"{where}.type {kind!r} is not an Adaptive Card element"]
    since, required = known
    problems = [f"{where} ({kind}) needs {name}" for name in required if name not in element]
    if since > card_version:
        problems.append(f"{where}: {kind} needs card version {since[0]}.{since[1]}")
    if kind == "TextBlock":
        if not isinstance(element.get("text"), str):
            problems.append(f"{where}.text must be a string")
        if "color" in element and str(element["color"]).lower() not in _TEXT_COLORS:
            problems.append(f"{where}.color {element['color']!r} is not a TextBlock colour")
    elif kind == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not facts:
            problems.append(f"{where}.facts must be a non-empty list")
        else:
            for index, fact in enumerate(facts):
                if not isinstance(fact, Mapping) or not all(isinstance(fact.get(k), str) for k in ("title", "value")):
                    problems.append(f"{where}.facts[{index}] needs title and value strings")
    elif kind == "Container":
        if "style" in element and str(element["style"]).lower() not in _CONTAINER_STYLES:
            problems.append(f"{where}.style {element['style']!r} is not a container style")
        problems += _card_items(element.get("items"), f"{where}.items", card_version)
    elif kind == "ColumnSet":
        problems += _card_items(element.get("columns", []), f"{where}.columns", card_version)
    elif kind == "Column":
        problems += _card_items(element.get("items", []), f"{where}.items", card_version)
    elif kind == "ActionSet":
        problems += _card_actions(element.get("actions"), f"{where}.actions", card_version)
    return problems


def _card_actions(actions: object, where: str, card_version: tuple[int, int]) -> list[str]:
    if not isinstance(actions, list):
        return [f"{where} must be a list"]
    problems = []
    for index, action in enumerate(actions):
        at = f"{where}[{index}]"
        if not isinstance(action, Mapping):
            problems.append(f"{at} must be an object")
            continue
        kind = str(action.get("type"))
        known = CARD_ACTIONS.get(kind)
        if known is None:
            problems.append(f"{at}.type {kind!r} is not an Adaptive Card action")
            continue
        since, required = known
        problems += [f"{at} ({kind}) needs {name}" for name in required if name not in action]
        if since > card_version:
            problems.append(f"{at}: {kind} needs card version {since[0]}.{since[1]}")
        url = action.get("url")
        if kind == "Action.OpenUrl" and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
            problems.append(f"{at}.url must be an absolute http(s) URL")
    return problems


def adaptive_card_problems(card: object, where: str = "card") -> list[str]:
    """Every rule a top-level Adaptive Card breaks, for a Teams host (version at most 1.5)."""
    if not isinstance(card, Mapping):
        return [f"{where} must be an object"]
    problems: list[str] = []
    if card.get("type") != "AdaptiveCard":
        problems.append(f"{where}.type must be AdaptiveCard")
    version = _version(card.get("version"))
    if version is None:
        problems.append(f"{where}.version is required on a top-level card (e.g. '1.4')")
        version = (1, 0)
    elif version > TEAMS_MAX_VERSION:
        problems.append(f"{where}.version {card.get('version')} is newer than Teams renders (1.5)")
    if "$schema" in card and card["$schema"] != ADAPTIVE_CARD_SCHEMA:
        problems.append(f"{where}.$schema must be {ADAPTIVE_CARD_SCHEMA}")
    problems += _card_items(card.get("body", []), f"{where}.body", version)
    if "actions" in card:
        problems += _card_actions(card["actions"], f"{where}.actions", version)
    return problems


def teams_problems(payload: object) -> list[str]:
    """Every rule of a Teams Workflows webhook message that ``payload`` breaks (empty: valid)."""
    if not isinstance(payload, Mapping):
        return ["the message must be a JSON object"]
    problems: list[str] = []
    if payload.get("type") != "message":
        problems.append("type must be 'message'")
    attachments = payload.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return [*problems, "attachments must be a non-empty list (the flow reads attachments[0].content)"]
    for index, attachment in enumerate(attachments):
        where = f"attachments[{index}]"
        if not isinstance(attachment, Mapping):
            problems.append(f"{where} must be an object")
            continue
        if attachment.get("contentType") != TEAMS_CONTENT_TYPE:
            problems.append(f"{where}.contentType must be {TEAMS_CONTENT_TYPE}")
        problems += adaptive_card_problems(attachment.get("content"), f"{where}.content")
    return problems


def _card_lines(elements: list[Mapping[str, Any]], indent: str = "") -> Iterator[str]:
    for element in elements:
        kind = element.get("type")
        if kind == "TextBlock":
            yield from (indent + line for line in str(element.get("text", "")).splitlines())
        elif kind == "FactSet":
            yield from (f"{indent}  {fact['title']}: {fact['value']}" for fact in element.get("facts", []))
        elif kind in {"Container", "Column"}:
            yield from _card_lines(element.get("items", []), indent)
        elif kind == "ColumnSet":
            yield from _card_lines(element.get("columns", []), indent)


def teams_text(payload: Mapping[str, Any]) -> str:
    """What a Teams channel shows for a Workflows webhook message (its first card)."""
    card = payload["attachments"][0]["content"]
    lines = list(_card_lines(card.get("body", [])))
    actions = [f"[{action.get('title') or action.get('url')}]" for action in card.get("actions", [])]
    if actions:
        lines.append("  ".join(actions))
    return "\n".join(lines)


def payload_links(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, url) of every link of a Slack or Teams message."""
    if payload.get("type") == "message":
        card = payload["attachments"][0]["content"]
        return [(str(a.get("title", "")), str(a["url"])) for a in card.get("actions", []) if "url" in a]
    found: list[tuple[str, str]] = []
    for block in payload.get("blocks", []):
        texts = [block.get("text", {}).get("text", "")] + [f.get("text", "") for f in block.get("fields", [])]
        for text in texts:
            found.extend((label, url) for url, label in _SLACK_LINK.findall(text))
    return found
