"""A model-based test of the isolator's one promise: a volume is unmounted exactly when its
last user is gone, across refusals, lost answers, hangs, crashes, ID reuse and ``forget``.

Hypothesis drives an isolator and a model of it side by side. The driver is a plugin as
the isolator sees one (one caller ID) whose every call ends as the test decides: it mounts,
it refuses, its answer is lost after it mounted or before, it hangs until released, an
unmount fails. It counts as real plugins do (``reference/plugin-call-balance.md``): in
``calls`` mode as Docker's ``local`` driver (``count++`` on every Mount, ``count--`` on every
Unmount, released at 0), in ``refuse`` mode as a loopback plugin that refuses a second
Mount of the same ID. After every step:

- no two Mounts of a volume succeeded without an Unmount between (in ``refuse`` mode, no
  Mount was refused as a duplicate), so a volume's count is never above 1;
- no unmount reached the driver while a live container still used the volume, and no
  volume ever had two calls in flight;
- a container that reused a mount (no Mount of its own) got it while the driver had it;
- every volume a live container mounted is mounted (nothing unmounted under it);
- every volume whose count is above 0 belongs to a container the isolator still answers for
  (prepared, cleaning, or stranded by a failed cleanup) or to one an operator
  ``forget``-ed (the operator takes those over): no leak, so once nobody holds a volume
  its count is back at 0;
- the checkpoints on disk are exactly those containers';
- the isolator's own ``usage()`` agrees with the model.

The default run has 500 examples. ``ISOLATOR_MODEL_SLOW=1`` runs a long one (2,000
examples of up to 30 steps) and checks that at least 10,000 steps ran.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from actors import Future, Promise, await_
from isolator import DockerVolumeIsolator, DriverClient, DriverError, Flags, IsolatorError
from isolator.common.errors import MountRefusedError
from isolator.common.filesystems import memory_backed
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerID, ContainerState
from tests.support.waits import WAIT

SLOW = os.environ.get("ISOLATOR_MODEL_SLOW") == "1"
DRIVER = "model"
VOLUMES = ("v0", "v1", "v2")
TOP = ("c0", "c1", "c2")
CHILDREN = ("k0", "k1")

PluginMode = Literal["calls", "refuse"]
MountOutcome = Literal["ok", "refused", "lost-mounted", "lost-unmounted", "hang"]
UnmountOutcome = Literal["ok", "fail", "hang"]
MOUNT_OUTCOMES: tuple[MountOutcome, ...] = ("ok", "refused", "lost-mounted", "lost-unmounted")
UNMOUNT_OUTCOMES: tuple[UnmountOutcome, ...] = ("ok", "fail")

steps_run = [0]


@dataclass
class Call:
    """One planned driver call: how it ends, and whether the isolator made it."""

    op: str
    volume: str
    outcome: str
    made: bool = False


@dataclass
class Held:
    call: Call
    promise: Promise[Any]

    @property
    def op(self) -> str:
        return self.call.op

    @property
    def volume(self) -> str:
        return self.call.volume


class ModelDriver(DriverClient):
    """A plugin as the isolator sees one; every call ends as the test planned it."""

    def __init__(self, mount_root: str, mode: PluginMode) -> None:
        self._root = mount_root
        self.mode = mode
        self.lock = threading.Lock()
        self.count: Counter[str] = Counter()  # successful Mounts less Unmounts, per volume
        self.in_flight: Counter[str] = Counter()
        self.plans: dict[tuple[str, str], deque[Call]] = {}
        self.held: list[Held] = []
        self.violations: list[str] = []
        self.unmounted: list[str] = []
        self.users: Any = lambda volume: []  # the machine's view: who uses a volume now
        self.changed = threading.Condition(self.lock)

    def wait_done_or_held(self, future: Future[Any], held_before: int) -> bool:
        """Until ``future`` is done or one more call is held; True if it is done."""
        future.on_any(lambda _: self._notify())
        with self.changed:
            finished = self.changed.wait_for(
                lambda: not future.is_pending() or len(self.held) > held_before, WAIT
            )
        assert finished, "a call that was not held never finished"
        return not future.is_pending()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def plan(self, op: str, volume: str, outcome: str) -> Call:
        call = Call(op, volume, outcome)
        with self.lock:
            self.plans.setdefault((op, volume), deque()).append(call)
        return call

    def mount(self, driver: str, name: str, options: Mapping[str, str]) -> Future[str]:
        return self._call("mount", name)

    def unmount(self, driver: str, name: str) -> Future[None]:
        return self._call("unmount", name)

    def path(self, driver: str, name: str) -> Future[str]:
        with self.lock:
            self.in_flight[name] += 1
            if self.in_flight[name] > 1:
                self.violations.append(f"two calls in flight on {name}")
            where = os.path.join(self._root, name) if self.count[name] else ""
            self.in_flight[name] -= 1
        return Future.ready(where)

    @property
    def mounted(self) -> set[str]:
        """Volumes the plugin holds (count above 0); call with ``lock`` held."""
        return {volume for volume, count in self.count.items() if count > 0}

    def _call(self, op: str, volume: str) -> Future[Any]:
        with self.lock:
            self.in_flight[volume] += 1
            if self.in_flight[volume] > 1:
                self.violations.append(f"two calls in flight on {volume}")
            if op == "unmount" and self.users(volume):
                self.violations.append(f"unmount of {volume} while {self.users(volume)} use it")
            plans = self.plans.get((op, volume))
            call = plans.popleft() if plans else Call(op, volume, "ok")
            call.made = True
            if call.outcome == "hang":
                promise: Promise[Any] = Promise()
                self.held.append(Held(call, promise))
                self.changed.notify_all()
                return promise.future
        return self.settle(call)

    def settle(self, call: Call) -> Future[Any]:
        op, volume, outcome = call.op, call.volume, call.outcome
        with self.lock:
            self.in_flight[volume] -= 1
            if op == "mount" and outcome in ("ok", "lost-mounted") and self.count[volume]:
                self.violations.append(f"a second Mount of {volume} without an Unmount")
                if self.mode == "refuse":
                    return Future.failed(MountRefusedError(f"{volume}: already mounted"))
            if op == "mount":
                if outcome in ("ok", "lost-mounted"):
                    self.count[volume] += 1
            elif outcome == "ok":
                self.count[volume] = max(0, self.count[volume] - 1)
                if not self.count[volume]:
                    self.unmounted.append(volume)
        if outcome == "ok":
            return Future.ready(os.path.join(self._root, volume) if op == "mount" else None)
        if outcome == "refused":
            return Future.failed(MountRefusedError(f"{volume}: refused"))
        return Future.failed(DriverError(f"{op} {volume}: {outcome}"))

    def release_all(self, data: st.DataObject | _Ok) -> None:
        with self.lock:
            held, self.held = self.held, []
        for hold in held:
            choices = MOUNT_OUTCOMES if hold.op == "mount" else UNMOUNT_OUTCOMES
            label = f"{hold.op} {hold.volume}"
            hold.call.outcome = data.draw(st.sampled_from(choices), label=label)
            hold.promise.associate(self.settle(hold.call))

    def busy_volumes(self) -> set[str]:
        with self.lock:
            return {call.volume for call in self.held}


@dataclass
class Modelled:
    """What the model expects of one container."""

    cid: ContainerID
    volumes: list[str]
    phase: Literal["prepared", "cleaning", "stranded"] = "prepared"
    mounted: set[str] = field(default_factory=set)
    pending: Future[Any] | None = None
    mounts: dict[str, Call] = field(default_factory=dict)
    """The mount calls of its prepare, by volume."""


def key_of(cid: ContainerID) -> tuple[str, ...]:
    return (cid.parent.value, cid.value) if cid.HasField("parent") else (cid.value,)


class IsolatorMachine(RuleBasedStateMachine):
    mode: PluginMode = "calls"
    parent: str | None = None  # where the checkpoints live: the temporary directory's disk

    def __init__(self) -> None:
        super().__init__()
        self.workdir = tempfile.mkdtemp(prefix="model-", dir=self.parent)
        self.flags = Flags(docker_volume_checkpoint_dir=os.path.join(self.workdir, "cp"))
        self.driver = ModelDriver(self.workdir, self.mode)
        self.driver.users = self.users
        self.model_lock = threading.Lock()
        self.containers: dict[tuple[str, ...], Modelled] = {}
        self.isolator = DockerVolumeIsolator.create(self.flags, self.driver)
        self.log: list[str] = []

    def teardown(self) -> None:
        self.driver.release_all(_Ok())
        self.isolator.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the model's view ----------------------------------------------------------------

    def users(self, volume: str) -> list[str]:
        with self.model_lock:
            return [
                ".".join(k)
                for k, c in self.containers.items()
                if c.phase == "prepared" and volume in c.mounted
            ]

    def idle(self, phase: str) -> list[tuple[str, ...]]:
        return sorted(k for k, c in self.containers.items() if c.phase == phase and not c.pending)

    def settle_pending(self) -> None:
        for key, container in list(self.containers.items()):
            if container.pending is not None and not container.pending.is_pending():
                self.finish(key, container)

    def finish(self, key: tuple[str, ...], container: Modelled) -> None:
        done, container.pending = container.pending, None
        assert done is not None
        with self.model_lock:
            if container.phase == "prepared":
                made = [c for c in container.mounts.values() if c.made]
                reused = {c.volume for c in container.mounts.values() if not c.made}
                mounted = {c.volume for c in made if c.outcome in ("ok", "lost-mounted")}
                # No Mount of its own: it reused the mount point the driver still had.
                if done.is_ready():
                    with self.driver.lock:
                        assert reused <= self.driver.mounted, (reused, container)
                container.mounted |= mounted | reused
                assert done.is_ready() == all(c.outcome == "ok" for c in made), container
                self.drop_unmade(container.mounts)
            elif done.is_ready():
                del self.containers[key]
            else:
                container.phase = "stranded"
        self.driver.unmounted.clear()

    # -- rules -----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        steps_run[0] += 1

    @rule(data=st.data(), parent=st.none() | st.sampled_from(TOP))
    def prepare(self, data: st.DataObject, parent: str | None) -> None:
        steps_run[0] += 1
        cid = (
            container_id(data.draw(st.sampled_from(CHILDREN)), container_id(parent))
            if parent
            else container_id(data.draw(st.sampled_from(TOP)))
        )
        free = sorted(set(VOLUMES) - self.driver.busy_volumes())
        if not free:
            return
        volumes = data.draw(st.lists(st.sampled_from(free), min_size=1, max_size=2, unique=True))
        mounts = self.plan_outcomes("mount", volumes, MOUNT_OUTCOMES, data)
        key = key_of(cid)
        existing = self.containers.get(key)
        namesake = [k for k in self.containers if k[-1] == cid.value and k != key]
        config = container_config(
            os.path.join(self.workdir, "sandbox"),
            [docker_volume(DRIVER, v, f"m/{v}") for v in volumes],
        )
        os.makedirs(config.directory, exist_ok=True)
        held_before = len(self.driver.held)
        self.log.append(f"prepare {key} {volumes} plans={dict(self.driver.plans)}")
        future = self.isolator.prepare(cid, config)
        if (existing is not None and existing.phase != "stranded") or namesake:
            assert isinstance(_failure(future), IsolatorError)
            self.drop_unmade(mounts)
            return
        # A stranded predecessor's volumes are a duty to unmount, not something it uses.
        inherited = existing.volumes if existing is not None else []
        with self.model_lock:
            self.containers[key] = Modelled(
                cid,
                list(dict.fromkeys([*volumes, *inherited])),
                pending=future,
                mounts=mounts,
            )
        self.wait_unless_held(key, held_before)

    def plan_outcomes(
        self, op: str, volumes: list[str], outcomes: tuple[str, ...], data: st.DataObject
    ) -> dict[str, Call]:
        """How each call of this step ends; at most one hangs, so waiting stays simple."""
        hang = data.draw(st.none() | st.sampled_from(volumes), label="hangs")
        return {
            volume: self.driver.plan(
                op, volume, "hang" if volume == hang else data.draw(st.sampled_from(outcomes))
            )
            for volume in volumes
        }

    def drop_unmade(self, calls: dict[str, Call]) -> None:
        """Forget this step's plans for calls the isolator did not make (another step's
        plans, queued behind a held call, stay)."""
        with self.driver.lock:
            for call in calls.values():
                queue = self.driver.plans.get((call.op, call.volume))
                if queue is not None and not call.made and call in queue:
                    queue.remove(call)

    def wait_unless_held(self, key: tuple[str, ...], held_before: int) -> None:
        container = self.containers[key]
        assert container.pending is not None
        if self.driver.wait_done_or_held(container.pending, held_before):
            self.finish(key, container)

    @precondition(lambda self: self.idle("prepared") or self.idle("stranded"))
    @rule(data=st.data())
    def cleanup(self, data: st.DataObject) -> None:
        steps_run[0] += 1
        key = data.draw(st.sampled_from(self.idle("prepared") + self.idle("stranded")))
        container = self.containers[key]
        busy = self.driver.busy_volumes()
        if busy & set(container.volumes):
            return  # it would wait behind a held call
        children = [
            k for k, c in self.containers.items() if k[:-1] == key and c.phase == "prepared"
        ]
        unmounts = self.plan_outcomes("unmount", container.volumes, UNMOUNT_OUTCOMES, data)
        held_before = len(self.driver.held)
        self.log.append(f"cleanup {key} plans={dict(self.driver.plans)}")
        future = self.isolator.cleanup(container.cid)
        if children and container.phase == "prepared":
            assert "which is not cleaned up yet" in str(_failure(future))
            self.drop_unmade(unmounts)
            return
        with self.model_lock:
            container.phase = "cleaning"
            container.pending = future
        self.wait_unless_held(key, held_before)
        self.drop_unmade(unmounts)  # an unmount the isolator skips (nothing is mounted)

    @precondition(lambda self: bool(self.driver.held))
    @rule(data=st.data())
    def release_held_calls(self, data: st.DataObject) -> None:
        steps_run[0] += 1
        self.log.append(f"release {[(h.op, h.volume) for h in self.driver.held]}")
        self.driver.release_all(data)
        for container in self.containers.values():
            if container.pending is not None:
                assert container.pending.wait(WAIT), "a released call never finished"
        self.settle_pending()

    @precondition(lambda self: self.idle("prepared") or self.idle("stranded"))
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        steps_run[0] += 1
        key = data.draw(st.sampled_from(self.idle("prepared") + self.idle("stranded")))
        container = self.containers[key]
        if self.driver.busy_volumes() & set(container.volumes):
            return
        self.log.append(f"forget {key}")
        self.isolator.forget(container.cid).get(WAIT)
        with self.model_lock:
            del self.containers[key]
        in_use = {v for c in self.containers.values() if c.phase == "prepared" for v in c.volumes}
        with self.driver.lock:
            given_up = (self.driver.mounted & set(container.volumes)) - in_use
            # The operator who forgets a container takes its mounts over: unmounted by hand,
            # so the isolator's next Mount of such a volume is the first again.
            for volume in given_up:
                self.driver.count[volume] = 0

    @rule(data=st.data())
    def crash_and_recover(self, data: st.DataObject) -> None:
        steps_run[0] += 1
        self.driver.release_all(data)
        for container in self.containers.values():
            if container.pending is not None:
                assert container.pending.wait(WAIT)
        self.settle_pending()
        self.isolator.stop()
        self.log.append("crash")
        prepared = self.idle("prepared")
        survivors = data.draw(st.lists(st.sampled_from(prepared), unique=True)) if prepared else []
        # A nested container dies with its parent.
        survivors = [k for k in survivors if len(k) == 1 or (k[0],) in survivors]
        dead = sorted((k for k in self.containers if k not in survivors), key=lambda k: k[-1])
        for volume in VOLUMES:
            outcome = data.draw(st.sampled_from(UNMOUNT_OUTCOMES), label=f"orphan {volume}")
            self.driver.plan("unmount", volume, outcome)
        self.isolator = DockerVolumeIsolator.create(self.flags, self.driver)
        states = [
            ContainerState(container_id=self.containers[k].cid, pid=1, directory="/s")
            for k in survivors
        ]
        # Orphans are known by value alone now; their cleanups run in value order.
        with self.model_lock:
            orphans = {(k[-1],): self.containers.pop(k) for k in dead}
            for (value,), container in orphans.items():
                container.cid = ContainerID(value=value)
                container.phase = "cleaning"
                self.containers[(value,)] = container
        self.log.append(f"recover survivors={survivors} orphans={list(orphans)}")
        self.isolator.recover(states, []).get(WAIT)
        cleanups = self.isolator.orphan_cleanups().get(WAIT)
        assert len(cleanups) == len(orphans)
        with self.model_lock:
            for key, cleanup in zip(orphans, cleanups, strict=True):
                if cleanup.is_ready():
                    del self.containers[key]
                else:
                    self.containers[key].phase = "stranded"
        self.driver.unmounted.clear()
        with self.driver.lock:
            self.driver.plans = {k: v for k, v in self.driver.plans.items() if k[0] == "mount"}

    # -- the promise -------------------------------------------------------------------------

    @invariant()
    def nothing_unmounted_under_a_user_and_one_call_at_a_time(self) -> None:
        assert self.driver.violations == [], "\n".join([*self.log, str(self.containers)])

    @invariant()
    def live_containers_have_their_volumes_and_nothing_leaks(self) -> None:
        busy = self.driver.busy_volumes()
        with self.driver.lock:
            mounted = set(self.driver.mounted)
        used = {v for c in self.containers.values() if c.phase == "prepared" for v in c.mounted}
        assert used - busy <= mounted, f"unmounted under a live container: {used - mounted}"
        answered = {v for c in self.containers.values() for v in c.volumes}
        leaked = mounted - answered - busy
        assert not leaked, f"mounted, but no container answers for them: {leaked}"

    @invariant()
    def checkpoints_and_usage_agree_with_the_model(self) -> None:
        if self.driver.held:
            return  # a cleanup or a prepare is under way
        root = self.flags.docker_volume_checkpoint_dir
        on_disk = set(os.listdir(root)) if os.path.isdir(root) else set()
        assert on_disk == {key[-1] for key in self.containers}, (on_disk, self.containers)
        usage = self.isolator.usage().get(WAIT)
        expected = {".".join(k): c.phase for k, c in self.containers.items()}
        assert dict(usage.phases) == expected, (usage, expected)


class _Ok:
    """Answers every draw with the first choice: held calls at teardown simply succeed."""

    def draw(self, strategy: Any, label: Any = None) -> Any:
        return "ok"


def _failure(future: Future[Any]) -> BaseException | None:
    await_([future]).get(WAIT)
    return future.failure()


class RefusingPluginMachine(IsolatorMachine):
    mode: PluginMode = "refuse"


class TmpfsMachine(IsolatorMachine):
    """Checkpoints on a tmpfs: their I/O runs after the isolator's turns, not on lanes."""

    parent = "/dev/shm"


_ON_TMPFS = pytest.mark.skipif(not memory_backed("/dev/shm"), reason="/dev/shm is not a tmpfs")


@pytest.mark.parametrize(
    ("machine", "examples"),
    [
        (IsolatorMachine, 500),
        (RefusingPluginMachine, 200),
        pytest.param(TmpfsMachine, 150, marks=_ON_TMPFS),
    ],
)
def test_the_isolator_keeps_its_promise_in_every_sequence(
    machine: type[IsolatorMachine], examples: int
) -> None:
    steps_run[0] = 0
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=2000 if SLOW else examples,
            stateful_step_count=30 if SLOW else 10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=not SLOW,
            database=None,
        ),
    )
    if SLOW:
        print(f"model-based test: {steps_run[0]} steps")
        assert steps_run[0] >= 10_000, f"the slow run made only {steps_run[0]} steps"
