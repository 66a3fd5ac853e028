"""``isolator-dvdcli``: a maintained drop-in for rexray/dvdcli, on the isolator's plugin client.

dvdcli is unmaintained (last release 2017), yet Mesos's ``DvdcliClient`` still runs it for
every mount and unmount. This command takes dvdcli's subcommands and flags and prints what
dvdcli prints, so it can stand in for the binary (a ``dvdcli`` on PATH, as Mesos looks it up,
or ``Flags.dvdcli_path``), while the plugin calls go through the isolator's own clients
(``DockerPluginClient`` for mount and unmount, its ``VolumePluginAPI`` for the rest):

- ``mount``   Get; Create (with ``--volumeopts``) unless the volume exists or
  ``--explicitcreate`` is given; Mount. Prints the mount point and a newline. A volume
  it has already mounted (its record in ``--state-dir``, see ``ledger``) is not mounted
  again: the recorded mount point is printed, the plugin is not called.
- ``unmount`` Unmount with the recorded ID, then forget the record. Prints nothing. A
  volume without a record was not mounted by this command: nothing is sent, a note goes to
  stderr and the exit status is 0 (``--unmount-unrecorded`` sends the Unmount anyway).
- ``path``    Get; its ``Mountpoint``, else Path (whose errors are ignored). Prints the
  path and a newline, or nothing when the plugin has no path.
- ``create``  Create with ``--volumeopts``. Prints nothing.
- ``remove``  Remove. Prints nothing.
- ``get``     Get. Prints the volume's name and a newline.
- ``list``    List. Prints one volume name per line.
- ``version`` Prints dvdcli's ``Binary:``/``SemVer:``/``OsArch:``/``Branch:``/``Commit:``/
  ``Formed:`` lines (``--version`` prints ``isolator-dvdcli VERSION``, as the other
  console scripts). ``help [COMMAND]`` prints the help.

Exit status: 0 on success; 1 when the plugin or the client fails (the message on stderr as
``isolator-dvdcli: error: <message>``); 2 on a usage error (argparse's message on stderr);
130 when interrupted.

Plugins are found as dockerd finds them, under ``--socket-dir`` (``$DVDCLI_SOCKET_DIR``)
and ``--spec-dir`` (repeatable; ``$DVDCLI_SPEC_DIRS``, ``:``-separated), by default
dockerd's directories (``isolator.config.defaults``; ``--help`` shows them). These,
``--volumedriver``/``--volumename`` (persistent in dvdcli), ``--retry-budget`` and
``--mount-id``, ``--state-dir`` (``$DVDCLI_STATE_DIR``) and ``--unmount-unrecorded``
(``$DVDCLI_UNMOUNT_UNRECORDED``) may come before or after the subcommand; ``--volumeopts`` and
``--explicitcreate`` only after it (``isolator.dvdcli.args`` reads the command line). The
command line beats the environment.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final, TextIO, TypeVar

from actors import EventLoopThread
from isolator.common.errors import DriverError, MountRefusedError
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.transport import Backoff
from isolator.dvdcli.args import PROG, Request, help_text, parse
from isolator.dvdcli.ledger import Ledger, LedgerError, Record
from isolator.version import version

__all__ = ["COMMANDS", "main"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

T = TypeVar("T")


# -- the commands ---------------------------------------------------------------------------


def _ask(client: DockerPluginClient, call: Coroutine[Any, Any, T]) -> T:
    """Run one ``client.api`` call on the client's loop and block on it: the client's own
    timeouts and retry budget bound the wait."""
    return client.loop.submit(call).get()


def _line(text: str) -> str:
    return f"{text}\n" if text else ""


def _mount(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    """One Mount per mounted period: a recorded volume prints its record."""
    driver, name = request.driver, request.name
    with ledger.locked(driver, name):
        record = ledger.read(driver, name)
        if record is not None and record.mountpoint is not None:
            return _line(record.mountpoint)
        if record is not None:  # an earlier Mount's outcome is unknown: did it mount?
            client.mount_id = record.mount_id
            found = _plugin_path(client, request)
            if found:
                ledger.write(dataclasses.replace(record, mountpoint=found))
                return _line(found)
        else:  # recorded before the Mount is sent: a kill midway still leads to an Unmount
            ledger.write(Record(driver, name, client.mount_id, None))
        try:
            mountpoint = client.mount(driver, name, request.options).get()
        except MountRefusedError:
            if record is None:  # nothing is mounted, by this Mount or an earlier one
                ledger.forget(driver, name)
            raise
        ledger.write(Record(driver, name, client.mount_id, mountpoint))
        return _line(mountpoint)


def _unmount(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    """The one Unmount, with the recorded ID; the record goes once it succeeded."""
    driver, name = request.driver, request.name
    with ledger.locked(driver, name):
        record = ledger.read(driver, name)
        if record is None and not request.unmount_unrecorded:
            _write(
                sys.stderr,
                f"{PROG}: volume {name!r} of plugin {driver!r} has no record in "
                f"{str(ledger.state_dir)!r}: it was not mounted by {PROG}, so no Unmount "
                "is sent\n",
            )
            return ""
        if record is not None:
            client.mount_id = record.mount_id
        client.unmount(driver, name).get()
        if record is not None:
            ledger.forget(driver, name)
    return ""


def _plugin_path(client: DockerPluginClient, request: Request) -> str:
    """``VolumeDriver.Path``, ``""`` when the plugin cannot say."""
    try:
        return client.path(request.driver, request.name).get()
    except DriverError:
        return ""


def _path(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    volume = _ask(client, client.api.get(request.driver, request.name))
    mountpoint = volume.get("Mountpoint")
    if isinstance(mountpoint, str) and mountpoint:
        return _line(mountpoint)
    try:  # as Docker 1.11's volume adapter, which dvdcli uses: a failing Path is no path
        return _line(_ask(client, client.api.path(request.driver, request.name)))
    except DriverError:
        return ""


def _create(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    _ask(client, client.api.create(request.driver, request.name, request.options))
    return ""


def _remove(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    _ask(client, client.api.remove(request.driver, request.name))
    return ""


def _get(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    volume = _ask(client, client.api.get(request.driver, request.name))
    name = volume.get("Name")
    return _line(name if isinstance(name, str) and name else request.name)


def _list(client: DockerPluginClient, request: Request, ledger: Ledger) -> str:
    names = (volume.get("Name") for volume in _ask(client, client.api.list(request.driver)))
    return "".join(_line(name) for name in names if isinstance(name, str))


COMMANDS: Final[Mapping[str, Callable[[DockerPluginClient, Request, Ledger], str]]] = {
    "mount": _mount,
    "unmount": _unmount,
    "path": _path,
    "create": _create,
    "remove": _remove,
    "get": _get,
    "list": _list,
}
"""What each plugin command does; each returns what it prints on stdout. Only mount and
unmount use the ``Ledger``."""


def _version() -> str:
    return "".join(
        [
            f"Binary: {os.path.abspath(sys.argv[0])}\n",
            f"SemVer: {version()}\n",
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
        output = COMMANDS[request.command](client, request, Ledger(request.state_dir))
    except (DriverError, LedgerError, OSError) as error:
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
    try:
        request = parse(argv, os.environ)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        code = exit_.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    if request.command == "version":
        _write(sys.stdout, _version())
        return EXIT_OK
    if request.command == "help":
        _write(sys.stdout, help_text(request.topic))
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
