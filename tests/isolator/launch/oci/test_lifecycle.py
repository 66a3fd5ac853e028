"""A rootfs container's life: signals, what is left after it (nothing), leftovers, recovery.

Each test has a runtime state directory of its own and must leave it empty, the host's
mount table unchanged and no process behind (``host_unchanged``).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from isolator import Flags
from isolator.launch.oci import (
    ID_PREFIX,
    KILL_REQUEST,
    LAUNCHER_ANNOTATION,
    remove_stopped,
    running_containers,
)
from isolator.launch.oci_bundle import SANDBOX_ANNOTATION
from isolator.launcher import RootfsProcess, launch, run
from isolator.messages import container_config, container_id, docker_volume
from isolator.testing import RecordingDriverClient
from tests.support.isolators import running_isolator
from tests.support.oci import RUNTIMES, minimal_config, runtime_containers
from tests.support.waits import WAIT

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_unchanged")]

READY = b"ready\n"
# Waits for a signal it handles, then exits 9; PID 1 of its namespace sees only those.
TRAPPING = ["sh", "-c", "trap 'exit 9' TERM USR1; echo ready; while :; do sleep 0.05; done"]


def _wait_ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], WAIT)
    assert ready, f"the task printed nothing within {WAIT}s"
    assert process.stdout.readline() == READY


@RUNTIMES
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_to_the_launcher_reaches_the_task(
    runtime: str, runtime_state: Path, rootfs: Path, signum: int
) -> None:
    with launch(None, TRAPPING, rootfs=rootfs, runtime=runtime, runtime_root=runtime_state,
                stdout=subprocess.PIPE) as process:  # fmt: skip
        _wait_ready(process)
        process.send_signal(signum)
        assert process.wait(WAIT) == 9
    assert runtime_containers(runtime, runtime_state) == []


@RUNTIMES
def test_kill_kills_the_task_and_the_launcher_dies_of_the_same_signal(
    runtime: str, runtime_state: Path, rootfs: Path
) -> None:
    with launch(None, ["sh", "-c", "echo ready; exec sleep 60"], rootfs=rootfs,
                runtime=runtime, runtime_root=runtime_state,
                stdout=subprocess.PIPE) as process:  # fmt: skip
        assert isinstance(process, RootfsProcess)
        _wait_ready(process)
        assert [c.id for c in running_containers(runtime, runtime_state)] == [process.container_id]
        process.kill()
        assert process.wait(WAIT) == -signal.SIGKILL
    assert runtime_containers(runtime, runtime_state) == []


@RUNTIMES
def test_a_kill_at_once_leaves_no_container(
    runtime: str, runtime_state: Path, rootfs: Path
) -> None:
    process = launch(None, ["sleep", "60"], rootfs=rootfs, runtime=runtime,
                     runtime_root=runtime_state)  # fmt: skip
    process.kill()  # most likely before the launcher has made anything
    # Dead of SIGKILL, or, when the request came before its handler, of the request itself.
    assert process.wait(WAIT) in (-signal.SIGKILL, -KILL_REQUEST)
    assert runtime_containers(runtime, runtime_state) == []


@RUNTIMES
def test_run_with_a_timeout_leaves_no_container(
    runtime: str, runtime_state: Path, rootfs: Path
) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run(None, ["sleep", "60"], rootfs=rootfs, runtime=runtime, runtime_root=runtime_state,
            timeout=0.5)  # fmt: skip
    assert runtime_containers(runtime, runtime_state) == []


@RUNTIMES
def test_after_exit_nothing_is_left(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    monkeypatch.setenv("TMPDIR", str(bundles))  # where the launcher writes its bundle
    cgroups_before = _cgroups()
    with launch(None, ["sh", "-c", "echo ready; cat >/dev/null"], rootfs=rootfs,
                runtime=runtime, runtime_root=runtime_state, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE) as process:  # fmt: skip
        _wait_ready(process)
        # While it runs: its bundle where TMPDIR says, its cgroups where runc puts them.
        assert [p.name[:15] for p in bundles.iterdir()] == ["isolator-bundle"]
        assert len(_cgroups()) > len(cgroups_before)
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(WAIT) == 0
    assert runtime_containers(runtime, runtime_state) == []
    assert list(bundles.iterdir()) == []
    assert _cgroups() == cgroups_before


@RUNTIMES
def test_a_killed_launchers_container_is_recovered_then_removed_when_stopped(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path
) -> None:
    box = tmp_path / "sandbox"
    box.mkdir()
    process = launch(None, TRAPPING, rootfs=rootfs, sandbox=box, runtime=runtime,
                     runtime_root=runtime_state, stdout=subprocess.PIPE)  # fmt: skip
    assert isinstance(process, RootfsProcess)
    try:
        _wait_ready(process)
        os.kill(process.pid, signal.SIGKILL)  # the launcher only, as an agent crash would
        assert process.wait(WAIT) == -signal.SIGKILL
        survivors = running_containers(runtime, runtime_state)
        assert [(c.id, c.annotations[SANDBOX_ANNOTATION]) for c in survivors] == [
            (process.container_id, str(box))
        ]
        # The caller names the launcher in the bundle: a "created" leftover is stale once
        # that process is gone.
        assert survivors[0].annotations[LAUNCHER_ANNOTATION] == str(process.pid)
        leftover_bundle = survivors[0].bundle
        assert os.path.isdir(leftover_bundle)  # the killed launcher could not remove it
        assert remove_stopped(runtime, str(runtime_state)) == []  # it still runs: kept
        subprocess.run([runtime, "--root", str(runtime_state), "kill", process.container_id,
                        "KILL"], check=True, timeout=WAIT)  # fmt: skip
        _wait_stopped(runtime, runtime_state, process.container_id)
        # The next launcher start removes the stopped leftover.
        done = run(None, ["true"], rootfs=rootfs, runtime=runtime,
                   runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert runtime_containers(runtime, runtime_state) == []
        assert not os.path.lexists(leftover_bundle)  # nor its bundle
    finally:
        process.stdout.close()  # type: ignore[union-attr]
        delete = [runtime, "--root", str(runtime_state), "delete", "--force", process.container_id]
        subprocess.run(delete, capture_output=True, timeout=WAIT, check=False)


@RUNTIMES
def test_a_stopped_container_that_is_not_the_launchers_is_kept(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "foreign"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(minimal_config(rootfs, ["true"])))
    state = ["--root", str(runtime_state)]
    subprocess.run([runtime, *state, "run", "--keep", "--bundle", str(bundle), "someone-else"],
                   check=True, timeout=WAIT)  # fmt: skip
    try:
        assert remove_stopped(shutil.which(runtime) or runtime, str(runtime_state)) == []
        assert runtime_containers(runtime, runtime_state) == ["someone-else"]
    finally:
        subprocess.run(
            [runtime, *state, "delete", "--force", "someone-else"], check=False, timeout=WAIT
        )


@RUNTIMES
def test_isolator_cleanup_unmounts_as_before(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path
) -> None:
    box = tmp_path / "sandbox"
    box.mkdir()
    client = RecordingDriverClient(tmp_path / "volumes")
    flags = Flags(docker_volume_checkpoint_dir=str(tmp_path / "checkpoint"))
    volumes = [docker_volume("d", "shared", "data"), docker_volume("d", "abs", "/srv/abs")]
    with running_isolator(flags, client) as isolator:
        cid = container_id("rootfs-task")
        config = container_config(str(box), volumes, rootfs=str(rootfs))
        launch_info = isolator.prepare(cid, config).get(WAIT)
        assert launch_info is not None
        done = run(launch_info, ["sh", "-c", "echo a > data/a && echo b > /srv/abs/b"],
                   rootfs=rootfs, sandbox=box, runtime=runtime, runtime_root=runtime_state,
                   timeout=WAIT)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "volumes" / "d" / "shared" / "a").read_text() == "a\n"
        assert (tmp_path / "volumes" / "d" / "abs" / "b").read_text() == "b\n"
        isolator.cleanup(cid).get(WAIT)
    assert sorted((c.op, c.name) for c in client.calls) == [
        ("mount", "abs"), ("mount", "shared"), ("unmount", "abs"), ("unmount", "shared"),
    ]  # fmt: skip
    assert not (tmp_path / "checkpoint" / "rootfs-task").exists()


def _wait_stopped(runtime: str, state: Path, container: str) -> None:
    """Wait on the runtime's own word (``state``) that the container stopped."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = subprocess.run([runtime, "--root", str(state), "state", container],
                              capture_output=True, timeout=WAIT, check=True)  # fmt: skip
        if json.loads(done.stdout)["status"] == "stopped":
            return
        select.select([], [], [], 0.01)
    raise AssertionError(f"{container} did not stop within {WAIT}s")


def _cgroups() -> list[str]:
    """The cgroup directories at the top of each hierarchy (where runc puts its own)."""
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        path = os.path.join("/sys/fs/cgroup", hierarchy)
        if os.path.isdir(path) and not os.path.islink(path):
            found += [f"{hierarchy}/{d}" for d in os.listdir(path) if d.startswith(ID_PREFIX)]
    return sorted(found)
