"""A CSI isolator beside a running reference CSI plugin, for the CSI isolator's tests."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isolator import CsiVolumeIsolator, Flags
from isolator.common.observe import Observer
from isolator.launcher import launcher_command
from isolator.protos import ContainerLaunchInfo
from tests.support.csi_plugin import PluginProcess, running_csi_plugin, short_tmp
from tests.support.waits import WAIT

__all__ = ["PLUGIN_TYPE", "CsiCalls", "CsiSetup", "csi_setup", "write_config"]

PLUGIN_TYPE = "org.example.dir"


class CsiCalls(Observer):
    """Counts each CSI call by method and status code."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def on_csi_operation(self, method: str, driver: str, code: str, seconds: float) -> None:
        self.calls[(method, code)] += 1

    def count(self, method: str, code: str = "OK") -> int:
        return self.calls[(method, code)]


@dataclass
class CsiSetup:
    workdir: Path
    plugin: PluginProcess
    config_dir: Path
    sandbox: Path
    calls: CsiCalls = field(default_factory=CsiCalls)
    started: list[CsiVolumeIsolator] = field(default_factory=list)

    @property
    def csi_root(self) -> Path:
        return self.workdir / "csi"

    def flags(self, **overrides: Any) -> Flags:
        values: dict[str, Any] = {
            "csi_plugin_config_dir": str(self.config_dir),
            "csi_root_dir": str(self.csi_root),
            "csi_rpc_timeout": 5.0,
            "csi_retry_budget": 1.0,
        }
        values.update(overrides)
        return Flags(**values)

    def isolator(self, *, recover: bool = True, **kwargs: Any) -> CsiVolumeIsolator:
        flags = kwargs.pop("flags", None) or self.flags()
        isolator = CsiVolumeIsolator.create(flags, observer=self.calls, **kwargs)
        self.started.append(isolator)
        if recover:
            isolator.recover([], []).get(WAIT)
        return isolator

    def volume(self, name: str, content: str = "") -> Path:
        path = self.plugin.root / name
        path.mkdir(exist_ok=True)  # a plugin shared by a module's tests may have it
        if content:
            (path / "data").write_text(content)
        return path

    def in_container(
        self, launch_info: ContainerLaunchInfo | None, script: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` as a task in the plugin's mount namespace (where its mounts are)."""
        # cd again inside: a working directory inherited across setns(2) still resolves
        # through the old namespace's mounts.
        argv = ["sh", "-c", f"cd '{self.sandbox}' && {script}"]
        command = [*self.plugin.nsenter(), *launcher_command(launch_info, argv)]
        return subprocess.run(
            command, cwd=self.sandbox, capture_output=True, text=True, timeout=WAIT, check=False
        )

    def plugin_mounts(self) -> list[str]:
        return self.plugin.mounts_under(self.csi_root)

    def state_files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.csi_root)) for p in self.csi_root.rglob("volume.state")
        )

    def container_dirs(self) -> list[str]:
        directory = self.csi_root / "containers"
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def write_config(config_dir: Path, name: str, document: dict[str, Any] | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    (config_dir / name).write_text(text)


@contextmanager
def csi_setup(plugin: PluginProcess | None = None) -> Iterator[CsiSetup]:
    """A fresh CSI root, config directory and sandbox beside ``plugin`` (a new one if None)."""
    if plugin is None:
        with (
            short_tmp("csi-iso-") as workdir,
            running_csi_plugin(workdir) as started,
            _setup(workdir, started) as setup,
        ):
            yield setup
        return
    with short_tmp("csi-iso-") as workdir, _setup(workdir, plugin) as setup:
        yield setup


@contextmanager
def _setup(workdir: Path, plugin: PluginProcess) -> Iterator[CsiSetup]:
    config_dir = workdir / "plugins.d"
    config_dir.mkdir()
    write_config(
        config_dir,
        "dir.json",
        {
            "type": PLUGIN_TYPE,
            "endpoints": [{"csi_service": "NODE_SERVICE", "endpoint": plugin.endpoint}],
        },
    )
    sandbox = workdir / "sandbox"
    sandbox.mkdir()
    setup = CsiSetup(workdir, plugin, config_dir, sandbox)
    try:
        yield setup
    finally:
        for isolator in setup.started:
            isolator.stop()
