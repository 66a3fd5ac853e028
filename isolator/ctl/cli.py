"""``isolator-ctl``'s command line: the subcommands, their options, the agent's flags, and
how each answer is printed (a table, or ``--json``) and ends (the exit status)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from isolator.common import logs
from isolator.config.flags import Flags
from isolator.config.reference import help_text
from isolator.ctl import checkpoints, csi, doctor, plugins, recovery
from isolator.ctl.tables import EXIT_USAGE, Outcome, UsageError
from isolator.version import version

__all__ = ["PROG", "main"]

PROG: Final = "isolator-ctl"

EXIT_STATUS_HELP: Final = """exit status:
  0  done, nothing wrong found
  1  something was found wrong or failed: an unreadable checkpoint, a plugin that does
     not activate, a failed doctor check, a checkpoint that could not be removed
  2  usage error: bad arguments or flags, recover without --dry-run, forget without
     --yes (nothing was done)"""

FLAGS_HELP: Final = f"""isolator flags, as the Mesos agent takes them, so its own can be passed
(also as MESOS_<FLAG> environment variables; the command line wins):
{help_text()}"""

Run = Callable[[argparse.Namespace, Flags], Outcome]


def _status(args: argparse.Namespace, flags: Flags) -> Outcome:
    return checkpoints.status(flags)


def _volumes(args: argparse.Namespace, flags: Flags) -> Outcome:
    if args.offline:
        return checkpoints.volumes(flags)
    return checkpoints.volumes(
        flags, lambda volumes: plugins.mount_points(flags, volumes, args.timeout)
    )


def _csi(args: argparse.Namespace, flags: Flags) -> Outcome:
    return csi.csi_volumes(flags)


def _plugins(args: argparse.Namespace, flags: Flags) -> Outcome:
    return plugins.plugins(flags, args.timeout)


def _doctor(args: argparse.Namespace, flags: Flags) -> Outcome:
    return doctor.doctor(flags, args.timeout)


def _recover(args: argparse.Namespace, flags: Flags) -> Outcome:
    if not args.dry_run:
        raise UsageError(
            "recover only shows what a recovery would do (--dry-run): recovering is the "
            "agent's job, when its isolator starts"
        )
    return recovery.dry_run(flags, args.known)


def _forget(args: argparse.Namespace, flags: Flags) -> Outcome:
    return checkpoints.forget(flags, args.container, yes=args.yes)


# -- the parser ---------------------------------------------------------------------------


def _checkpoint_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="the checkpoint directory (the same as --docker_volume_checkpoint_dir=DIR)",
    )


def _csi_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csi-root",
        metavar="DIR",
        help="the CSI isolator's root directory (the same as --csi_root_dir=DIR)",
    )


def _plugin_dirs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        help="where plugin sockets are (the same as --docker_plugin_socket_dir=DIR)",
    )
    parser.add_argument(
        "--spec-dir",
        metavar="DIR",
        action="append",
        help="where .spec/.json files are; repeatable, in search order "
        "(the same as --docker_plugin_spec_dirs=DIR,...)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=plugins.DEFAULT_TIMEOUT,
        help="how long each plugin has to answer (default: %(default)g)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _forget_arguments(parser: argparse.ArgumentParser) -> None:
    _checkpoint_dir(parser)
    parser.add_argument("container", metavar="CONTAINER", help="the container ID's value")
    parser.add_argument("--yes", action="store_true", help="really remove the checkpoint")


def _recover_arguments(parser: argparse.ArgumentParser) -> None:
    _checkpoint_dir(parser)
    parser.add_argument("--dry-run", action="store_true", help="show what would be done (required)")
    parser.add_argument(
        "--known",
        metavar="CONTAINER",
        nargs="*",
        default=[],
        help="the containers the agent knows (ID values); every other checkpoint is an "
        "unknown orphan, cleaned up at recovery",
    )


def _both(parser: argparse.ArgumentParser) -> None:
    _checkpoint_dir(parser)
    _plugin_dirs(parser)


def _volumes_arguments(parser: argparse.ArgumentParser) -> None:
    _both(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="read the checkpoints only; do not ask the plugins where volumes are mounted",
    )


_COMMANDS: Final[Mapping[str, tuple[str, Run, Callable[[argparse.ArgumentParser], None]]]] = {
    "status": ("containers and their volumes, from the checkpoints", _status, _checkpoint_dir),
    "volumes": (
        "each volume, its mount point and the containers that hold it",
        _volumes,
        _volumes_arguments,
    ),
    "plugins": ("the plugins found, in Docker's order, activated", _plugins, _plugin_dirs),
    "csi": ("each CSI volume's state and the containers that use it", _csi, _csi_root),
    "doctor": ("whether this host can run the isolator, a check a line", _doctor, _both),
    "recover": ("what a recovery would do (--dry-run)", _recover, _recover_arguments),
    "forget": ("drop a stranded checkpoint, unmount nothing (--yes)", _forget, _forget_arguments),
}


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and repair the docker/volume isolator's state, offline: "
        "its checkpoints, the plugins it would use, the host.",
        epilog=f"{EXIT_STATUS_HELP}\n\n{FLAGS_HELP}",
        formatter_class=formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    logs.add_arguments(parser, default_level="WARNING")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, run, add_arguments) in _COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"{EXIT_STATUS_HELP}\n\n{FLAGS_HELP}",
            formatter_class=formatter,
            allow_abbrev=False,
        )
        sub.set_defaults(run=run)
        sub.add_argument("--json", action="store_true", help="print a JSON document")
        add_arguments(sub)
    return parser


def _flags(args: argparse.Namespace, rest: Sequence[str], environ: Mapping[str, str]) -> Flags:
    """The agent's flags from the environment and ``rest``; this command's options win."""
    flags = Flags.from_args(rest, base=Flags.from_env(environ))
    overrides: dict[str, Any] = {}
    if getattr(args, "checkpoint_dir", None):
        overrides["docker_volume_checkpoint_dir"] = args.checkpoint_dir
    if getattr(args, "csi_root", None):
        overrides["csi_root_dir"] = os.path.abspath(args.csi_root)
    if getattr(args, "socket_dir", None):
        overrides["docker_plugin_socket_dir"] = os.path.abspath(args.socket_dir)
    if getattr(args, "spec_dir", None):
        overrides["docker_plugin_spec_dirs"] = tuple(os.path.abspath(d) for d in args.spec_dir)
    return dataclasses.replace(flags, **overrides)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; its exit status (0 ok, 1 something wrong, 2 usage error)."""
    parser = _parser()
    try:
        args, rest = parser.parse_known_args(argv)
        try:
            flags = _flags(args, rest, os.environ if environ is None else environ)
        except ValueError as error:
            parser.error(str(error))
    except SystemExit as exit_:  # argparse: --help, --version (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    logs.configure(args.log_level, args.log_format)
    try:
        outcome: Outcome = args.run(args, flags)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(outcome.render(as_json=args.json))
    return outcome.code
