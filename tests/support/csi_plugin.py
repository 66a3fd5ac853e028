"""The reference CSI plugin as the tests run it: its own process in a private mount
namespace (``unshare -m``), so its bind mounts live and die with it; a task that must see
them is started in that namespace (``nsenter``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from isolator.protos import csi_pb2_grpc
from tests.support.repo import REPO
from tests.support.waits import WAIT

__all__ = ["PluginProcess", "mount_points", "running_csi_plugin", "short_tmp"]


def mount_points(pid: int) -> list[str]:
    """The mount points of process ``pid``'s mount namespace."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as table:
        return [line.split(" ", 5)[4] for line in table]


@dataclass
class PluginProcess:
    root: Path
    endpoint: str
    socket: Path
    state: Path
    process: subprocess.Popen[bytes]
    channel: grpc.Channel

    @property
    def pid(self) -> int:
        return self.process.pid

    def node(self) -> csi_pb2_grpc.NodeStub:
        return csi_pb2_grpc.NodeStub(self.channel)

    def identity(self) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(self.channel)

    def mounts_under(self, path: Path | str) -> list[str]:
        prefix = str(path).rstrip("/") + "/"
        return sorted(m for m in mount_points(self.pid) if m.startswith(prefix))

    def nsenter(self) -> list[str]:
        """The command prefix that runs a program in the plugin's mount namespace."""
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", "--"]


@contextmanager
def short_tmp(prefix: str) -> Iterator[Path]:
    """A directory under /tmp (socket paths must stay short), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix=prefix))
    try:
        yield workdir
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)


def _start(root: Path, sock: Path, state: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "isolator.csi_plugin",
            "--endpoint",
            f"unix://{sock}",
            "--root",
            str(root),
            "--state",
            str(state),
            "--log-level",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@contextmanager
def running_csi_plugin(
    workdir: Path, *, env: dict[str, str] | None = None
) -> Iterator[PluginProcess]:
    """Start the plugin over ``workdir/volumes``, wait until it serves, stop it after."""
    root, sock, state = workdir / "volumes", workdir / "csi.sock", workdir / "plugin-state.json"
    root.mkdir(exist_ok=True)
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = str(REPO)
    process = _start(root, sock, state, environment)
    serving = threading.Event()
    log: list[bytes] = []

    def drain() -> None:  # keeps the pipe empty for the plugin's whole life
        assert process.stderr is not None
        for line in process.stderr:
            log.append(line)
            if b"serving on" in line:
                serving.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    channel = grpc.insecure_channel(f"unix://{sock}")
    try:
        # Connect only once it listens: a refused first attempt costs grpc's 1 s backoff.
        assert serving.wait(WAIT), f"the CSI plugin did not start: {b''.join(log)!r}"
        grpc.channel_ready_future(channel).result(timeout=WAIT)
        yield PluginProcess(root, f"unix://{sock}", sock, state, process, channel)
    finally:
        channel.close()
        process.terminate()
        process.wait(WAIT)
        reader.join(WAIT)
