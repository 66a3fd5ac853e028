"""OCI: a rootfs task's whole life against the bare runtime running the same command.

One repeat times ``R`` rounds (R = 20; two warm-up rounds first), each on a fresh container,
in a busybox rootfs on tmpfs, under runc (root only):

- bare: ``runc --root S run --bundle B ID`` of a hand-written bundle (the rootfs, /proc,
  mount and PID namespaces) running ``true``; ``run`` deletes the container at its end;
- task: ``prepare`` (one volume, ``ZeroLatencyDriver``), ``isolator.launcher.run`` of
  ``true`` in the rootfs with the sandbox and the volume (the bundle written from the launch
  info, the command looked up in the rootfs, ``run --detach``, wait, delete, bundle removed),
  then ``cleanup``.

The figure is ``median task round / median bare round``. Target (issue 18): <= 1.2. The
task pays for the launcher's interpreter (a bare ``python -I -S``) on top of the runtime,
and for a second runtime command, ``delete``, which a foreground ``run`` does itself.

The floor row times, in the same rounds, only what a launcher of this design cannot avoid:
a bare interpreter (``python -I -S``) that has the runtime run the bare bundle detached
(``run --detach``) and then deletes it (``delete --force``), over the same bare round, same
target. A launcher that is a Python process and waits for the container's init itself
(for the exact exit status) pays at least that.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.doubles import ZeroLatencyDriver
from benchmarks.harness import WAIT, Check, Options, scratch_dir
from benchmarks.workload import isolator_on
from isolator.launcher import run
from isolator.messages import container_config, container_id, docker_volume

__all__ = ["checks", "measure"]

RUNTIME = "runc"
BUSYBOX = "/bin/busybox"


def checks(options: Options) -> list[Check]:
    return [
        Check("ratio", f"OCI: rootfs task prepare+launch+exit+cleanup vs bare {RUNTIME} run", 1.2,
              detail="{bare_ms:.1f} ms bare, {task_ms:.1f} ms task"),
        Check("floor", f"OCI floor: bare interpreter + {RUNTIME} run --detach + delete vs run",
              1.2, detail="{floor_ms:.1f} ms"),
    ]  # fmt: skip


def _rootfs(root: Path) -> Path:
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    return rootfs


def _bare_bundle(root: Path, rootfs: Path) -> Path:
    bundle = root / "bare-bundle"
    bundle.mkdir()
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "env": ["PATH=/bin"]},
        "root": {"path": str(rootfs)},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }  # fmt: skip
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def measure(options: Options) -> dict[str, float]:
    runtime = shutil.which(RUNTIME)
    if os.geteuid() != 0 or runtime is None or not os.path.exists(BUSYBOX):
        raise SystemExit(f"the OCI figure needs root, {RUNTIME} and busybox-static")
    rounds = options.size(20, smallest=5)
    bare_samples, task_samples, floor_samples = [], [], []
    with scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as scratch:
        root = Path(scratch)
        rootfs, state = _rootfs(root), root / "state"
        bundle = _bare_bundle(root, rootfs)
        driver = ZeroLatencyDriver(str(root / "volume"))
        with isolator_on(str(root / "checkpoints"), driver) as isolator:
            for index in range(rounds + 2):
                sandbox = root / "sandboxes" / f"c{index}"
                sandbox.mkdir(parents=True)
                started = time.perf_counter()
                subprocess.run(
                    [runtime, "--root", str(state), "run", "--bundle", str(bundle), f"b{index}"],
                    check=True,
                    timeout=WAIT,
                )
                middle = time.perf_counter()
                floor = _floor(runtime, state, bundle, f"f{index}")
                cid = container_id(f"c{index}")
                config = container_config(
                    str(sandbox), [docker_volume("bench", "v", "data")], rootfs=str(rootfs)
                )
                launch_info = isolator.prepare(cid, config).get(WAIT)
                done = run(launch_info, ["true"], rootfs=rootfs, sandbox=sandbox,
                           runtime=RUNTIME, runtime_root=state, timeout=WAIT)  # fmt: skip
                isolator.cleanup(cid).get(WAIT)
                ended = time.perf_counter()
                if done.returncode != 0:
                    raise AssertionError(f"the task failed: {done.stderr!r}")
                if index >= 2:
                    bare_samples.append(middle - started)
                    task_samples.append(ended - middle - floor)
                    floor_samples.append(floor)
    bare, task = statistics.median(bare_samples), statistics.median(task_samples)
    floor = statistics.median(floor_samples)
    return {"ratio": task / bare, "bare_ms": bare * 1e3, "task_ms": task * 1e3,
            "floor": floor / bare, "floor_ms": floor * 1e3}  # fmt: skip


def _floor(runtime: str, state: Path, bundle: Path, name: str) -> float:
    """Seconds of a bare interpreter that has the runtime run ``bundle`` detached, then
    deletes it: the launcher's least (no bundle written, no wait for init, no signals)."""
    script = (
        "import os, sys\n"
        "for args in (['run', '--detach', '--bundle', sys.argv[3], sys.argv[4]],\n"
        "             ['delete', '--force', sys.argv[4]]):\n"
        "    pid = os.posix_spawn(sys.argv[1], [sys.argv[1], '--root', sys.argv[2], *args],"
        " os.environ)\n"
        "    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0\n"
    )
    command = [sys.executable, "-I", "-S", "-c", script, runtime, str(state), str(bundle), name]
    started = time.perf_counter()
    subprocess.run(command, check=True, timeout=WAIT)
    return time.perf_counter() - started
