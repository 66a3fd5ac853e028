"""The main job's CSI phase: tasks on CSI volumes served by the reference CSI plugin.

The plugin (``isolator-csi-plugin``) runs in a private mount namespace of its own, as a
CSI node plugin in its own container would: its stage and publish bind mounts live there,
and every task is started there too (``nsenter``), in its own namespace below it. The
phase:

1. a writer and, beside it, a read-only reader share one volume (staged and published
   once); the reader finds it cannot write;
2. the agent crashes while a survivor (on its own volume) and a task that dies with the
   agent (an unknown orphan) hold volumes;
3. a new isolator recovers: the orphan's volume is unpublished, the survivor's stays
   published under it until the survivor is killed and cleaned up.

It checks that no volume state, container checkpoint or plugin mount is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from isolator import CsiVolumeIsolator, Flags
from isolator.common.observe import Observer
from isolator.launcher import launcher_command
from isolator.messages import container_config, container_id, csi_volume
from isolator.protos import ContainerLaunchInfo, ContainerState

__all__ = ["CsiCalls", "run_csi_phase"]

PLUGIN = "org.example.directory"
WAIT = 60.0


class CsiCalls(Observer):
    """Counts CSI calls by method and gRPC status code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()

    def on_csi_operation(self, method: str, driver: str, code: str, seconds: float) -> None:
        with self._lock:
            self.calls[(method, code)] += 1


class _Plugin:
    """The reference CSI plugin in its own mount namespace, until ``stop``."""

    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "volumes"
        self.socket = workdir / "csi.sock"
        self.process = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "isolator.csi_plugin",
                "--endpoint",
                f"unix://{self.socket}",
                "--root",
                str(self.root),
                "--log-level",
                "INFO",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:  # its first line says it serves
            if b"serving on" in line:
                break
        else:
            raise RuntimeError("the CSI plugin did not start")
        threading.Thread(target=self.process.stderr.read, daemon=True).start()

    def mounts(self, under: Path) -> list[str]:
        prefix = f"{under}/"
        with open(f"/proc/{self.process.pid}/mountinfo", encoding="utf-8") as table:
            return [m for m in (line.split()[4] for line in table) if m.startswith(prefix)]

    def launch(
        self, info: ContainerLaunchInfo | None, sandbox: Path, script: str
    ) -> subprocess.Popen[str]:
        argv = ["sh", "-c", f"cd '{sandbox}' && {script}"]
        command = [
            "nsenter",
            f"--mount=/proc/{self.process.pid}/ns/mnt",
            "--",
            *launcher_command(info, argv),
        ]
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(WAIT)


def run_csi_phase(workdir: Path, log: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """Run the phase under ``workdir``; (summary lines, problems)."""
    workdir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    plugin = _Plugin(workdir)
    calls = CsiCalls()
    configs = workdir / "plugins.d"
    configs.mkdir()
    (configs / "directory.json").write_text(
        json.dumps(
            {
                "type": PLUGIN,
                "endpoints": [
                    {"csi_service": "NODE_SERVICE", "endpoint": f"unix://{plugin.socket}"}
                ],
            }
        )
    )
    flags = Flags(
        csi_plugin_config_dir=str(configs), csi_root_dir=str(workdir / "csi"), csi_retry_budget=5.0
    )
    tasks: Counter[str] = Counter()

    def run(
        isolator: CsiVolumeIsolator,
        name: str,
        volume: str,
        script: str,
        *,
        ro: bool = False,
        wait: bool = True,
    ) -> subprocess.Popen[str]:
        sandbox = workdir / "sandboxes" / name
        sandbox.mkdir(parents=True)
        spec = csi_volume(
            PLUGIN,
            volume,
            "data",
            mode="RO" if ro else "RW",
            access_mode="SINGLE_NODE_WRITER",
        )
        info = isolator.prepare(container_id(name), container_config(str(sandbox), [spec])).get(
            WAIT
        )
        task = plugin.launch(info, sandbox, script)
        log(f"CSI task {name} started (pid {task.pid}) on {volume}{' (ro)' if ro else ''}")
        if wait:
            finish(isolator, name, task)
        return task

    def finish(isolator: CsiVolumeIsolator, name: str, task: subprocess.Popen[str]) -> str:
        output, _ = task.communicate(timeout=WAIT)
        isolator.cleanup(container_id(name)).get(WAIT)
        status = (
            "finished" if task.returncode == 0 else "killed" if task.returncode < 0 else "failed"
        )
        tasks[status] += 1
        log(f"CSI task {name}: {status} | {output.strip()[:80]!r}")
        return output

    try:
        for volume in ("csi-0", "csi-1"):
            (plugin.root / volume).mkdir(parents=True)
        isolator = CsiVolumeIsolator.create(flags, observer=calls)
        isolator.recover([], []).get(WAIT)
        log("CSI phase 1: a writer and a read-only reader share csi-0")
        writer = run(
            isolator,
            "csi-writer",
            "csi-0",
            "echo from-csi > data/w.txt; exec sleep 600",
            wait=False,
        )
        reader = run(
            isolator,
            "csi-reader",
            "csi-0",
            "while [ ! -s data/w.txt ]; do sleep 0.05; done; cat data/w.txt; "
            "echo no > data/r.txt || echo read-only",
            ro=True,
            wait=False,
        )
        output = finish(isolator, "csi-reader", reader)
        words = output.split()
        wrote = (plugin.root / "csi-0" / "r.txt").exists()
        if words[:1] != ["from-csi"] or words[-1:] != ["read-only"] or wrote:
            problems.append(f"CSI reader: expected the writer's file and no write: {output!r}")
        writer.send_signal(signal.SIGKILL)
        finish(isolator, "csi-writer", writer)
        if calls.calls[("NodePublishVolume", "OK")] != 1:
            problems.append("CSI volume csi-0 was published more than once for two holders")

        log("CSI phase 2: the agent crashes while a survivor and a lost task hold volumes")
        survivor = run(
            isolator, "csi-survivor", "csi-1", "echo serving; exec sleep 600", wait=False
        )
        lost = run(isolator, "csi-lost", "csi-0", "exec sleep 600", wait=False)
        isolator.stop()  # no cleanup: the checkpoints and volume states stay
        lost.kill()
        lost.communicate(timeout=WAIT)
        isolator = CsiVolumeIsolator.create(flags, observer=calls)
        state = ContainerState(
            container_id=container_id("csi-survivor"),
            pid=survivor.pid,
            directory=str(workdir / "sandboxes" / "csi-survivor"),
        )
        isolator.recover([state], []).get(WAIT)
        failed = [str(f.failure()) for f in isolator.background().get(WAIT) if not f.is_ready()]
        problems += [f"CSI orphan cleanup failed: {f}" for f in failed]
        states = isolator.volume_states().get(WAIT)
        log(f"CSI phase 3: recovered; volume states now {states}")
        if states != {f"{PLUGIN}/csi-1": "PUBLISHED"}:
            problems.append(f"after recovery expected only csi-1 published, got {states}")
        survivor.send_signal(signal.SIGKILL)
        finish(isolator, "csi-survivor", survivor)
        isolator.stop()
        left = list((workdir / "csi").rglob("volume.state"))
        left += list((workdir / "csi" / "containers").glob("*"))
        problems += [f"CSI state left behind: {p}" for p in left]
        problems += [f"CSI plugin mount left: {m}" for m in plugin.mounts(workdir / "csi")]
    finally:
        plugin.stop()
    summary = [
        f"CSI tasks: {sum(tasks.values())} ({', '.join(f'{n} {s}' for s, n in tasks.items())})",
        "CSI calls: "
        + ", ".join(
            f"{m} {n}" + ("" if code == "OK" else f" {code}")
            for (m, code), n in sorted(calls.calls.items())
        ),
    ]
    return summary, problems


if __name__ == "__main__":
    import tempfile

    if os.geteuid() != 0:
        sys.exit("the CSI phase needs root (bind mounts, mount namespaces)")
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="csi-job-") as tmp:
        lines, found = run_csi_phase(Path(tmp), print)
    print("\n".join(lines + [f"PROBLEM: {p}" for p in found]))
    sys.exit(1 if found else 0)
