"""Crash the isolator at every step, and at random moments, and check its promise after
every restart: the plugin holds exactly the volumes of the surviving containers, nothing a
survivor uses was unmounted, and no checkpoint is left for a dead container. The plugin
counts calls as Docker's ``local`` driver does and refuses a second Mount of one ID, so
every count is 0 or 1 (balanced calls) and no prepare fails as a duplicate.

Each round starts an agent process (``crash_agent.py``) beside a reference plugin that
outlives it. The agent recovers with the surviving containers as known states (every
other checkpoint is an unknown orphan, cleaned up), the test checks the plugin's state
file and the checkpoint directory, then the agent prepares new containers and cleans up
finished ones until it is killed: by a failpoint (``ISOLATOR_FAILPOINTS``) in the first
rounds, one round per point, then by SIGKILL at a random moment. A table of the rounds is
printed (``pytest -s tests/isolator/docker/test_crash.py`` shows it).
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from isolator.common import failpoints
from isolator.plugin.state import load_state
from tests.support.repo import REPO
from tests.support.waits import WAIT

HERE = REPO / "tests" / "support"
AGENT = HERE / "crash_agent.py"
VOLUMES = ("v0", "v1", "v2", "v3")
RANDOM_KILLS = 50
MAX_ROUNDS = 200
SEED = int(os.environ.get("ISOLATOR_CRASH_SEED", "20261129"))


@dataclass
class Plugin:
    root: Path
    sockets: Path
    process: subprocess.Popen[bytes]

    def counts(self) -> dict[str, int]:
        """Each volume's mount count, from the plugin's durable state (Docker's ``local``
        rule: one per Mount, less one per Unmount); a missing directory: nothing saved yet."""
        return {name: record.count for name, record in load_state(self.root / "state").items()}

    def holders(self) -> set[str]:
        """Volumes the plugin still holds for somebody: a count above 0."""
        return {name for name, count in self.counts().items() if count}


@pytest.fixture
def plugin() -> Iterator[Plugin]:
    workdir = Path(tempfile.mkdtemp(dir="/tmp", prefix="crash-"))  # short socket path
    sockets = workdir / "plugins"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "isolator.plugin",
            "--socket",
            str(sockets / "crash.sock"),
            "--root",
            str(workdir / "plugin"),
            "--count",
            "calls",
            "--refuse-duplicate-id",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
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
    try:
        assert serving.wait(WAIT), f"the plugin did not start: {b''.join(log)!r}"
        yield Plugin(workdir / "plugin", sockets, process)
    finally:
        process.terminate()
        process.wait(WAIT)
        reader.join(WAIT)
        subprocess.run(["rm", "-rf", str(workdir)], check=True)


@dataclass
class Round:
    number: int
    kill: str  # the failpoint, "random after N ms", or "none"
    known: dict[str, list[str]]
    actions: list[list[object]]
    events: list[str] = field(default_factory=list)
    outcome: str = ""


class Agent:
    """One run of crash_agent.py: recovery, a pause for the checks, then the actions."""

    def __init__(self, plan: Mapping[str, object], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(AGENT), json.dumps(plan)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.lines: list[str] = []

    def read_line(self, timeout: float) -> str | None:
        """The agent's next line; None once it has exited."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"the agent said nothing for {timeout} s: {self.lines}"
        line = self.process.stdout.readline().decode().strip()
        if line:
            self.lines.append(line)
        return line or None

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def finish(self, kill_after: float | None) -> str:
        """Read the rest of its lines, killing it after ``kill_after`` seconds if given."""
        assert self.process.stdout is not None
        deadline = None if kill_after is None else time.monotonic() + kill_after
        while True:
            if deadline is not None:
                remaining = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([self.process.stdout], [], [], remaining)
                if not ready:
                    self.process.send_signal(signal.SIGKILL)
                    deadline = None
                    continue
            if self.read_line(WAIT) is None:
                break
        status = self.process.wait(WAIT)
        return "finished" if status == 0 else f"killed ({signal.Signals(-status).name})"


def test_a_crash_at_any_step_leaks_nothing_and_unmounts_nothing_in_use(
    plugin: Plugin, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    checkpoints = tmp_path / "checkpoints"
    alive: dict[str, list[str]] = {}  # containers the scheduler believes run, and volumes
    rounds: list[Round] = []
    names = iter(f"c{n}" for n in range(10_000))
    for kill in plan_kills(rounds):
        # Some containers die with the agent; the others survive as known containers.
        survivors = {n: v for n, v in alive.items() if kill == "none" or rng.random() > 0.2}
        finishing = [n for n in survivors if kill == "none" or rng.random() < 0.4]
        actions: list[list[object]] = [["cleanup", n] for n in finishing]
        if kill != "none":
            for _ in range(rng.randint(4, 6) if kill == "warm-up" else rng.randint(1, 4)):
                volumes = rng.sample(VOLUMES, rng.randint(1, 2))
                actions.insert(rng.randint(0, len(actions)), ["prepare", next(names), volumes])
        current = Round(len(rounds), kill, dict(survivors), actions)
        rounds.append(current)
        alive = run_round(current, plugin, checkpoints, rng)
    print_table(rounds)
    assert alive == {}
    assert plugin.holders() == set()
    assert not checkpoints.exists() or os.listdir(checkpoints) == []
    killed_at_random = [r for r in rounds if r.kill.startswith("random") and "SIGKILL" in r.outcome]
    assert len(killed_at_random) >= RANDOM_KILLS
    assert {r.kill.partition("@")[0] for r in rounds} >= set(failpoints.POINTS)


def plan_kills(rounds: list[Round]) -> Iterator[str]:
    """A round with no kill to start with containers; every failpoint at its first and its
    second pass; random kills until enough landed; then a round that cleans up all."""
    yield "warm-up"
    for point in failpoints.POINTS:
        yield f"{point}@1"
        yield f"{point}@2"
    while sum(1 for r in rounds if r.kill.startswith("random") and "SIGKILL" in r.outcome) < (
        RANDOM_KILLS
    ):
        assert len(rounds) < MAX_ROUNDS, "too few random kills landed before the agent finished"
        yield "random"
    yield "none"


def run_round(
    current: Round, plugin: Plugin, checkpoints: Path, rng: random.Random
) -> dict[str, list[str]]:
    """Run one agent; check the promise after its recovery; the containers alive after."""
    env = dict(os.environ)
    env.pop(failpoints.ENV, None)
    if current.kill not in ("random", "none", "warm-up"):
        point, _, hit = current.kill.partition("@")
        env[failpoints.ENV] = f"{point}=kill@{hit}"
    plan = {
        "checkpoints": str(checkpoints),
        "sockets": str(plugin.sockets),
        "known": current.known,
        "actions": current.actions,
    }
    agent = Agent(plan, env)
    try:
        return drive(agent, current, plugin, checkpoints, rng)
    finally:
        if agent.process.poll() is None:  # a failed check: the agent must not outlive it
            agent.process.kill()
            agent.process.wait(WAIT)


def drive(
    agent: Agent, current: Round, plugin: Plugin, checkpoints: Path, rng: random.Random
) -> dict[str, list[str]]:
    first = agent.read_line(WAIT)
    if first is None:  # killed while recovering (its orphans' cleanups too): recover again
        current.outcome = "killed in recovery: " + agent.finish(None)
        assert current.kill not in ("random", "none", "warm-up"), agent.lines
        return current.known
    assert first == "recovered", agent.lines
    check_promise(current.known, plugin, checkpoints)
    agent.go()
    kill_after = rng.uniform(0.0, 0.1) if current.kill == "random" else None
    if kill_after is not None:
        current.kill = f"random after {kill_after * 1000:.0f} ms"
    current.outcome = agent.finish(kill_after)
    current.events = agent.lines[1:]
    refused = [event for event in current.events if "already mounted" in event]
    assert not refused, f"the plugin refused a second Mount of one ID: {refused}"
    alive = dict(current.known)
    reported = set()
    for event in current.events:
        word, _, rest = event.partition(" ")
        name, _, failure = rest.partition(" ")
        reported.add(name)
        if word == "prepared" and not failure:
            alive[name] = next(a[2] for a in current.actions if a[1] == name)  # type: ignore[misc]
        elif word == "cleaned" and not failure:
            alive.pop(name, None)
    # A cleanup the crash interrupted leaves a dying container: an orphan from now on.
    for action in current.actions:
        if action[0] == "cleanup" and action[1] not in reported:
            alive.pop(str(action[1]), None)
    return alive


def check_promise(known: dict[str, list[str]], plugin: Plugin, checkpoints: Path) -> None:
    in_use = {volume for volumes in known.values() for volume in volumes}
    assert plugin.holders() == in_use, "the plugin must hold exactly the survivors' volumes"
    # Balanced: one Mount per mounted period, so no count ever climbs above 1.
    assert max(plugin.counts().values(), default=0) <= 1, plugin.counts()
    left = set(os.listdir(checkpoints)) if checkpoints.exists() else set()
    assert left == set(known), "only the survivors may have checkpoints"


def print_table(rounds: list[Round]) -> None:
    print(f"\ncrash test, seed {SEED}: {len(rounds)} rounds")
    print(f"{'round':>5}  {'kill':<28} {'known':>5} {'actions':>7} {'done':>4}  outcome")
    for r in rounds:
        done = sum(1 for e in r.events if not e.endswith("failed") and e != "done")
        print(
            f"{r.number:>5}  {r.kill:<28} {len(r.known):>5} {len(r.actions):>7} {done:>4}  "
            f"{r.outcome}"
        )
