"""``isolator-dvdcli``'s command line, read as dvdcli reads its own: the flags (on either side
of the subcommand, as dvdcli's persistent ones), Go's booleans, the environment, the defaults.

``parse`` turns it into a ``Request``; ``isolator.dvdcli.cli`` runs that.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from isolator.config.defaults import PLUGIN_SOCKET_DIR, PLUGIN_SPEC_DIRS
from isolator.dvdcli.ledger import DEFAULT_STATE_DIR
from isolator.version import version

__all__ = [
    "ENV_MOUNT_ID",
    "ENV_RETRY_BUDGET",
    "ENV_SOCKET_DIR",
    "ENV_SPEC_DIRS",
    "ENV_STATE_DIR",
    "ENV_UNMOUNT_UNRECORDED",
    "PROG",
    "Request",
    "help_text",
    "parse",
]

PROG: Final = "isolator-dvdcli"
ENV_SOCKET_DIR: Final = "DVDCLI_SOCKET_DIR"
ENV_SPEC_DIRS: Final = "DVDCLI_SPEC_DIRS"
"""Spec directories separated by ``os.pathsep`` (``:``)."""
ENV_RETRY_BUDGET: Final = "DVDCLI_RETRY_BUDGET"
ENV_MOUNT_ID: Final = "DVDCLI_MOUNT_ID"
"""Set, even to ``""``, it is the Mount/Unmount ``ID`` (``""`` is what dvdcli sends)."""
ENV_STATE_DIR: Final = "DVDCLI_STATE_DIR"
ENV_UNMOUNT_UNRECORDED: Final = "DVDCLI_UNMOUNT_UNRECORDED"
"""A Go boolean: whether unmount sends the Unmount of a volume it has no record of."""

_GO_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})


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
    topic: str | None = None
    """The command whose help ``help`` prints; None: the whole help."""
    state_dir: str = DEFAULT_STATE_DIR
    """Where mount and unmount keep what they mounted (``isolator.dvdcli.ledger``)."""
    unmount_unrecorded: bool = False
    """Whether unmount sends the Unmount of a volume it has no record of."""


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
        "--state-dir",
        dest=prefix + "state_dir",
        metavar="DIR",
        help=(
            f"where mount records what it mounted, so that a volume is mounted once however "
            f"many times it is asked and unmount sends one Unmount with the same ID "
            f"(${ENV_STATE_DIR}; default {DEFAULT_STATE_DIR})"
        ),
    )
    parser.add_argument(
        "--unmount-unrecorded",
        dest=prefix + "unmount_unrecorded",
        nargs="?",
        const=True,
        type=_go_bool,
        metavar="BOOL",
        help=(
            f"send the Unmount of a volume with no record too (e.g. one mounted before "
            f"{PROG} kept records); without it, such an unmount sends nothing and "
            f"succeeds (${ENV_UNMOUNT_UNRECORDED})"
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
    """The parser and, by name, its subcommands' parsers (for ``help COMMAND``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A Docker volume driver CLI, a drop-in for rexray/dvdcli.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
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
    unmount_unrecorded: bool | None = pick("unmount_unrecorded")
    if unmount_unrecorded is None and environ.get(ENV_UNMOUNT_UNRECORDED):
        try:
            unmount_unrecorded = _go_bool(environ[ENV_UNMOUNT_UNRECORDED])
        except argparse.ArgumentTypeError as error:
            parser.error(f"${ENV_UNMOUNT_UNRECORDED}: {error}")
    return Request(
        command=args.command,
        driver=pick("volumedriver") or "",
        name=pick("volumename") or "",
        options=dict(getattr(args, "volumeopts", [])),
        explicit_create=getattr(args, "explicitcreate", False),
        topic=getattr(args, "topic", None),
        socket_dir=socket_dir,
        spec_dirs=tuple(spec_dirs) if spec_dirs else PLUGIN_SPEC_DIRS,
        retry_budget=retry_budget,
        mount_id=mount_id,
        state_dir=pick("state_dir") or environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR,
        unmount_unrecorded=bool(unmount_unrecorded),
    )


def parse(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Request:
    """The ``Request`` that ``argv`` (default ``sys.argv[1:]``) and ``environ`` make.

    Raises ``SystemExit`` as argparse does: 0 after printing ``--help``, 2 after printing
    a usage error.
    """
    parser, _ = _parser()
    return _request(parser, parser.parse_args(argv), environ)


def help_text(topic: str | None) -> str:
    """The help of command ``topic``, or of the whole program for None."""
    parser, subparsers = _parser()
    return (subparsers[topic] if topic else parser).format_help()
