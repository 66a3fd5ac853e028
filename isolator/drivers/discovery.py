"""Finding a legacy (v1) Docker volume plugin by name, the way dockerd does.

Docker looks for ``NAME.sock`` and ``NAME/NAME.sock`` in the socket directory, then in
each spec directory for ``NAME.spec``, ``NAME/NAME.spec``, ``NAME.json`` and
``NAME/NAME.json``; the first match wins. Operators already lay plugins out this way
for dockerd, so the isolator finds the same plugin under the same name.

Managed (v2) plugins are not found here, as with dvdcli: they have no such files.
``scan_plugins`` lists every name these directories hold, as Docker's ``plugins.Scan``.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from isolator.common.errors import DriverError
from isolator.common.fs import read_small_file
from isolator.common.names import component_problem
from isolator.config.defaults import PLUGIN_SOCKET_DIR, PLUGIN_SPEC_DIRS

__all__ = [
    "MAX_SPEC_BYTES",
    "SCHEMES",
    "PluginAddress",
    "PluginNotFoundError",
    "PluginSpecError",
    "TLSOptions",
    "candidate_paths",
    "find_plugin",
    "json_get",
    "parse_address",
    "scan_plugins",
    "validate_plugin_name",
]

SCHEMES: Final = ("unix", "tcp", "http", "https")
"""The URL schemes a spec file may use. Docker hands any other scheme to Go's dialer,
where it fails later and less clearly; here it is refused as an unknown protocol."""

MAX_SPEC_BYTES: Final = 65536
"""A spec or JSON file holds one address: anything larger is not one."""

_MISSING: Final = object()


def json_get(obj: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``obj[key]`` matched as Go's ``encoding/json`` does: exact key first, else any case.

    Plugins and spec files are written for Docker, which accepts ``mountpoint`` for
    ``Mountpoint``; so must we.
    """
    value = obj.get(key, _MISSING)
    if value is not _MISSING:
        return value
    folded = key.casefold()
    for candidate, value in obj.items():
        if isinstance(candidate, str) and candidate.casefold() == folded:
            return value
    return default


class PluginNotFoundError(DriverError):
    """No socket or spec file for the plugin; ``paths`` lists every path looked at."""

    def __init__(self, name: str, paths: Sequence[str], notes: Mapping[str, str]) -> None:
        self.name = name
        self.paths = tuple(paths)
        looked = ", ".join(f"{p} ({notes[p]})" if p in notes else p for p in self.paths)
        super().__init__(f"Docker volume plugin {name!r} not found; looked for {looked}")


class PluginSpecError(DriverError):
    """A spec or JSON file for the plugin exists but cannot be used; ``path`` names it."""

    def __init__(self, name: str, path: str, problem: str) -> None:
        self.name = name
        self.path = path
        super().__init__(f"Docker volume plugin {name!r}: {path}: {problem}")


@dataclass(frozen=True)
class TLSOptions:
    """The ``TLSConfig`` of a ``.json`` spec (go-connections ``tlsconfig.Options``).

    ``ca_file`` is added to the system roots; ``cert_file`` with ``key_file`` is a client
    certificate. ``insecure_skip_verify`` turns verification off.
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class PluginAddress:
    """Where a discovered plugin listens and how to talk to it.

    ``scheme`` is the URL's (``unix``, ``tcp``, ``http`` or ``https``). A unix plugin has
    ``socket_path``; the others have ``host`` as ``host:port`` (or a bare host for
    http/https, which then use their default ports). ``tls`` is None when no TLS
    settings apply (an https address then verifies against the system roots).
    ``source`` is the file the address came from.
    """

    name: str
    scheme: Literal["unix", "tcp", "http", "https"]
    source: str
    socket_path: str | None = None
    host: str | None = None
    tls: TLSOptions | None = None

    @property
    def transport(self) -> Literal["unix", "tcp"]:
        """``unix`` for a socket file, ``tcp`` for everything reached over the network."""
        return "unix" if self.scheme == "unix" else "tcp"

    @property
    def wire_scheme(self) -> Literal["http", "https"]:
        """What is spoken on the connection: TLS only for ``https://`` (as Docker)."""
        return "https" if self.scheme == "https" else "http"

    @property
    def url(self) -> str:
        """The address as a URL, without any path (Docker drops it): for messages."""
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return f"{self.scheme}://{self.host}"


# -- names and paths ------------------------------------------------------------------------


def validate_plugin_name(name: str) -> None:
    """Refuse a name that is not one path component: it would escape the plugin dirs."""
    if component_problem(name) is not None:
        raise DriverError(
            f"Invalid Docker volume plugin name {name!r}: a plugin name is one path "
            "component (not empty, '.' or '..', and without '/')"
        )


def _both_forms(directory: str, name: str, extension: str) -> list[str]:
    return [
        os.path.join(directory, name + extension),
        os.path.join(directory, name, name + extension),
    ]


def candidate_paths(
    name: str,
    *,
    socket_dir: str = PLUGIN_SOCKET_DIR,
    spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
) -> list[str]:
    """Every path ``find_plugin`` looks at, in Docker's order."""
    paths = _both_forms(socket_dir, name, ".sock")
    for directory in spec_dirs:
        paths += _both_forms(directory, name, ".spec")
        paths += _both_forms(directory, name, ".json")
    return paths


# -- addresses ------------------------------------------------------------------------------


def parse_address(name: str, source: str, url: str, tls: TLSOptions | None) -> PluginAddress:
    """Turn a spec URL into an address; any path in a network URL is dropped (as Docker).

    ``tls`` applies to an https address only; ``None`` there means "verify against the
    system roots".
    """
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as error:
        raise PluginSpecError(name, source, f"bad address {text!r}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise PluginSpecError(
            name,
            source,
            f"Unknown protocol in {text!r} (expected unix://, tcp://, http:// or https://)",
        )
    host = parts.netloc.rpartition("@")[2]  # Go's URL.Host has no user info
    if scheme == "unix":
        # Go dials URL.Host when set ("unix://x.sock"), else URL.Path ("unix:///x.sock").
        socket_path = host or parts.path
        if not socket_path:
            raise PluginSpecError(name, source, f"no socket path in {text!r}")
        return PluginAddress(name, "unix", source, socket_path=socket_path)
    if not host:
        raise PluginSpecError(name, source, f"no host in {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise PluginSpecError(name, source, f"bad port in {text!r}") from None
    if scheme == "tcp" and port is None:
        raise PluginSpecError(name, source, f"no port in {text!r} (tcp:// needs host:port)")
    network_scheme = cast("Literal['tcp', 'http', 'https']", scheme)
    # TLS settings matter only where TLS is spoken: over https://, as in Docker.
    return PluginAddress(
        name, network_scheme, source, host=host, tls=tls if scheme == "https" else None
    )


def _read(name: str, path: str) -> str:
    """The text of a spec file, read only if it is a regular file of at most
    ``MAX_SPEC_BYTES``: a FIFO (or a device) there would block the read, or never end."""
    try:
        # Links are followed, as Docker does; a FIFO is refused, never waited on.
        return read_small_file(path, MAX_SPEC_BYTES, follow=True).decode("utf-8")
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        raise PluginSpecError(name, path, f"cannot read it: {error}") from None


def _tls_options(name: str, path: str, config: Any) -> TLSOptions | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise PluginSpecError(name, path, "TLSConfig is not a JSON object")
    files: dict[str, str] = {}
    for key in ("CAFile", "CertFile", "KeyFile"):
        value = json_get(config, key, "")
        if not isinstance(value, str):
            raise PluginSpecError(name, path, f"TLSConfig.{key} is not a string")
        files[key] = value
    insecure = json_get(config, "InsecureSkipVerify", False)
    if not isinstance(insecure, bool):
        raise PluginSpecError(name, path, "TLSConfig.InsecureSkipVerify is not a boolean")
    # Docker: a TLSConfig without a CA file does not verify the plugin's certificate.
    return TLSOptions(
        ca_file=files["CAFile"],
        cert_file=files["CertFile"],
        key_file=files["KeyFile"],
        insecure_skip_verify=insecure or not files["CAFile"],
    )


def _read_spec(name: str, path: str) -> PluginAddress:
    # Docker gives every .spec plugin {InsecureSkipVerify: true}: an https:// spec is not
    # verified. Use a .json spec with a CAFile to have the certificate checked.
    return parse_address(name, path, _read(name, path), TLSOptions(insecure_skip_verify=True))


def _read_json(name: str, path: str) -> PluginAddress:
    try:
        document = json.loads(_read(name, path))
    except ValueError as error:
        raise PluginSpecError(name, path, f"not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PluginSpecError(name, path, "not a JSON object")
    address = json_get(document, "Addr")
    if not isinstance(address, str) or not address.strip():
        raise PluginSpecError(name, path, "no Addr (the plugin's URL) in it")
    # The file name is the plugin's name; a "Name" inside is ignored, as by Docker.
    tls = _tls_options(name, path, json_get(document, "TLSConfig"))
    return parse_address(name, path, address, tls)


def find_plugin(
    name: str,
    *,
    socket_dir: str = PLUGIN_SOCKET_DIR,
    spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
) -> PluginAddress:
    """The address of plugin ``name``, looked up in Docker's order; the first match wins.

    A ``.sock`` path counts only if it is a socket (symlinks are followed, so a symlink to
    a managed plugin's socket works). A spec or JSON file counts as soon as it exists; if
    it is unreadable or malformed that is a ``PluginSpecError``, not a fall-through, as in
    Docker; so is one that is not a regular file (a FIFO is refused, never read). Raises
    ``PluginNotFoundError`` listing every path looked at.

    Blocks on the file system (a hung NFS spec directory blocks it for good): run it off
    the event loop, as ``VolumePluginAPI`` does on its ``BlockingPool``.
    """
    validate_plugin_name(name)
    notes: dict[str, str] = {}
    for path in _both_forms(socket_dir, name, ".sock"):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode):
            return PluginAddress(name, "unix", path, socket_path=path)
        notes[path] = "not a socket"
    for directory in spec_dirs:
        for extension, read in ((".spec", _read_spec), (".json", _read_json)):
            for path in _both_forms(directory, name, extension):
                if os.path.exists(path):
                    return read(name, path)
    raise PluginNotFoundError(
        name, candidate_paths(name, socket_dir=socket_dir, spec_dirs=spec_dirs), notes
    )


def _entries(directory: str) -> list[os.DirEntry[str]]:
    """The directory's entries sorted by name (Go's ``os.ReadDir``); none if unreadable."""
    try:
        with os.scandir(directory) as listing:
            return sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return []


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _socket_names(socket_dir: str) -> list[str]:
    names = []
    for entry in _entries(socket_dir):
        if entry.is_dir():
            if _is_socket(os.path.join(entry.path, entry.name + ".sock")):
                names.append(entry.name)
        elif entry.name.endswith(".sock") and _is_socket(entry.path):
            names.append(entry.name.removesuffix(".sock"))
    return names


def _spec_names(spec_dir: str) -> list[str]:
    names = []
    for entry in _entries(spec_dir):
        if entry.is_dir():
            inside = {other.name for other in _entries(entry.path)}
            if inside & {entry.name + ".spec", entry.name + ".json"}:
                names.append(entry.name)
            continue
        stem, extension = os.path.splitext(entry.name)
        if extension in (".spec", ".json"):
            names.append(stem)
    return names


def scan_plugins(
    *,
    socket_dir: str = PLUGIN_SOCKET_DIR,
    spec_dirs: Sequence[str] = PLUGIN_SPEC_DIRS,
) -> list[str]:
    """Every plugin name in the socket and spec directories, each once, in Docker's order
    (``plugins.Scan``: the sockets, then each spec directory, each sorted by name).

    ``NAME.sock`` counts if it is a socket (a symlink to one too, as in ``find_plugin``),
    ``NAME/NAME.sock`` likewise; ``NAME.spec``, ``NAME.json`` and ``NAME/NAME.spec`` or
    ``NAME/NAME.json`` count as soon as they exist. An unreadable directory holds none.
    ``find_plugin(name)`` gives the address each name resolves to. Blocks on the file
    system.
    """
    names = _socket_names(socket_dir)
    for directory in spec_dirs:
        names += _spec_names(directory)
    return list(dict.fromkeys(names))
