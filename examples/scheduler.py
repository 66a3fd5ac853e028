"""The main job: an actor-based scheduler that runs tasks on shared Docker volumes.

It embeds the isolator the way a user will. A reference volume plugin serves the
volumes; each task is prepared by the isolator, launched by ``isolator.launcher`` in its
own mount namespace with the volumes bind mounted (as root), and cleaned up when it
ends. The workload:

1. writers put a file into their volume;
2. readers, in other containers, read those files back through the same volumes, and a
   read-only task finds it cannot write; some tasks run in a busybox root filesystem of
   their own under runc (a writer, a read-only reader, a survivor of the crash below),
   sharing the volumes with the host tasks;
3. long-running services start and some are killed;
4. the agent crashes: the isolator is stopped with no cleanup while tasks hold volumes;
   one task survives (a checkpointed, known container), one dies with the agent (an
   unknown orphan);
5. a new isolator recovers from the checkpoints (the rootfs survivor is found in the
   runtime's state), cleans up the unknown orphan without unmounting the volume the
   survivors still use, and the survivors are killed later;
6. (as root) tasks on CSI volumes of the reference CSI plugin, through a crash and a
   recovery of a ``CsiVolumeIsolator`` (``csi_tasks.py``).

It ends by checking that no checkpoint, no plugin mount and no host mount is left, and
prints a summary. Exit status 0 means every check held.

Run: ``make demo`` or ``.venv/bin/python examples/scheduler.py [--volumes N --writers N]``
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pykka
from csi_tasks import run_csi_phase  # the CSI phase, beside this file
from rootfs_tasks import (
    Rootfs,
    leftover_containers,
    prepare_rootfs,
    recovered_states,
    wait_running,
)

from actors import Actor, Future, Promise, collect, defer, run_blocking
from isolator import DockerVolumeIsolator, Flags
from isolator.common.observe import Gauges, Observer, OperationEvent
from isolator.docker.leftovers import host_mounts, leftovers, plugin_holders
from isolator.drivers import Backoff, DockerPluginClient
from isolator.launcher import launch
from isolator.messages import container_config, container_id, docker_volume
from isolator.plugin import VolumePlugin
from isolator.protos import ContainerID, ContainerLaunchInfo, ContainerState

DRIVER = "reference"
WAIT = 60.0


@dataclass(frozen=True)
class TaskSpec:
    """What to run, on which volumes (name, read-only), and how it should end."""

    name: str
    script: str
    volumes: tuple[tuple[str, bool], ...]
    expect: str  # "finished", "failed" or "killed"
    check_output: Callable[[str], bool] | None = None
    rootfs: bool = False  # in the busybox rootfs under the OCI runtime (when it runs here)


@dataclass
class TaskResult:
    name: str
    status: str  # finished, failed, killed, or error (the isolator refused it)
    exit_code: int | None
    output: str
    seconds: float


@dataclass
class Running:
    spec: TaskSpec
    container: ContainerID
    process: subprocess.Popen[bytes]
    started: float
    result: Future[TaskResult] | None = None


@dataclass
class Log:
    """Progress lines with the time since the start."""

    started: float = field(default_factory=time.monotonic)
    quiet: bool = False

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.started:6.2f}s] {message}", flush=True)


def watch(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait for a task's process: a blocking call, so it runs on ``run_blocking``'s
    threads, never on an actor's (that would hold one of the few workers all actors share)."""
    output, _ = process.communicate()
    return process.returncode, output.decode(errors="replace")


class Scheduler(Actor):
    """Prepares, launches, watches and cleans up tasks; never waits on any of them."""

    def __init__(
        self,
        isolator: DockerVolumeIsolator,
        workdir: Path,
        mounts: bool,
        log: Log,
        rootfs: Rootfs | None = None,
    ):
        super().__init__()
        self._rootfs = rootfs
        self.rootfs_tasks = 0
        self._isolator = isolator
        self._workdir = workdir
        self._mounts = mounts
        self._log = log
        self._running: dict[str, Running] = {}
        self._started: dict[str, Promise[None]] = {}

    def attach(self, isolator: DockerVolumeIsolator) -> None:
        """Use a new isolator (after the agent restarted)."""
        self._isolator = isolator

    def run_task(self, spec: TaskSpec) -> Future[TaskResult]:
        cid = container_id(spec.name)
        sandbox = self._workdir / "sandboxes" / spec.name
        sandbox.mkdir(parents=True, exist_ok=True)
        volumes = [docker_volume(DRIVER, v, "data", read_only=ro) for v, ro in spec.volumes]
        rootfs = self._rootfs if spec.rootfs else None
        config = container_config(
            str(sandbox),
            volumes,
            command=spec.script,
            rootfs=None if rootfs is None else str(rootfs.path),
        )
        started = time.monotonic()
        self._started[spec.name] = Promise()
        prepared = self._isolator.prepare(cid, config)
        launched = prepared.then(defer(self.actor_ref, self._launch, spec, cid, sandbox, started))
        # A refused prepare is a task result, not a crash of the scheduler.
        result: Promise[TaskResult] = Promise()

        def _settle(done: Future[TaskResult]) -> None:
            self._started[spec.name].set(None)
            if done.is_ready():
                result.set(done.get(0))
            else:
                reason = str(done.failure() or "discarded")
                elapsed = time.monotonic() - started
                result.set(TaskResult(spec.name, "error", None, reason, elapsed))

        launched.on_any(_settle)
        return result.future

    def started(self, name: str) -> Future[None]:
        """Ready once the task runs (or could not be started)."""
        return self._started[name].future

    def _launch(
        self,
        spec: TaskSpec,
        cid: ContainerID,
        sandbox: Path,
        started: float,
        launch_info: ContainerLaunchInfo | None,
    ) -> Future[TaskResult]:
        rootfs = self._rootfs if spec.rootfs else None
        in_rootfs = {} if rootfs is None else {  # the sandbox is the task's cwd in it too
            "rootfs": rootfs.path, "sandbox": sandbox, "runtime": rootfs.runtime,
            "runtime_root": rootfs.runtime_root,
        }  # fmt: skip
        process = launch(
            launch_info if self._mounts else None,
            ["sh", "-c", spec.script],
            cwd=sandbox if rootfs is None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **in_rootfs,  # type: ignore[arg-type]
        )
        self.rootfs_tasks += rootfs is not None
        volumes = ", ".join(f"{v}{' (ro)' if ro else ''}" for v, ro in spec.volumes)
        self._log(f"task {spec.name} started (pid {process.pid}) on {volumes}")
        running = self._running[spec.name] = Running(spec, cid, process, started)
        self._started[spec.name].set(None)
        exited = run_blocking(watch, process)
        running.result = exited.then(defer(self.actor_ref, self._exited, spec.name))
        return running.result

    def adopt(self, running: Running) -> Future[TaskResult]:
        """Take back a task that survived an agent restart; it is still being watched."""
        self._running[running.spec.name] = running
        assert running.result is not None
        return running.result

    def _exited(self, name: str, exit: tuple[int, str]) -> Future[TaskResult]:
        code, output = exit
        status = "finished" if code == 0 else "killed" if code < 0 else "failed"
        running = self._running.pop(name, None)
        if running is None:
            # It died with the agent; a recovered isolator cleans it up as an orphan.
            return Future.ready(TaskResult(name, "lost", code, output, 0.0))
        seconds = time.monotonic() - running.started
        self._log(f"task {name} {status} (exit {code}); cleaning up its volumes")
        result = TaskResult(name, status, code, output, seconds)
        return self._isolator.cleanup(running.container).then(lambda _: result)

    def kill(self, name: str) -> None:
        running = self._running.get(name)
        if running is not None:  # it may have ended already
            running.process.send_signal(signal.SIGKILL)

    def forget(self, name: str) -> Running:
        """The agent crashed: hand back what it was running, without any cleanup."""
        return self._running.pop(name)


# -- the workload -----------------------------------------------------------------------


def writer(name: str, volume: str, *, rootfs: bool = False) -> TaskSpec:
    script = f'echo "written by {name}" > data/{name}.txt && cat data/{name}.txt'
    return TaskSpec(name, script, ((volume, False),), "finished", rootfs=rootfs)


def reader(name: str, volume: str, writers: list[str], mounts: bool) -> TaskSpec:
    expected = {f"written by {w}" for w in writers}

    def check(output: str) -> bool:
        return not mounts or set(output.split("\n")) - {""} == expected

    script = 'for f in data/*.txt; do if [ -e "$f" ]; then cat "$f"; fi; done'
    return TaskSpec(name, script, ((volume, False),), "finished", check)


def read_only(name: str, volume: str, mounts: bool, *, rootfs: bool = False) -> TaskSpec:
    script = f"ls data >/dev/null && echo nope > data/{name}.txt"
    expect = "failed" if mounts else "finished"
    return TaskSpec(name, script, ((volume, True),), expect, rootfs=rootfs)


def service(name: str, volume: str, *, rootfs: bool = False) -> TaskSpec:
    script = "echo serving; exec sleep 600"
    return TaskSpec(name, script, ((volume, False),), "killed", rootfs=rootfs)


@dataclass
class Report:
    results: list[TaskResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # more summary lines (the CSI phase's)

    def add(self, spec: TaskSpec, result: TaskResult, log: Log) -> None:
        self.results.append(result)
        wrong = result.status != spec.expect or (
            spec.check_output is not None and not spec.check_output(result.output)
        )
        if wrong:
            self.problems.append(
                f"task {spec.name}: expected {spec.expect}, got {result.status} "
                f"(exit {result.exit_code}): {result.output.strip()!r}"
            )
        log(
            f"task {spec.name}: {result.status}{' - UNEXPECTED' if wrong else ''}"
            f" | {result.output.strip()[:100]!r}"
        )


def run_phase(
    scheduler: pykka.ActorProxy[Scheduler], specs: list[TaskSpec], report: Report, log: Log
) -> None:
    results: list[TaskResult] = collect([scheduler.run_task(s) for s in specs]).get(WAIT)
    for spec, result in zip(specs, results, strict=True):
        report.add(spec, result, log)


class Tally(Observer):
    """The isolator's operations, counted for the summary; passed on to ``forward`` too."""

    def __init__(self, forward: Observer | None = None) -> None:
        self._forward = forward or Observer()
        self._lock = threading.Lock()
        self.count: Counter[tuple[str, str]] = Counter()
        self.seconds: dict[str, float] = {}

    def on_operation(self, event: OperationEvent) -> None:
        with self._lock:
            self.count[(event.operation, event.status)] += 1
            self.seconds[event.operation] = self.seconds.get(event.operation, 0.0) + event.seconds
        self._forward.on_operation(event)

    def on_gauges(self, gauges: Gauges) -> None:
        self._forward.on_gauges(gauges)

    def lines(self) -> list[str]:
        with self._lock:
            lines = []
            for op in sorted(self.seconds):
                ok, failed = self.count[(op, "success")], self.count[(op, "error")]
                mean = 1000 * self.seconds[op] / (ok + failed)
                lines.append(f"{op}: {ok} ok, {failed} failed, mean {mean:.1f} ms")
            return lines


def can_mount(log: Log) -> bool:
    """Whether tasks get their volumes bind mounted (as root), said either way."""
    mounts = os.geteuid() == 0
    if mounts:
        log("running as root: tasks get real bind mounts in private mount namespaces")
    else:
        log(
            "not root: tasks run without mounts (bind mounts need root); "
            "everything else runs, and data is not shared between tasks"
        )
    return mounts


def main_job(
    workdir: Path, volume_count: int, writer_count: int, log: Log, tally: Tally | None = None
) -> Report:
    mounts = can_mount(log)
    report = Report()
    mounts_before = host_mounts()
    volumes = [f"vol-{i}" for i in range(volume_count)]
    sockets = workdir / "plugins"
    flags = Flags(
        docker_volume_checkpoint_dir=str(workdir / "checkpoints"),
        docker_plugin_socket_dir=str(sockets),
        docker_plugin_spec_dirs=(),
    )
    plugin = VolumePlugin(  # counts calls as Docker's local driver: balance is checked at the end
        socket_path=sockets / f"{DRIVER}.sock", root=workdir / "plugin-data", count="calls"
    )
    plugin.start()
    client = DockerPluginClient(socket_dir=str(sockets), spec_dirs=[], backoff=Backoff(budget=5.0))
    try:
        tally = tally or Tally()
        isolator = DockerVolumeIsolator.create(flags, client, observer=tally)
        rootfs = prepare_rootfs(workdir, log) if mounts else None
        scheduler = Scheduler.start(isolator, workdir, mounts, log, rootfs).proxy()

        log(f"phase 1: {writer_count} writers on {volume_count} volumes, one in a rootfs")
        writers = [writer(f"writer-{i}", volumes[i % volume_count]) for i in range(writer_count)]
        writers.append(writer("rootfs-writer", volumes[0], rootfs=True))
        run_phase(scheduler, writers, report, log)

        log("phase 2: readers read what the writers wrote; a read-only task tries to write")
        readers = [
            reader(f"reader-{v}", v, [w.name for w in writers if w.volumes[0][0] == v], mounts)
            for v in volumes
        ]
        read_only_tasks = [
            read_only("read-only", volumes[0], mounts),
            read_only("rootfs-read-only", volumes[0], mounts, rootfs=True),
        ]
        run_phase(scheduler, [*readers, *read_only_tasks], report, log)

        log("phase 3: services start; two are killed")
        services = [service(f"service-{v}", v) for v in volumes]
        running = [scheduler.run_task(s) for s in services]
        for spec in services[:2]:
            wait_started(scheduler, spec.name)
            scheduler.kill(spec.name).get(WAIT)
        for spec, future in zip(services[:2], running[:2], strict=True):
            report.add(spec, future.get(WAIT), log)

        log("phase 4: agent crash with tasks holding volumes")
        survivor = service("survivor", volumes[0])
        rootfs_survivor = service("rootfs-survivor", volumes[-1], rootfs=True)
        lost = [service("lost-0", volumes[0]), service(f"lost-{volumes[-1]}", volumes[-1])]
        held = {s.name: scheduler.run_task(s) for s in [survivor, rootfs_survivor, *lost]}
        for name in held:
            wait_started(scheduler, name)
        wait_running(rootfs, 1, WAIT)
        # Everything still running is in the old agent's hands; the isolator dies uncleanly.
        still = [s.name for s in services[2:]] + list(held)
        forgotten = {name: scheduler.forget(name).get(WAIT) for name in still}
        isolator.stop()
        survivors = (survivor.name, rootfs_survivor.name)
        for name, task in forgotten.items():
            if name not in survivors:  # these died with the agent
                task.process.kill()
                task.process.wait(WAIT)
        checkpoints = sorted(p.parent.name for p in (workdir / "checkpoints").rglob("volumes"))
        log(f"isolator gone; checkpoints left behind: {checkpoints}")

        log("phase 5: a new isolator recovers")
        isolator = DockerVolumeIsolator.create(flags, client, observer=tally)
        scheduler.attach(isolator).get(WAIT)
        known = forgotten[survivor.name]
        state = ContainerState(
            container_id=known.container,
            pid=known.process.pid,
            directory=str(workdir / "sandboxes" / survivor.name),
        )
        # A rootfs task still running is in the runtime's state, whatever became of its
        # launcher; without a runtime here it ran on the host and is known the same way.
        task = forgotten[rootfs_survivor.name]
        in_runtime = recovered_states(rootfs, workdir / "sandboxes", ContainerState(
            container_id=task.container, pid=task.process.pid,
            directory=str(workdir / "sandboxes" / task.spec.name)))  # fmt: skip
        log(f"known from the runtime's state: {[s.container_id.value for s in in_runtime]}")
        if [s.container_id.value for s in in_runtime] != [rootfs_survivor.name]:
            report.problems.append(f"the runtime's state did not show {rootfs_survivor.name}")
        isolator.recover([state, *in_runtime], []).get(WAIT)
        cleanups = isolator.orphan_cleanups().get(WAIT)
        failed = [str(c.failure()) for c in cleanups if not c.is_ready()]
        log(
            f"recovered; {len(cleanups)} unknown orphans cleaned up"
            + (f", failures: {failed}" if failed else "")
        )
        report.problems += [f"orphan cleanup failed: {f}" for f in failed]
        holders = plugin_holders(client, DRIVER, WAIT)
        report.problems += [f"{volume} was unmounted while a survivor used it"
                            for volume in (volumes[0], volumes[-1])
                            if mounts and not holders.get(volume)]  # fmt: skip
        log(f"plugin mount holders now: {holders}")
        for spec in (survivor, rootfs_survivor):
            adopted = scheduler.adopt(forgotten[spec.name])
            scheduler.kill(spec.name).get(WAIT)
            report.add(spec, adopted.get(WAIT), log)
        rootfs_tasks = scheduler.rootfs_tasks.get(WAIT)

        isolator.stop()
        holders = plugin_holders(client, DRIVER, WAIT)
        report.problems += leftovers(workdir / "checkpoints", holders, mounts_before)
        report.problems += leftover_containers(rootfs)
        if mounts:  # the CSI plugin bind mounts in a namespace of its own: root only
            log("phase 6: tasks on CSI volumes, through an agent crash and recovery")
            notes, problems = run_csi_phase(workdir / "csi", log)
            report.notes += notes
            report.problems += problems
        where = f"under {rootfs.runtime} in a busybox rootfs" if rootfs else "(no runtime here)"
        report.notes.append(f"rootfs tasks: {rootfs_tasks} {where}")
        summarize(report, plugin, volumes, log, tally)
    finally:
        pykka.ActorRegistry.stop_all()
        client.close()
        plugin.stop()
    return report


def wait_started(scheduler: pykka.ActorProxy[Scheduler], name: str) -> None:
    """A task is killable once the scheduler has launched it (prepare is done)."""
    scheduler.started(name).get(WAIT)


def summarize(
    report: Report, plugin: VolumePlugin, volumes: list[str], log: Log, tally: Tally
) -> None:
    calls = Counter((c.method, (c.body or {}).get("Name")) for c in plugin.calls)
    print("\nSummary")
    statuses = Counter(r.status for r in report.results)
    print(f"  tasks: {len(report.results)} ({', '.join(f'{n} {s}' for s, n in statuses.items())})")
    print(f"  volumes: {len(volumes)} served by the reference plugin")
    for volume in volumes:
        print(
            f"    {volume}: {calls[('VolumeDriver.Mount', volume)]} mounts, "
            f"{calls[('VolumeDriver.Unmount', volume)]} unmounts"
        )
    for note in report.notes:
        print(f"  {note}")
    print("  isolator operations (the observer's figures):")
    for line in tally.lines():
        print(f"    {line}")
    print(f"  time: {time.monotonic() - log.started:.2f} s")
    if report.problems:
        print("  PROBLEMS:")
        for problem in report.problems:
            print(f"    - {problem}")
    else:
        print(
            "  all checks held: every plugin count is 0 (as many Unmounts as Mounts), "
            "no checkpoint, plugin mount or host mount left behind"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--volumes", type=int, default=3, help="shared volumes (default 3)")
    parser.add_argument("--writers", type=int, default=6, help="writer tasks (default 6)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: any free port); "
        "needs the [metrics] extra",
    )
    args = parser.parse_args(argv)
    if args.volumes < 2 or args.writers < 1:
        parser.error("--volumes must be at least 2 and --writers at least 1")
    log = Log(quiet=args.quiet)
    metrics = None
    if args.metrics_port is not None:
        try:
            metrics = MetricsEndpoint(args.metrics_port)
        except ImportError:
            parser.error(
                "--metrics-port needs the [metrics] extra: "
                "pip install 'docker-volume-isolator[metrics]'"
            )
        log(f"metrics at {metrics.url}")
    try:
        # Short path: unix socket paths are limited to about 107 bytes.
        with tempfile.TemporaryDirectory(dir="/tmp", prefix="scheduler-") as workdir:
            tally = Tally(metrics.observer if metrics else None)
            report = main_job(Path(workdir), args.volumes, args.writers, log, tally)
        if metrics is not None:
            print(f"  metrics served at {metrics.url}: {metrics.scrape_summary()}")
    finally:
        if metrics is not None:
            metrics.close()
    return 1 if report.problems else 0


class MetricsEndpoint:
    """A Prometheus ``/metrics`` endpoint on loopback for the isolator's observer."""

    def __init__(self, port: int) -> None:
        import prometheus_client  # noqa: PLC0415 - optional: only with --metrics-port

        from isolator.contrib.prometheus import PrometheusObserver  # noqa: PLC0415

        registry = prometheus_client.CollectorRegistry()
        self.observer: Observer = PrometheusObserver(registry=registry)
        self._server, self._thread = prometheus_client.start_http_server(
            port, addr="127.0.0.1", registry=registry
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/metrics"

    def scrape_summary(self) -> str:
        """Fetch our own endpoint once: how many prepares it reports, as a check."""
        with urllib.request.urlopen(self.url, timeout=WAIT) as response:
            text = response.read().decode()
        prepares = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("isolator_operation_duration_seconds_count{")
            and 'operation="prepare"' in line
        )
        return f"{int(prepares)} prepares counted"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


if __name__ == "__main__":
    sys.exit(main())
