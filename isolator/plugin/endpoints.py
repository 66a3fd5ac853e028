"""Docker's VolumeDriver API (legacy v1) on top of ``DirectoryVolumes``, free of sockets.

Every call is ``POST /<Method>`` with a JSON body that may be empty and carries no
Content-Type. Errors follow go-plugins-helpers: HTTP 500 with ``{"Err": message}``; a
malformed request is HTTP 400, an unknown method Go's plain-text 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .errors import VolumeError
from .http_server import Response, json_response
from .state import VolumeRecord
from .volumes import DirectoryVolumes

__all__ = ["PluginCall", "respond"]

_log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


class PluginCall(NamedTuple):
    """One request the plugin received: ``method`` as in the URL (``"VolumeDriver.Mount"``)
    and its decoded ``body`` (``{}`` when empty, ``None`` when not JSON)."""

    method: str
    body: Any


class _BadRequest(Exception):
    """The request is malformed (HTTP 400), as opposed to refused (HTTP 500)."""


# -- request fields -------------------------------------------------------------------------


def _string(body: JsonObject, key: str) -> str:
    """A string field; missing or null reads as ``""`` (old Docker and dvdcli send no ``ID``)."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRequest(f"field {key!r} must be a string")
    return value


def _options(body: JsonObject) -> dict[str, str]:
    value = body.get("Opts")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _BadRequest("field 'Opts' must be an object of strings")
    return dict(value)


def _volume_json(record: VolumeRecord) -> JsonObject:
    return {
        "Name": record.name,
        "Mountpoint": record.mountpoint,
        "CreatedAt": record.created_at,
        # Free-form, as Docker shows it in ``docker volume inspect``: the mount count, and
        # which IDs sent the Mounts not yet taken back.
        "Status": {"count": record.count, "mounts": dict(record.mounts)},
    }


# -- endpoints ------------------------------------------------------------------------------

_Endpoint = Callable[[DirectoryVolumes, JsonObject], JsonObject]


def _activate(_: DirectoryVolumes, __: JsonObject) -> JsonObject:
    return {"Implements": ["VolumeDriver"]}


def _create(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.create(_string(body, "Name"), _options(body))
    return {"Err": ""}


def _remove(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.remove(_string(body, "Name"))
    return {"Err": ""}


def _mount(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Mountpoint": volumes.mount(_string(body, "Name"), _string(body, "ID")), "Err": ""}


def _unmount(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    volumes.unmount(_string(body, "Name"), _string(body, "ID"))
    return {"Err": ""}


def _path(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Mountpoint": volumes.path(_string(body, "Name")), "Err": ""}


def _get(volumes: DirectoryVolumes, body: JsonObject) -> JsonObject:
    return {"Volume": _volume_json(volumes.get(_string(body, "Name"))), "Err": ""}


def _list(volumes: DirectoryVolumes, _: JsonObject) -> JsonObject:
    return {"Volumes": [_volume_json(record) for record in volumes.list()], "Err": ""}


def _capabilities(_: DirectoryVolumes, __: JsonObject) -> JsonObject:
    return {"Capabilities": {"Scope": "local"}}


_ENDPOINTS: Mapping[str, _Endpoint] = {
    "Plugin.Activate": _activate,
    "VolumeDriver.Create": _create,
    "VolumeDriver.Remove": _remove,
    "VolumeDriver.Mount": _mount,
    "VolumeDriver.Unmount": _unmount,
    "VolumeDriver.Path": _path,
    "VolumeDriver.Get": _get,
    "VolumeDriver.List": _list,
    "VolumeDriver.Capabilities": _capabilities,
}


def respond(
    volumes: DirectoryVolumes, method: str, raw: bytes, record: Callable[[PluginCall], None]
) -> Response:
    """Answer one call; ``record`` sees every call, even an unknown or malformed one."""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:  # also invalid UTF-8
        body = None
    record(PluginCall(method, body))
    endpoint = _ENDPOINTS.get(method)
    if endpoint is None:
        return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
    if not isinstance(body, dict):
        return json_response(400, {"Err": "bad request: the body is not a JSON object"})
    try:
        return json_response(200, endpoint(volumes, body))
    except _BadRequest as error:
        return json_response(400, {"Err": f"bad request: {error}"})
    except VolumeError as error:
        return json_response(500, {"Err": str(error)})
    except Exception as error:
        _log.exception("volume plugin: %s failed", method)
        return json_response(500, {"Err": f"internal error: {error}"})
