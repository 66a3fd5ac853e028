"""One agent per node on Ray (the ``[ray]`` extra): the agent alone, restarted by Ray, the example.

The agent's own tests need no Ray (its methods are coroutines): a crash is ``abandon()`` and a
restart a new ``Agent`` on the same root. As root the tasks get real bind mounts, each in the
launcher's private mount namespace; otherwise they run without mounts and all else is checked.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.repo import REPO
from tests.support.waits import WAIT
from tests.test_examples import load_example, run_example

ray = pytest.importorskip("ray")
from ray.exceptions import RayActorError  # noqa: E402

from isolator.contrib.ray import (  # noqa: E402
    Agent,
    AgentConfig,
    AgentError,
    RecoveryReport,
    TaskSpec,
    VolumeMount,
    local_cluster,
    start_agent,
)
from isolator.contrib.ray.processes import (  # noqa: E402
    ProcessId,
    exited,
    read_exit_status,
    read_pids,
    reap_children,
    send_signal,
    set_subreaper,
    spawn,
)
from isolator.contrib.ray.state import load_state  # noqa: E402

RAY_WAIT = 60.0
"""Seconds to wait on a Ray answer: a restart starts a new worker process, slow on 2 cores."""

MOUNTS = os.geteuid() == 0
SERVICE = "echo serving; exec sleep 600"


@pytest.fixture
def root() -> Iterator[Path]:
    """A short directory for an agent (unix socket paths are limited to about 107 bytes)."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="agent-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def adopting() -> Iterator[None]:
    """Shims are reparented to this process during the test, and all have exited after it."""
    set_subreaper(True)
    try:
        yield
    finally:
        left = reap_children(WAIT)
        set_subreaper(False)
    assert not left, f"processes left running: {left}"


def service(name: str, *volumes: str, checkpoint: bool = True) -> TaskSpec:
    return TaskSpec(name, SERVICE, tuple(VolumeMount(v) for v in volumes), checkpoint)


async def holders(agent: Agent) -> dict[str, int]:
    return {name: count for name, count in (await agent.holders()).items() if count}


# -- processes that outlive their starter ------------------------------------------------


@pytest.mark.usefixtures("adopting")
def test_the_shim_records_its_child_and_how_it_ended(root: Path) -> None:
    async def scenario() -> None:
        started = await spawn(["sh", "-c", "echo out; echo err >&2; exit 3"], root)
        await asyncio.wait_for(exited(started.shim), WAIT)
        assert read_pids(root) == started
        assert read_exit_status(root) == 3
        assert (root / "output").read_text() == "out\nerr\n"
        assert not started.child.running()
        assert not send_signal(started.child, signal.SIGKILL)

    asyncio.run(scenario())


def test_a_reused_pid_is_not_taken_for_the_process() -> None:
    me = ProcessId.of(os.getpid())
    assert me is not None
    assert me.running()
    assert not ProcessId(me.pid, me.start + 1).running()
    assert not send_signal(ProcessId(me.pid, me.start + 1), signal.SIGKILL)


# -- the agent without Ray ---------------------------------------------------------------


@pytest.mark.usefixtures("adopting")
def test_tasks_share_a_volume_read_only_or_not_and_nothing_is_left(root: Path) -> None:
    async def scenario(agent: Agent) -> None:
        writer = TaskSpec("writer", "echo hello > v/x && cat v/x", (VolumeMount("vol", path="v"),))
        await agent.launch(writer)
        assert (await agent.wait("writer")).output == "hello\n"
        reading = TaskSpec("reader", "cat v/x; echo no > v/y", (VolumeMount("vol", True, "v"),))
        await agent.launch(reading)
        result = await agent.wait("reader")
        if MOUNTS:
            assert (result.status, result.exit_code) == ("failed", 2)
            assert result.output.startswith("hello\n")
            assert "Read-only file system" in result.output
        assert await agent.wait("reader") == result  # asked again, answered again
        assert await agent.leftovers() == []
        counters = (await agent.info()).counters
        assert (counters.tasks, counters.mounts, counters.unmounts) == (2, 2, 2)
        await agent.shutdown()

    asyncio.run(scenario(Agent(AgentConfig(root=str(root), node="n"))))
    assert load_state(root / "agent.json").plugin is None  # stopped, and known to be


@pytest.mark.usefixtures("adopting")
def test_a_restarted_agent_keeps_survivors_and_cleans_up_the_others(root: Path) -> None:
    config = AgentConfig(root=str(root), node="n")

    async def before_the_crash(agent: Agent) -> None:
        await agent.launch(service("survivor", "shared"))
        await agent.launch(service("no-checkpoint", "shared", "own", checkpoint=False))
        await agent.launch(service("gone", "elsewhere"))
        assert await holders(agent) == {"shared": 1, "own": 1, "elsewhere": 1}

    first = Agent(config)
    asyncio.run(before_the_crash(first))
    first.abandon()
    # While no agent runs, one task ends: nobody sees it but its shim.
    gone = read_pids(root / "runs" / "gone")
    assert gone is not None
    os.kill(gone.child.pid, signal.SIGTERM)
    asyncio.run(asyncio.wait_for(exited(gone.shim), WAIT))

    async def after_the_restart(agent: Agent) -> None:
        info = await agent.info()
        assert info.recovery == RecoveryReport(
            incarnation=2,
            plugin_reused=True,
            survivors=("survivor",),
            ended=("gone",),
            killed=("no-checkpoint",),
        )
        assert info.running == ("survivor",)
        assert await holders(agent) == {"shared": 1}
        lost = await agent.wait("no-checkpoint")
        assert (lost.status, lost.note) == ("killed", "killed at recovery: it does not checkpoint")
        ended = await agent.wait("gone")
        assert (ended.exit_code, ended.note) == (-signal.SIGTERM, "ended while no agent watched")
        with pytest.raises(AgentError, match="Tasks still run on node n: \\['survivor'\\]"):
            await agent.shutdown()
        assert await agent.kill("survivor")
        assert (await agent.wait("survivor")).status == "killed"
        assert not await agent.kill("survivor")
        assert await agent.leftovers() == []
        assert (await agent.info()).counters.orphans == 2
        await agent.shutdown()

    asyncio.run(after_the_restart(Agent(config)))


@pytest.mark.usefixtures("adopting")
def test_an_agent_refuses_what_it_cannot_run_safely(root: Path) -> None:
    async def scenario(agent: Agent) -> None:
        for name in ("", "..", "a/b", ".hidden", "a\nb"):
            with pytest.raises(AgentError, match="Task name"):
                await agent.launch(TaskSpec(name, "true"))
        same_path = (VolumeMount("a", path="p"), VolumeMount("b", path="p"))
        with pytest.raises(AgentError, match="two volumes at the same path"):
            await agent.launch(TaskSpec("t", "true", same_path))
        await agent.launch(service("twice", "vol"))
        with pytest.raises(AgentError, match="Task twice already runs on node n"):
            await agent.launch(service("twice", "vol"))
        with pytest.raises(AgentError, match="No task nobody on node n"):
            await agent.wait("nobody")
        waiting = asyncio.ensure_future(agent.wait("twice"))
        await agent.shutdown(kill_tasks=True)
        assert (await waiting).status == "killed"
        with pytest.raises(AgentError, match="The agent on node n has stopped"):
            await agent.wait("twice")

    asyncio.run(scenario(Agent(AgentConfig(root=str(root), node="n"))))


# -- on Ray ------------------------------------------------------------------------------


def test_an_agent_restarted_by_ray_unmounts_nothing_a_survivor_uses(root: Path) -> None:
    with local_cluster(1) as cluster:
        (node,) = cluster.nodes
        agent = start_agent(node, AgentConfig(root=str(root), node=node))
        try:
            ray.get(
                [
                    agent.launch(service("survivor", "shared")),
                    agent.launch(service("lost", "shared", "own", checkpoint=False)),
                ],
                timeout=RAY_WAIT,
            )
            first = ray.get(agent.info(), timeout=RAY_WAIT)
            # Submitted to the agent about to die; its successor answers them.
            waits = [agent.wait("survivor"), agent.wait("lost")]
            watch = agent.ended()
            ray.kill(agent.actor, no_restart=False)
            with pytest.raises(RayActorError):
                ray.get(watch, timeout=RAY_WAIT)

            info = ray.get(agent.info(), timeout=RAY_WAIT)
            assert info.pid != first.pid
            assert info.recovery == RecoveryReport(2, True, ("survivor",), (), ("lost",))
            assert ray.get(agent.holders(), timeout=RAY_WAIT) == {"shared": 1, "own": 0}
            assert ray.get(agent.kill("survivor"), timeout=RAY_WAIT)
            survivor, lost = ray.get(waits, timeout=RAY_WAIT)
            assert (survivor.status, survivor.output) == ("killed", "serving\n")
            assert lost.note == "killed at recovery: it does not checkpoint"
            assert ray.get(agent.leftovers(), timeout=RAY_WAIT) == []
            ray.get(agent.shutdown(), timeout=RAY_WAIT)
        finally:
            ray.get(agent.shutdown(kill_tasks=True), timeout=RAY_WAIT)
            ray.kill(agent.actor, no_restart=True)
    assert cluster.leftover_processes == []


def test_the_ray_cluster_example_on_a_small_workload() -> None:
    result = run_example("ray_cluster.py", "--tasks", "3", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "all checks held: no checkpoint, plugin holder, host mount or process left" in out
    summary = {
        int(m[1]): m[2] for m in re.finditer(r"^  node-(\d) \(\w{8}\): (.*)$", out, re.MULTILINE)
    }
    assert sorted(summary) == [0, 1, 2]
    read_only = "1 failed, 4 finished" if MOUNTS else "5 finished"
    assert summary[0].startswith(f"6 tasks ({read_only}, 1 killed); ")
    assert summary[1].endswith("agent restarts: 0, orphans cleaned up: 0")
    assert summary[2].startswith("4 tasks (2 finished, 2 killed); ")
    assert summary[2].endswith("agent restarts: 1, orphans cleaned up: 1")


def test_the_ray_cluster_example_says_so_when_it_cannot_mount(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process with a non-root euid: the agents get mounts=False in their config, so the
    # tasks run without mounts and the rest (isolator, plugins, the restart) is checked.
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    example = load_example("ray_cluster.py")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert example.main(["--tasks", "1"]) == 0
    out = capsys.readouterr().out
    assert "not root: tasks run without mounts" in out
    assert "agent incarnation 2" in out
    assert "all checks held" in out


def test_the_shim_loads_neither_ray_nor_the_actor_runtime_nor_http() -> None:
    # It starts once per task, and its first process only forks.
    code = (
        "import sys, isolator.contrib.ray.shim; "
        "print(sorted(m for m in ('ray', 'pykka', 'httpx', 'actors') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
