"""``isolator-dvdcli`` beside a running reference plugin, for the CLI's tests: the plugin,
where the CLI finds it and keeps its records, and the CLI as Mesos runs it."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from isolator.dvdcli import args as dvdcli_args
from isolator.plugin import VolumePlugin

__all__ = [
    "DRIVER",
    "ENV_NAMES",
    "MODULE",
    "WAIT",
    "Setup",
    "dvdcli_setup",
    "isolate_environment",
    "mesos_dvdcli",
]

MODULE = "isolator.dvdcli.cli"
DRIVER = "refvol"
WAIT = 30.0  # an upper bound on any one command; each takes well under a second
ENV_NAMES = (
    dvdcli_args.ENV_SOCKET_DIR,
    dvdcli_args.ENV_SPEC_DIRS,
    dvdcli_args.ENV_RETRY_BUDGET,
    dvdcli_args.ENV_MOUNT_ID,
    dvdcli_args.ENV_STATE_DIR,
    dvdcli_args.ENV_UNMOUNT_UNRECORDED,
)


@dataclass
class Setup:
    """A running reference plugin named ``DRIVER`` and where the CLI should look for it."""

    plugin: VolumePlugin
    socket_dir: str
    spec_dir: str
    root: Path

    @property
    def state_dir(self) -> str:
        """The CLI's records: the test's, never the host's /run."""
        return str(self.root / "dvdcli-state")

    @property
    def flags(self) -> list[str]:
        return [
            "--socket-dir",
            self.socket_dir,
            "--spec-dir",
            self.spec_dir,
            "--retry-budget=0",
            "--state-dir",
            self.state_dir,
        ]

    def environ(self) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
        environ[dvdcli_args.ENV_SOCKET_DIR] = self.socket_dir
        environ[dvdcli_args.ENV_SPEC_DIRS] = self.spec_dir
        environ[dvdcli_args.ENV_RETRY_BUDGET] = "0"
        environ[dvdcli_args.ENV_STATE_DIR] = self.state_dir
        return environ

    @staticmethod
    def run_argv(*args: str) -> list[str]:
        """The command line of the CLI as a real process (with ``environ()``)."""
        return [sys.executable, "-m", MODULE, *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI as a real process, finding the plugin through the environment."""
        return subprocess.run(
            self.run_argv(*args),
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )

    def calls(self, method: str) -> list[Any]:
        return [call.body for call in self.plugin.calls if call.method == method]


def isolate_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``DVDCLI_*`` from the caller's environment; records under ``tmp_path`` whatever
    a test forgets to pass, never in the host's /run."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(dvdcli_args.ENV_STATE_DIR, str(tmp_path / "dvdcli-state"))


@contextlib.contextmanager
def dvdcli_setup(tmp_path: Path, **plugin_options: Any) -> Iterator[Setup]:
    """A reference plugin named ``DRIVER`` (``plugin_options`` as ``VolumePlugin`` takes
    them) and where the CLI finds it."""
    socket_dir = tempfile.mkdtemp(prefix="dvdcli-", dir="/tmp")  # unix paths: ~107 bytes
    plugin = VolumePlugin(
        socket_path=os.path.join(socket_dir, f"{DRIVER}.sock"),
        root=tmp_path / "plugin",
        allowed_mountpoints=[tmp_path],  # the tests' mountpoint=<tmp_path>/...
        **plugin_options,
    )
    plugin.start()
    try:
        yield Setup(plugin, socket_dir, str(tmp_path / "specs"), tmp_path)
    finally:
        plugin.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def mesos_dvdcli(setup: Setup) -> str:
    """An executable that Mesos can run as its ``dvdcli``."""
    flags = shlex.join([sys.executable, "-m", MODULE, *setup.flags])
    path = setup.root / "dvdcli"
    path.write_text(f'#!/bin/sh\nexec {flags} "$@"\n')
    path.chmod(0o755)
    return str(path)
