"""Docker's plugin discovery: lookup order, file kinds, spec URLs, JSON specs, bad input."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.common.errors import DriverError
from isolator.config.defaults import PLUGIN_SOCKET_DIR, PLUGIN_SPEC_DIRS
from isolator.drivers.discovery import (
    MAX_SPEC_BYTES,
    PluginAddress,
    PluginNotFoundError,
    PluginSpecError,
    TLSOptions,
    candidate_paths,
    find_plugin,
    json_get,
    parse_address,
    scan_plugins,
)


class Dirs:
    """A socket dir and two spec dirs under a short temporary root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sockets = root / "run"
        self.etc = root / "etc"
        self.lib = root / "lib"
        for directory in (self.sockets, self.etc, self.lib):
            directory.mkdir()

    def find(self, name: str) -> PluginAddress:
        return find_plugin(
            name, socket_dir=str(self.sockets), spec_dirs=(str(self.etc), str(self.lib))
        )

    def scan(self) -> list[str]:
        return scan_plugins(socket_dir=str(self.sockets), spec_dirs=(str(self.etc), str(self.lib)))

    def candidates(self, name: str) -> list[str]:
        return candidate_paths(
            name, socket_dir=str(self.sockets), spec_dirs=(str(self.etc), str(self.lib))
        )


def make_socket(path: Path) -> Path:
    """A socket file nobody listens on (discovery only looks at the file type)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    finally:
        sock.close()
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def dirs() -> Iterator[Dirs]:
    root = Path(tempfile.mkdtemp(dir="/tmp"))  # short: unix socket paths max ~107 bytes
    try:
        yield Dirs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- order -----------------------------------------------------------------------------------


def test_defaults_are_dockers() -> None:
    assert PLUGIN_SOCKET_DIR == "/run/docker/plugins"
    assert PLUGIN_SPEC_DIRS == ("/etc/docker/plugins", "/usr/lib/docker/plugins")
    assert candidate_paths("x") == [
        "/run/docker/plugins/x.sock",
        "/run/docker/plugins/x/x.sock",
        "/etc/docker/plugins/x.spec",
        "/etc/docker/plugins/x/x.spec",
        "/etc/docker/plugins/x.json",
        "/etc/docker/plugins/x/x.json",
        "/usr/lib/docker/plugins/x.spec",
        "/usr/lib/docker/plugins/x/x.spec",
        "/usr/lib/docker/plugins/x.json",
        "/usr/lib/docker/plugins/x/x.json",
    ]


def test_the_whole_order_first_match_wins(dirs: Dirs) -> None:
    # Every candidate exists, each spec naming a distinct port; removing the winner each
    # time walks the whole order.
    files: list[Path] = [
        make_socket(dirs.sockets / "p.sock"),
        make_socket(dirs.sockets / "p" / "p.sock"),
    ]
    port = 9000
    for spec_dir in (dirs.etc, dirs.lib):
        for relative in ("p.spec", "p/p.spec", "p.json", "p/p.json"):
            port += 1
            url = f"tcp://127.0.0.1:{port}"
            text = json.dumps({"Addr": url}) if relative.endswith(".json") else url
            files.append(write(spec_dir / relative, text))
    assert [str(f) for f in files] == dirs.candidates("p")
    for index, path in enumerate(files):
        address = dirs.find("p")
        assert address.source == str(path)
        if index < 2:
            assert address.scheme == "unix"
            assert address.socket_path == str(path)
        else:
            assert address.host == f"127.0.0.1:{9001 + index - 2}"
        path.unlink()
    with pytest.raises(PluginNotFoundError):
        dirs.find("p")


def test_scan_lists_every_plugin_once_in_dockers_order(dirs: Dirs) -> None:
    make_socket(dirs.sockets / "b.sock")
    make_socket(dirs.sockets / "a" / "a.sock")
    make_socket(dirs.sockets / "z" / "other.sock")  # not NAME/NAME.sock: no plugin
    write(dirs.sockets / "fake.sock", "")  # not a socket
    write(dirs.etc / "c.spec", "tcp://127.0.0.1:9000")
    write(dirs.etc / "b.json", json.dumps({"Addr": "tcp://127.0.0.1:9001"}))  # b.sock wins
    write(dirs.etc / "d" / "d.json", json.dumps({"Addr": "tcp://127.0.0.1:9002"}))
    write(dirs.etc / "notes.txt", "")
    write(dirs.lib / "a.spec", "tcp://127.0.0.1:9003")
    write(dirs.lib / "e.spec", "tcp://127.0.0.1:9004")
    assert dirs.scan() == ["a", "b", "c", "d", "e"]
    assert [dirs.find(name).source for name in dirs.scan()] == [
        str(dirs.sockets / "a" / "a.sock"),
        str(dirs.sockets / "b.sock"),
        str(dirs.etc / "c.spec"),
        str(dirs.etc / "d" / "d.json"),
        str(dirs.lib / "e.spec"),
    ]


def test_scan_of_missing_directories_finds_nothing(tmp_path: Path) -> None:
    assert scan_plugins(socket_dir=str(tmp_path / "none"), spec_dirs=[str(tmp_path / "x")]) == []


def test_not_found_names_the_plugin_and_every_path(dirs: Dirs) -> None:
    with pytest.raises(PluginNotFoundError) as caught:
        dirs.find("nope")
    s, e, lib = dirs.sockets, dirs.etc, dirs.lib
    assert str(caught.value) == (
        f"Docker volume plugin 'nope' not found; looked for {s}/nope.sock, "
        f"{s}/nope/nope.sock, {e}/nope.spec, {e}/nope/nope.spec, {e}/nope.json, "
        f"{e}/nope/nope.json, {lib}/nope.spec, {lib}/nope/nope.spec, {lib}/nope.json, "
        f"{lib}/nope/nope.json"
    )
    assert isinstance(caught.value, DriverError)
    assert caught.value.name == "nope"
    assert caught.value.paths == tuple(dirs.candidates("nope"))


# -- sockets ---------------------------------------------------------------------------------


def test_a_sock_that_is_not_a_socket_is_skipped(dirs: Dirs) -> None:
    write(dirs.sockets / "p.sock", "not a socket")
    (dirs.sockets / "p").mkdir()
    (dirs.sockets / "p" / "p.sock").mkdir()  # a directory is not a socket either
    write(dirs.lib / "p.spec", "tcp://127.0.0.1:1234")
    assert dirs.find("p").source == str(dirs.lib / "p.spec")

    (dirs.lib / "p.spec").unlink()
    with pytest.raises(PluginNotFoundError) as caught:
        dirs.find("p")
    assert f"{dirs.sockets}/p.sock (not a socket), {dirs.sockets}/p/p.sock (not a socket)," in (
        str(caught.value)
    )


def test_subdirectory_socket(dirs: Dirs) -> None:
    path = make_socket(dirs.sockets / "p" / "p.sock")
    address = dirs.find("p")
    assert address == PluginAddress("p", "unix", str(path), socket_path=str(path))
    assert address.transport == "unix"
    assert address.wire_scheme == "http"
    assert address.url == f"unix://{path}"


def test_a_symlink_to_a_socket_counts(dirs: Dirs) -> None:
    # The documented workaround for managed plugins: link their socket as NAME.sock.
    target = make_socket(dirs.root / "managed" / "plugin.sock")
    os.symlink(target, dirs.sockets / "p.sock")
    assert dirs.find("p").socket_path == str(dirs.sockets / "p.sock")


def test_a_dangling_symlink_is_not_a_socket(dirs: Dirs) -> None:
    os.symlink(dirs.root / "gone.sock", dirs.sockets / "p.sock")
    with pytest.raises(PluginNotFoundError):
        dirs.find("p")


# -- spec files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "host", "socket_path"),
    [
        ("unix:///var/run/p.sock", "unix", None, "/var/run/p.sock"),
        ("unix://p.sock", "unix", None, "p.sock"),  # Go dials URL.Host when it is set
        ("tcp://127.0.0.1:8080", "tcp", "127.0.0.1:8080", None),
        ("  tcp://127.0.0.1:8080/some/path?q=1 \n", "tcp", "127.0.0.1:8080", None),
        ("TCP://localhost:80", "tcp", "localhost:80", None),
        ("http://127.0.0.1:5000", "http", "127.0.0.1:5000", None),
        ("http://plugins.example/docker/plugin", "http", "plugins.example", None),
        ("https://[::1]:8443/x", "https", "[::1]:8443", None),
        ("http://user:secret@10.0.0.1:9", "http", "10.0.0.1:9", None),
    ],
)
def test_spec_url_forms(
    dirs: Dirs, text: str, scheme: str, host: str | None, socket_path: str | None
) -> None:
    path = write(dirs.etc / "p.spec", text)
    address = dirs.find("p")
    assert (address.scheme, address.host, address.socket_path) == (scheme, host, socket_path)
    assert address.source == str(path)
    assert address.wire_scheme == ("https" if scheme == "https" else "http")
    assert address.transport == ("unix" if scheme == "unix" else "tcp")
    if host is not None:
        assert address.url == f"{scheme}://{host}"  # the path is dropped, as Docker


def test_https_spec_skips_verification_as_docker(dirs: Dirs) -> None:
    write(dirs.etc / "p.spec", "https://127.0.0.1:8443")
    assert dirs.find("p").tls == TLSOptions(insecure_skip_verify=True)
    write(dirs.etc / "p.spec", "http://127.0.0.1:8443")
    assert dirs.find("p").tls is None


def test_subdirectory_spec(dirs: Dirs) -> None:
    path = write(dirs.lib / "p" / "p.spec", "tcp://127.0.0.1:1")
    assert dirs.find("p").source == str(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("127.0.0.1:8080", "Unknown protocol in '127.0.0.1:8080'"),
        ("localhost:8080", "Unknown protocol in 'localhost:8080'"),
        ("ftp://127.0.0.1:21", "Unknown protocol in 'ftp://127.0.0.1:21'"),
        ("", "Unknown protocol in ''"),
        ("/run/p.sock", "Unknown protocol in '/run/p.sock'"),
        ("unix://", "no socket path in 'unix://'"),
        ("tcp://127.0.0.1", "no port in 'tcp://127.0.0.1' (tcp:// needs host:port)"),
        ("tcp://127.0.0.1:99999", "bad port in 'tcp://127.0.0.1:99999'"),
        ("http:///path", "no host in 'http:///path'"),
    ],
)
def test_bad_spec(dirs: Dirs, text: str, problem: str) -> None:
    path = write(dirs.etc / "p.spec", text + "\n")
    with pytest.raises(PluginSpecError) as caught:
        dirs.find("p")
    assert str(caught.value).startswith(f"Docker volume plugin 'p': {path}: {problem}")
    assert caught.value.path == str(path)


def test_a_bad_spec_stops_the_search_as_in_docker(dirs: Dirs) -> None:
    write(dirs.etc / "p.spec", "nonsense")
    write(dirs.lib / "p.spec", "tcp://127.0.0.1:1")  # later in the order: never reached
    with pytest.raises(PluginSpecError, match="Unknown protocol"):
        dirs.find("p")


def test_unreadable_spec(dirs: Dirs) -> None:
    (dirs.etc / "p.spec").mkdir()  # exists, cannot be read as a file
    with pytest.raises(PluginSpecError, match=r"p\.spec: cannot read it"):
        dirs.find("p")


@pytest.mark.parametrize("kind", ["fifo", "link-to-fifo", "device"])
def test_a_spec_that_is_no_regular_file_is_refused_without_reading(dirs: Dirs, kind: str) -> None:
    # Reading a FIFO would wait for a writer, forever; /dev/zero would never end.
    path = dirs.etc / "p.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link-to-fifo":
        os.mkfifo(dirs.root / "fifo")
        os.symlink(dirs.root / "fifo", path)
    else:
        os.symlink("/dev/zero", path)
    with pytest.raises(PluginSpecError) as caught:
        dirs.find("p")
    assert str(caught.value) == (
        f"Docker volume plugin 'p': {path}: cannot read it: not a regular file"
    )


def test_an_oversized_spec_is_refused(dirs: Dirs) -> None:
    write(dirs.etc / "p.spec", "tcp://127.0.0.1:1" + " " * MAX_SPEC_BYTES)
    with pytest.raises(
        PluginSpecError, match=f"cannot read it: larger than {MAX_SPEC_BYTES} bytes"
    ):
        dirs.find("p")
    write(dirs.etc / "p.spec", "tcp://127.0.0.1:1".ljust(MAX_SPEC_BYTES))  # at the limit: fine
    assert dirs.find("p").host == "127.0.0.1:1"


# -- JSON specs ------------------------------------------------------------------------------


def test_json_spec_uses_addr_and_ignores_name(dirs: Dirs) -> None:
    path = write(dirs.etc / "p.json", json.dumps({"Name": "other", "Addr": "tcp://127.0.0.1:7/x"}))
    address = dirs.find("p")
    assert address == PluginAddress("p", "tcp", str(path), host="127.0.0.1:7")


def test_json_spec_in_a_subdirectory_with_lowercase_keys(dirs: Dirs) -> None:
    path = write(dirs.lib / "p" / "p.json", json.dumps({"addr": "unix:///x/p.sock"}))
    address = dirs.find("p")
    assert (address.socket_path, address.source) == ("/x/p.sock", str(path))


def test_json_tls_rules(dirs: Dirs) -> None:
    def address(document: object) -> PluginAddress:
        write(dirs.etc / "p.json", json.dumps(document))
        return dirs.find("p")

    url = "https://plugins.example:8443/docker/plugin"
    # No TLSConfig: no TLS settings, so the system roots verify.
    assert address({"Addr": url}).tls is None
    assert address({"Addr": url, "TLSConfig": None}).tls is None
    # A TLSConfig without CAFile: verification is off (Docker forces InsecureSkipVerify).
    assert address({"Addr": url, "TLSConfig": {}}).tls == TLSOptions(insecure_skip_verify=True)
    assert address(
        {"Addr": url, "TLSConfig": {"CertFile": "/c.pem", "KeyFile": "/k.pem"}}
    ).tls == TLSOptions(cert_file="/c.pem", key_file="/k.pem", insecure_skip_verify=True)
    # With a CAFile, verification is on unless asked off.
    config = {"CAFile": "/ca.pem", "CertFile": "/c.pem", "KeyFile": "/k.pem"}
    assert address({"Addr": url, "TLSConfig": config}).tls == TLSOptions(
        ca_file="/ca.pem", cert_file="/c.pem", key_file="/k.pem"
    )
    assert address(
        {"Addr": url, "tlsconfig": {"cafile": "/ca.pem", "InsecureSkipVerify": True}}
    ).tls == TLSOptions(ca_file="/ca.pem", insecure_skip_verify=True)
    # TLS settings do not apply to plain HTTP.
    assert address({"Addr": "http://h:1", "TLSConfig": config}).tls is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ("{}", "no Addr (the plugin's URL) in it"),
        ('{"Addr": 5}', "no Addr (the plugin's URL) in it"),
        ('{"Addr": "nonsense"}', "Unknown protocol in 'nonsense'"),
        ('{"Addr": "https://h:1", "TLSConfig": []}', "TLSConfig is not a JSON object"),
        ('{"Addr": "https://h:1", "TLSConfig": {"CAFile": 1}}', "TLSConfig.CAFile is not a string"),
        (
            '{"Addr": "https://h:1", "TLSConfig": {"InsecureSkipVerify": "yes"}}',
            "TLSConfig.InsecureSkipVerify is not a boolean",
        ),
    ],
)
def test_bad_json_spec(dirs: Dirs, text: str, problem: str) -> None:
    path = write(dirs.etc / "p.json", text)
    with pytest.raises(PluginSpecError) as caught:
        dirs.find("p")
    assert str(caught.value).startswith(f"Docker volume plugin 'p': {path}: {problem}")


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc/passwd", "/abs", "a\0b"])
def test_names_that_are_not_one_path_component_are_refused(dirs: Dirs, name: str) -> None:
    with pytest.raises(DriverError) as caught:
        dirs.find(name)
    assert not isinstance(caught.value, PluginNotFoundError)
    assert str(caught.value).startswith(f"Invalid Docker volume plugin name {name!r}")


# -- helpers ---------------------------------------------------------------------------------


def test_json_get_prefers_the_exact_key_then_any_case() -> None:
    assert json_get({"Mountpoint": "/a", "mountpoint": "/b"}, "Mountpoint") == "/a"
    assert json_get({"mountpoint": "/b"}, "Mountpoint") == "/b"
    assert json_get({"MOUNTPOINT": "/c"}, "Mountpoint") == "/c"
    assert json_get({}, "Mountpoint") is None
    assert json_get({}, "Mountpoint", "") == ""
    assert json_get({"Err": None}, "err", "missing") is None


def test_parse_address_directly() -> None:
    address = parse_address("p", "/x/p.spec", "tcp://127.0.0.1:2375/x", None)
    assert address == PluginAddress("p", "tcp", "/x/p.spec", host="127.0.0.1:2375")
