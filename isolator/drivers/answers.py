"""Plugin answers decoded as Docker decodes them: errors in every form seen in the wild, keys
matched in any case, a volume's keys spelled as Docker spells them.

Kept apart from the endpoints (``protocol``) because this is where the wild's variety is
absorbed: what a plugin may send, and what of it counts as an error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from isolator.common.errors import DriverError
from isolator.drivers.discovery import json_get
from isolator.drivers.transport import Answer

__all__ = [
    "MAX_MESSAGE",
    "VOLUME_KEYS",
    "JsonObject",
    "NoSuchVolumeError",
    "PluginCallError",
    "canonical",
    "decode",
    "invalid",
    "json_object",
    "string",
]

MAX_MESSAGE: Final = 2000
"""Raw bodies quoted in errors are cut to this many characters."""

VOLUME_KEYS: Final = ("Name", "Mountpoint", "CreatedAt", "Status")

JsonObject = dict[str, Any]


class PluginCallError(DriverError):
    """The plugin answered a call with an error: ``"<method>: <message>"``.

    ``status`` is the HTTP status (200 when the error came as ``Err`` in a 200 answer).
    """

    def __init__(self, plugin: str, method: str, status: int, message: str) -> None:
        self.plugin = plugin
        self.method = method
        self.status = status
        self.message = message
        super().__init__(f"{method}: {message}")


class NoSuchVolumeError(DriverError):
    """Get answered with neither a volume nor an error (Docker's ``errNoSuchVolume``)."""

    def __init__(self, plugin: str, name: str) -> None:
        self.plugin = plugin
        self.name = name
        super().__init__(f"Docker volume plugin {plugin!r} has no volume {name!r}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _failure_message(answer: Answer) -> str:
    """What a non-200 answer says went wrong: ``Err``, else ``Error``, else the body."""
    body = answer.body.decode("utf-8", errors="replace")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for key in ("Err", "Error"):
            value = json_get(document, key)
            if value not in (None, ""):
                return _clip(_text(value))
    if body.strip():
        return _clip(body)
    return f"HTTP {answer.status} {answer.reason}".strip()


def canonical(obj: JsonObject, keys: Sequence[str]) -> JsonObject:
    """``obj`` with ``keys`` spelled as Docker spells them (``mountpoint`` -> ``Mountpoint``)."""
    folded = {key.casefold() for key in keys}
    result = {k: v for k, v in obj.items() if k.casefold() not in folded}
    missing = object()
    for key in keys:
        value = json_get(obj, key, missing)
        if value is not missing:
            result[key] = value
    return result


def invalid(plugin: str, method: str, problem: str) -> DriverError:
    """An answer that is not what the protocol says, worded the same for every field."""
    return DriverError(
        f"Docker volume plugin {plugin!r} sent an invalid answer to {method}: {problem}"
    )


def decode(plugin: str, method: str, answer: Answer) -> JsonObject:
    """The answer as a JSON object, or the error it carries, raised."""
    if answer.status != 200:
        raise PluginCallError(plugin, method, answer.status, _failure_message(answer))
    if not answer.body.strip():
        return {}  # Go would fail on an empty body; nothing in it is no error either
    try:
        document = json.loads(answer.body)
    except ValueError:
        text = _clip(answer.body.decode("utf-8", "replace"))
        raise invalid(plugin, method, f"not JSON: {text!r}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise invalid(plugin, method, "not a JSON object")
    error = json_get(document, "Err")
    if error not in (None, ""):
        raise PluginCallError(plugin, method, 200, _clip(_text(error)))
    return document


def string(plugin: str, method: str, answer: JsonObject, key: str) -> str:
    """The string ``answer[key]``, any case; absent or null is ``""``, as Go decodes it."""
    value = json_get(answer, key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(plugin, method, f"{key} is {json.dumps(value)}, not a string")
    return value


def json_object(plugin: str, method: str, answer: JsonObject, key: str) -> JsonObject | None:
    """The object ``answer[key]``, any case, or None when absent or null."""
    value = json_get(answer, key)
    if value is not None and not isinstance(value, dict):
        raise invalid(plugin, method, f"{key} is not an object")
    return value
