"""``isolator-dvdcli``: a maintained drop-in for rexray/dvdcli, on the isolator's plugin client.

dvdcli is unmaintained (last release 2017), yet Mesos's ``DvdcliClient`` still runs it for
every mount and unmount. This command takes dvdcli's subcommands and flags and prints what
dvdcli prints, so it can stand in for the binary (a ``dvdcli`` on PATH, as Mesos looks it up,
or ``Flags.dvdcli_path``), while the plugin calls go through the isolator's own clients
(``DockerPluginClient`` for mount and unmount, its ``VolumePluginAPI`` for the rest):

- ``mount``   Get; Create (with ``--volumeopts``) unless the volume exists or
  ``--explicitcreate`` is given; Mount. Prints the mount point and a newline.
- ``unmount`` Unmount. Prints nothing.
- ``path``    Get; its ``Mountpoint``, else Path (whose errors are ignored). Prints the
  path and a newline, or nothing when the plugin has no path.
- ``create``  Create with ``--volumeopts``. Prints nothing.
- ``remove``  Remove. Prints nothing.
- ``get``     Get. Prints the volume's name and a newline.
- ``list``    List. Prints one volume name per line.
- ``version`` Prints dvdcli's ``Binary:``/``SemVer:``/``OsArch:``/``Branch:``/``Commit:``/
  ``Formed:`` lines. ``help [COMMAND]`` prints the help.

Exit status: 0 on success; 1 when the plugin or the client fails (the message on stderr as
``isolator-dvdcli: error: <message>``); 2 on a usage error (argparse's message on stderr);
130 when interrupted.

Plugins are found as dockerd finds them, under ``--socket-dir`` (``$DVDCLI_SOCKET_DIR``)
and ``--spec-dir`` (repeatable; ``$DVDCLI_SPEC_DIRS``, ``:``-separated), by default
dockerd's directories (``isolator.defaults``; ``--help`` shows them). These,
``--volumedriver``/``--volumename`` (persistent in dvdcli), ``--retry-budget`` and
``--mount-id`` may come before or after the subcommand; ``--volumeopts`` and
``--explicitcreate`` only after it. The command line beats the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final, TextIO, TypeVar

from actors import EventLoopThread
from isolator.defaults import PLUGIN_SOCKET_DIR, PLUGIN_SPEC_DIRS
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.transport import Backoff
from isolator.errors import DriverError

__all__ = [
    "COMMANDS",
    "ENV_MOUNT_ID",
    "ENV_RETRY_BUDGET",
    "ENV_SOCKET_DIR",
    "ENV_SPEC_DIRS",
    "PROG",
    "Request",
    "main",
]

PROG: Final = "isolator-dvdcli"
ENV_SOCKET_DIR: Final = "DVDCLI_SOCKET_DIR"
ENV_SPEC_DIRS: Final = "DVDCLI_SPEC_DIRS"
"""Spec directories separated by ``os.pathsep`` (``:``)."""
ENV_RETRY_BUDGET: Final = "DVDCLI_RETRY_BUDGET"
ENV_MOUNT_ID: Final = "DVDCLI_MOUNT_ID"
"""Set, even to ``""``, it is the Mount/Unmount ``ID`` (``""`` is what dvdcli sends)."""

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

_DISTRIBUTION: Final = "docker-volume-isolator"
_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """A parsed command line, with the environment and the defaults applied."""

    command: str
    driver: str = ""
    name: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    explicit_create: bool = False
    socket_dir: str = PLUGIN_SOCKET_DIR
    spec_dirs: tuple[str, ...] = PLUGIN_SPEC_DIRS
    retry_budget: float | None = None
    """None: the client's default."""
    mount_id: str | None = None
    """None: the client's default (``default_mount_id``)."""


# -- argument types -------------------------------------------------------------------------


def _volume_option(text: str) -> tuple[str, str]:
    """``K=V``, split at the first ``=`` (dvdcli keeps only what lies between the first two)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if not key:
        raise argparse.ArgumentTypeError(f"{text!r} has an empty key")
    return key, value


def _go_bool(text: str) -> bool:
    """A boolean spelled as Go's ``strconv.ParseBool`` accepts, as pflag does."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more seconds")
    return value


# -- the parser -----------------------------------------------------------------------------

_SUB: Final = "sub_"
"""Prefix of the ``dest`` of options given after the subcommand, kept apart so that
argparse's copying of the subcommand's namespace cannot clobber those given before it."""


def _add_common(parser: argparse.ArgumentParser, prefix: str) -> None:
    """The options dvdcli makes persistent (and ours), accepted on either side of the command."""
    parser.add_argument(
        "--volumedriver", dest=prefix + "volumedriver", metavar="NAME", help="volume plugin name"
    )
    parser.add_argument(
        "--volumename", dest=prefix + "volumename", metavar="NAME", help="volume name"
    )
    parser.add_argument(
        "--socket-dir",
        dest=prefix + "socket_dir",
        metavar="DIR",
        help=f"where plugin sockets are (${ENV_SOCKET_DIR}; default {PLUGIN_SOCKET_DIR})",
    )
    parser.add_argument(
        "--spec-dir",
        dest=prefix + "spec_dirs",
        action="append",
        metavar="DIR",
        help=(
            f"where .spec/.json files are; repeatable, replaces the defaults "
            f"(${ENV_SPEC_DIRS}, {os.pathsep}-separated; default {' '.join(PLUGIN_SPEC_DIRS)})"
        ),
    )
    parser.add_argument(
        "--retry-budget",
        dest=prefix + "retry_budget",
        type=_seconds,
        metavar="SECONDS",
        help=(
            f"how long to keep retrying a plugin that is missing or not answering; "
            f"0 for no retry (${ENV_RETRY_BUDGET}; default the client's)"
        ),
    )
    parser.add_argument(
        "--mount-id",
        dest=prefix + "mount_id",
        metavar="ID",
        help=(
            f"the ID sent with Mount and Unmount; empty as dvdcli (${ENV_MOUNT_ID}; "
            f"default a stable per-machine ID, as the isolator's own plugin client)"
        ),
    )


def _add_volume_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--volumeopts",
        dest="volumeopts",
        action="append",
        type=_volume_option,
        default=[],
        metavar="KEY=VALUE",
        help="a Create option; repeatable (a value may hold '=' and ',')",
    )


_COMMAND_HELP: Final = {
    "mount": "create the volume if missing, mount it, print its mount point",
    "unmount": "unmount a volume",
    "path": "print the path of a volume",
    "create": "create a volume",
    "remove": "remove a volume",
    "get": "print the name of a volume, if the plugin has it",
    "list": "print the names of the plugin's volumes",
    "version": "print the version",
    "help": "print the help of a command",
}


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A Docker volume driver CLI, a drop-in for rexray/dvdcli.",
        allow_abbrev=False,
    )
    _add_common(parser, "")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for name, summary in _COMMAND_HELP.items():
        sub = commands.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        subparsers[name] = sub
        if name == "help":
            sub.add_argument("topic", nargs="?", metavar="COMMAND", choices=list(_COMMAND_HELP))
            continue
        if name == "version":
            continue
        _add_common(sub, _SUB)
        if name in ("mount", "create"):
            _add_volume_options(sub)
        if name == "mount":
            sub.add_argument(
                "--explicitcreate",
                nargs="?",
                const=True,
                default=False,
                type=_go_bool,
                metavar="BOOL",
                help="fail, rather than create, when the volume does not exist",
            )
    return parser, subparsers


def _request(
    parser: argparse.ArgumentParser, args: argparse.Namespace, environ: Mapping[str, str]
) -> Request:
    """The effective settings: after the command > before it > environment > default."""

    def pick(name: str) -> Any:
        later = getattr(args, _SUB + name, None)
        return later if later is not None else getattr(args, name)

    socket_dir = pick("socket_dir") or environ.get(ENV_SOCKET_DIR) or PLUGIN_SOCKET_DIR
    spec_dirs: list[str] = [
        *(args.spec_dirs or []),
        *(getattr(args, _SUB + "spec_dirs", None) or []),
    ]
    if not spec_dirs and environ.get(ENV_SPEC_DIRS):
        spec_dirs = [d for d in environ[ENV_SPEC_DIRS].split(os.pathsep) if d]
    retry_budget: float | None = pick("retry_budget")
    if retry_budget is None and environ.get(ENV_RETRY_BUDGET):
        try:
            retry_budget = _seconds(environ[ENV_RETRY_BUDGET])
        except argparse.ArgumentTypeError as error:
            parser.error(f"${ENV_RETRY_BUDGET}: {error}")
    mount_id: str | None = pick("mount_id")
    if mount_id is None:
        mount_id = environ.get(ENV_MOUNT_ID)
    return Request(
        command=args.command,
        driver=pick("volumedriver") or "",
        name=pick("volumename") or "",
        options=dict(getattr(args, "volumeopts", [])),
        explicit_create=getattr(args, "explicitcreate", False),
        socket_dir=socket_dir,
        spec_dirs=tuple(spec_dirs) if spec_dirs else PLUGIN_SPEC_DIRS,
        retry_budget=retry_budget,
        mount_id=mount_id,
    )


# -- the commands ---------------------------------------------------------------------------


def _ask(client: DockerPluginClient, call: Coroutine[Any, Any, T]) -> T:
    """Run one ``client.api`` call on the client's loop and block on it: the client's own
    timeouts and retry budget bound the wait."""
    return client.loop.submit(call).get()


def _line(text: str) -> str:
    return f"{text}\n" if text else ""


def _mount(client: DockerPluginClient, request: Request) -> str:
    return _line(client.mount(request.driver, request.name, request.options).get())


def _unmount(client: DockerPluginClient, request: Request) -> str:
    client.unmount(request.driver, request.name).get()
    return ""


def _path(client: DockerPluginClient, request: Request) -> str:
    volume = _ask(client, client.api.get(request.driver, request.name))
    mountpoint = volume.get("Mountpoint")
    if isinstance(mountpoint, str) and mountpoint:
        return _line(mountpoint)
    try:  # as Docker 1.11's volume adapter, which dvdcli uses: a failing Path is no path
        return _line(_ask(client, client.api.path(request.driver, request.name)))
    except DriverError:
        return ""


def _create(client: DockerPluginClient, request: Request) -> str:
    _ask(client, client.api.create(request.driver, request.name, request.options))
    return ""


def _remove(client: DockerPluginClient, request: Request) -> str:
    _ask(client, client.api.remove(request.driver, request.name))
    return ""


def _get(client: DockerPluginClient, request: Request) -> str:
    volume = _ask(client, client.api.get(request.driver, request.name))
    name = volume.get("Name")
    return _line(name if isinstance(name, str) and name else request.name)


def _list(client: DockerPluginClient, request: Request) -> str:
    names = (volume.get("Name") for volume in _ask(client, client.api.list(request.driver)))
    return "".join(_line(name) for name in names if isinstance(name, str))


COMMANDS: Final[Mapping[str, Callable[[DockerPluginClient, Request], str]]] = {
    "mount": _mount,
    "unmount": _unmount,
    "path": _path,
    "create": _create,
    "remove": _remove,
    "get": _get,
    "list": _list,
}
"""What each plugin command does; each returns what it prints on stdout."""


def _version() -> str:
    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return "".join(
        [
            f"Binary: {os.path.abspath(sys.argv[0])}\n",
            f"SemVer: {version}\n",
            f"OsArch: {platform.system()}-{platform.machine()}\n",
            "Branch: \n",
            "Commit: \n",
            "Formed: \n",
        ]
    )


# -- main -----------------------------------------------------------------------------------


def _write(stream: TextIO, text: str) -> None:
    """Write UTF-8 whatever the locale, as Go does: a path must reach Mesos as it is."""
    if not text:
        return
    data = text.encode("utf-8", "surrogateescape" if _escapable(text) else "replace")
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode("utf-8", "replace"))
    else:
        stream.flush()
        buffer.write(data)
    stream.flush()


def _escapable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _fail(message: str) -> int:
    _write(sys.stderr, f"{PROG}: error: {message}\n")
    return EXIT_FAILURE


def _run(request: Request) -> int:
    """Run one plugin command on a private loop, closing the client and the loop after."""
    if not request.driver:
        return _fail("Missing volume driver name")  # dvdcli's words, and its exit status 1
    if request.command != "list" and not request.name:
        return _fail("Missing volume name")
    loop = EventLoopThread(name="isolator-dvdcli-io")
    client = DockerPluginClient(
        socket_dir=request.socket_dir,
        spec_dirs=request.spec_dirs,
        explicit_create=request.explicit_create,
        mount_id=request.mount_id,
        loop=loop,
        backoff=None if request.retry_budget is None else Backoff(budget=request.retry_budget),
    )
    try:
        output = COMMANDS[request.command](client, request)
    except (DriverError, OSError) as error:
        return _fail(str(error) or type(error).__name__)
    except KeyboardInterrupt:
        _write(sys.stderr, f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        client.close()
        loop.stop()
    _write(sys.stdout, output)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one dvdcli command; the exit status (0, 1 failed, 2 usage error, 130 interrupted)."""
    parser, subparsers = _parser()
    try:
        args = parser.parse_args(argv)
        request = _request(parser, args, os.environ)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    if request.command == "version":
        _write(sys.stdout, _version())
        return EXIT_OK
    if request.command == "help":
        topic = args.topic
        _write(sys.stdout, (subparsers[topic] if topic else parser).format_help())
        return EXIT_OK
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)  # the client's retry warnings, as dvdcli's WARN lines
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    logger = logging.getLogger("isolator")
    logger.addHandler(handler)
    try:
        return _run(request)
    finally:
        logger.removeHandler(handler)


if __name__ == "__main__":
    raise SystemExit(main())
