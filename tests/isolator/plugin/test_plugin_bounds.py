"""DockerPluginClient against plugins that misbehave: what is sent again and what never is,
what a failed mount means (refused, or maybe mounted), and the bounds on what a plugin
can cost the agent (answer size, time, threads)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import actors
from isolator.common.errors import DriverError, MountRefusedError
from isolator.drivers import discovery, plugin_client, protocol
from isolator.drivers.blocking import FS_WORKERS
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.drivers.transport import MAX_BODY, Backoff, PluginUnreachableError
from tests.support.plugin_fakes import (
    Close,
    Endless,
    Env,
    FakePlugin,
    Hang,
    Last,
    Reply,
    failure,
    fake_plugin_loop,
    plugin_env,
    submit,
)
from tests.support.waits import WAIT

DEADLINE_SLACK = 5.0
"""Seconds a call may end after its deadline on a busy machine: generous, never tight."""

MEMORY_BOUND = 16 << 20
"""Bytes the client may allocate at its peak while refusing an endless answer (the cap is
1 MiB; without it the peak grows as long as the plugin streams)."""


@pytest.fixture(scope="module")
def server_loop() -> Iterator[Any]:
    with fake_plugin_loop() as loop:
        yield loop


@pytest.fixture
def env(server_loop: Any) -> Iterator[Env]:
    with plugin_env(server_loop) as environment:
        yield environment


def _blocking_threads_busy() -> int:
    """Threads of the actors layer's blocking executor running a call now."""
    blocking = actors.statistics().blocking
    return blocking.threads - blocking.idle


# -- what is sent again ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["VolumeDriver.Mount", "VolumeDriver.Unmount", "VolumeDriver.Create"]
)
def test_a_call_that_reached_the_plugin_is_never_sent_again(env: Env, method: str) -> None:
    # The plugin handles the call, then the connection drops before the answer.
    plugin = env.plugin(**{method.replace(".", "_"): lambda body: Close()})
    client = env.client(backoff=env.time.backoff(budget=30.0))
    future = client.unmount("fake", "vol") if method.endswith("Unmount") else None
    error = failure(future or client.mount("fake", "vol", {}))
    assert plugin.count(method) == 1
    assert env.time.sleeps == []
    assert str(error).startswith(
        f"Docker volume plugin 'fake' at unix://{env.sockets}/fake.sock: the connection "
        f"failed after {method} was sent ("
    )
    assert str(error).endswith("); not sent again, since the plugin may have acted on it")


def test_remove_is_never_sent_again_either(env: Env) -> None:
    plugin = env.plugin(VolumeDriver_Remove=lambda body: Close())
    client = env.client(backoff=env.time.backoff(budget=30.0))
    error = failure(submit(client, client.api.remove("fake", "vol")))
    assert "not sent again" in str(error)
    assert plugin.count("VolumeDriver.Remove") == 1


def _dies_after_create(env: Env) -> FakePlugin:
    """A plugin ``fake`` that stops listening once it has answered Create: Mount, which
    needs a new connection, cannot even connect."""
    plugin: FakePlugin

    def create(body: Any) -> Reply:
        plugin.stop_listening()
        return Last((200, {"Err": ""}))

    plugin = env.plugin("fake", VolumeDriver_Create=create)
    return plugin


def test_a_mount_that_never_reached_the_plugin_is_sent_again(env: Env) -> None:
    first = _dies_after_create(env)
    env.time.held = True
    future = env.client().mount("fake", "vol", {})
    assert env.time.asleep.wait(WAIT)  # Mount failed to connect; its retry is due
    second = env.plugin("fake")  # the plugin is back
    env.time.wake()
    assert future.get(WAIT) == str(env.mounts / "vol")
    assert first.count("VolumeDriver.Mount") == 0
    assert second.methods() == ["VolumeDriver.Mount"]
    assert env.time.sleeps == [0.02]


def test_a_mount_that_could_never_be_sent_is_a_refusal(env: Env) -> None:
    plugin = _dies_after_create(env)
    error = failure(env.client().mount("fake", "vol", {}))
    assert isinstance(error, MountRefusedError)
    assert isinstance(error.__cause__, PluginUnreachableError)
    assert str(error).startswith(
        f"Docker volume plugin 'fake' at unix://{env.sockets}/fake.sock is not answering "
        "VolumeDriver.Mount: "
    )
    assert env.time.sleeps == [0.02, 0.04, 0.08]
    assert plugin.count("VolumeDriver.Mount") == 0


# -- what a failed mount means ---------------------------------------------------------------

Setup = Callable[[Env], tuple[str, DockerPluginClient]]


def _fake(**handlers: Any) -> Setup:
    """A plugin ``fake`` with these handlers, and a client with the test's time."""

    overrides = handlers.pop("client", {})

    def setup(env: Env) -> tuple[str, DockerPluginClient]:
        env.plugin("fake", **handlers)
        return "fake", env.client(**overrides)

    return setup


def _bad_spec(env: Env) -> tuple[str, DockerPluginClient]:
    (env.etc / "bad.spec").write_text("nonsense\n")
    return "bad", env.client()


def _mount_answers(reply: Reply, **client: Any) -> Setup:
    """A plugin ``fake`` whose Mount answers ``reply``."""
    return _fake(VolumeDriver_Mount=lambda body: reply, client=client)


_REFUSED: list[Any] = [
    pytest.param(lambda env: ("ghost", env.client()), id="plugin-not-found"),
    pytest.param(_bad_spec, id="spec-error"),
    pytest.param(_fake(Plugin_Activate=lambda b: (500, {"Err": "no"})), id="activate-error"),
    pytest.param(_fake(Plugin_Activate=lambda b: (200, {})), id="not-a-volume-driver"),
    pytest.param(
        _fake(Plugin_Activate=lambda b: Hang(), client={"mount_timeout": 0.3}),
        id="activate-hangs-past-the-deadline",
    ),
    pytest.param(_fake(VolumeDriver_Get=lambda b: Close()), id="get-unreachable"),
    pytest.param(_fake(client={"explicit_create": True}), id="explicit-create-and-absent"),
    pytest.param(_fake(VolumeDriver_Create=lambda b: (500, {"Err": "no"})), id="create-error"),
    pytest.param(_fake(VolumeDriver_Create=lambda b: Close()), id="create-connection-lost"),
    pytest.param(
        _fake(VolumeDriver_Create=lambda b: Hang(), client={"mount_timeout": 0.3}),
        id="create-hangs-past-the-deadline",
    ),
    pytest.param(_mount_answers((500, {"Err": "no"})), id="mount-error"),
    pytest.param(_mount_answers((200, {"Err": "no"})), id="mount-err-in-a-200"),
]

_MAYBE_MOUNTED: list[Any] = [
    pytest.param(_mount_answers(Hang(), mount_timeout=0.3), id="mount-hangs-past-the-deadline"),
    pytest.param(_mount_answers(Close()), id="mount-connection-lost"),
    pytest.param(_mount_answers((200, "<html>")), id="mount-invalid-answer"),
    pytest.param(_mount_answers(Endless()), id="mount-answer-too-large"),
    pytest.param(_mount_answers((200, {"Mountpoint": "/nonexistent/x"})), id="bad-mount-point"),
]


@pytest.mark.parametrize("setup", _REFUSED)
def test_a_mount_the_plugin_cannot_have_done_is_refused(env: Env, setup: Setup) -> None:
    driver, client = setup(env)
    error = failure(client.mount(driver, "vol", {}))
    assert isinstance(error, MountRefusedError), repr(error)


@pytest.mark.parametrize("setup", _MAYBE_MOUNTED)
def test_a_mount_the_plugin_may_have_done_is_no_refusal(env: Env, setup: Setup) -> None:
    driver, client = setup(env)
    error = failure(client.mount(driver, "vol", {}))
    assert isinstance(error, DriverError)
    assert not isinstance(error, MountRefusedError), repr(error)


# -- answers are bounded ---------------------------------------------------------------------


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "declared-length"])
def test_an_endless_answer_is_cut_at_the_limit_and_the_connection_closed(
    env: Env, declared: bool
) -> None:
    plugin = env.plugin(VolumeDriver_Get=lambda body: Endless(declared=declared))
    client = env.client()
    submit(client, client.api.activate("fake")).get(WAIT)
    tracemalloc.start()
    try:
        error = failure(submit(client, client.api.get("fake", "vol")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(error) == (
        f"Docker volume plugin 'fake' at unix://{env.sockets}/fake.sock sent an answer to "
        f"VolumeDriver.Get larger than {MAX_BODY} bytes, the limit; the connection was closed"
    )
    assert peak < MEMORY_BOUND, f"peak {peak} bytes"
    assert plugin.hung_up.wait(WAIT), "the client did not close the connection"
    assert plugin.count("VolumeDriver.Get") == 1  # an oversized answer is not asked again


def test_the_answer_limit_is_a_keyword(env: Env) -> None:
    volume = b'{"Volume": {"Name": "v"}}'
    answers = [volume + b" " * (100 - len(volume)), volume + b" " * (101 - len(volume))]
    env.plugin(VolumeDriver_Get=lambda body: (200, answers.pop(0)))
    client = env.client(max_body=100)
    assert submit(client, client.api.get("fake", "v")).get(WAIT) == {"Name": "v"}
    error = failure(submit(client, client.api.get("fake", "v")))
    assert "larger than 100 bytes, the limit" in str(error)


# -- deadlines -------------------------------------------------------------------------------


def test_a_hung_activate_fails_the_mount_at_its_timeout(env: Env) -> None:
    plugin = env.plugin(Plugin_Activate=lambda body: Hang())
    client = env.client(mount_timeout=2.0, query_timeout=60.0)
    started = time.monotonic()
    error = failure(client.mount("fake", "vol", {}), 2.0 + DEADLINE_SLACK)
    elapsed = time.monotonic() - started
    assert str(error) == (
        "Docker volume plugin 'fake' did not mount volume 'vol' within 2 s: "
        "still finding and activating the plugin"
    )
    assert isinstance(error, MountRefusedError)
    assert 2.0 <= elapsed < 2.0 + DEADLINE_SLACK
    assert plugin.methods() == ["Plugin.Activate"]


def test_a_hung_activate_fails_the_unmount_at_its_timeout(env: Env) -> None:
    env.plugin(Plugin_Activate=lambda body: Hang())
    error = failure(env.client(unmount_timeout=0.3).unmount("fake", "vol"))
    assert str(error) == (
        "Docker volume plugin 'fake' did not unmount volume 'vol' within 0.3 s: "
        "still finding and activating the plugin"
    )
    assert not isinstance(error, MountRefusedError)


def test_steps_that_each_fit_the_timeout_do_not_add_up_to_more(env: Env) -> None:
    # Each call takes 0.4 s, within every per-call timeout; the four a mount makes would
    # take 1.6 s, past the 0.5 s the whole mount has.
    async def slow(reply: Reply) -> Reply:
        await asyncio.sleep(0.4)  # the plugin's slowness: the scenario, not a wait
        return reply

    handlers = {
        "Plugin_Activate": lambda b: slow((200, {"Implements": ["VolumeDriver"]})),
        "VolumeDriver_Get": lambda b: slow((200, {"Err": "no such volume"})),
        "VolumeDriver_Create": lambda b: slow((200, {})),
        "VolumeDriver_Mount": lambda b: slow((200, {"Mountpoint": "/"})),
    }
    plugin = env.plugin(**handlers)
    error = failure(env.client(mount_timeout=0.5).mount("fake", "vol", {}))
    assert str(error).startswith("Docker volume plugin 'fake' did not mount volume 'vol' within")
    assert isinstance(error, MountRefusedError)  # it never got as far as Mount
    assert "VolumeDriver.Mount" not in plugin.methods()


def test_retries_stop_before_the_deadline(env: Env) -> None:
    plugin = env.plugin()
    client = env.client(backoff=Backoff(base_delay=0.5, budget=30.0), unmount_timeout=1.5)
    client.mount("fake", "vol", {}).get(WAIT)
    plugin.stop()  # nobody listens any more: every attempt is refused at connect
    error = failure(client.unmount("fake", "vol"))
    # Attempts at 0 and 0.5 s; the next would start at 1.5 s, at the deadline: given up
    # with the transport's own words rather than cut short by the deadline.
    assert isinstance(error, PluginUnreachableError)
    assert "is not answering VolumeDriver.Unmount" in str(error)
    assert "(gave up after 2 attempt(s)" in str(error)


# -- file-system work off the loop, on bounded threads ---------------------------------------


def test_a_fifo_spec_file_is_refused_at_once_and_other_plugins_keep_working(env: Env) -> None:
    os.mkfifo(env.etc / "stuck.spec")  # reading it would block until a writer comes
    env.plugin("healthy")
    client = env.client(backoff=env.time.backoff(budget=30.0))
    error = failure(client.mount("stuck", "vol", {}))
    assert str(error) == (
        f"Docker volume plugin 'stuck': {env.etc}/stuck.spec: cannot read it: not a regular file"
    )
    assert isinstance(error, MountRefusedError)
    assert env.time.sleeps == []
    assert client.mount("healthy", "vol", {}).get(WAIT) == str(env.mounts / "vol")


class _HungFileSystem:
    """A file system call that hangs (a dead NFS server) until ``release``, for paths or
    plugin names holding ``marker``; counts the calls that reached it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.entered = threading.Semaphore(0)
        self._released = threading.Event()

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(what: Any, *args: Any, **kwargs: Any) -> Any:
            if self.marker in str(what):
                self.entered.release()
                self._released.wait()
            return real(what, *args, **kwargs)

        return call

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> Iterator[_HungFileSystem]:
    """Discovery and the mount-point check hang for anything named ``hung...``."""
    file_system = _HungFileSystem("hung")
    monkeypatch.setattr(protocol, "find_plugin", file_system.wrap(discovery.find_plugin))
    monkeypatch.setattr(plugin_client, "path_exists", file_system.wrap(plugin_client.path_exists))
    yield file_system
    file_system.release()


def test_a_hung_spec_directory_delays_only_the_calls_that_need_it(
    env: Env, hung: _HungFileSystem
) -> None:
    env.plugin("healthy")
    client = env.client(mount_timeout=0.5)
    stuck = [client.mount("hung", f"v{i}", {}) for i in range(20)]
    assert hung.entered.acquire(timeout=WAIT)
    # The loop is free: another plugin mounts while discovery of "hung" is stuck.
    assert client.mount("healthy", "vol", {}).get(WAIT) == str(env.mounts / "vol")
    for future in stuck:
        error = failure(future, 0.5 + DEADLINE_SLACK)
        assert str(error).endswith("within 0.5 s: still finding and activating the plugin")
        assert isinstance(error, MountRefusedError)
    # Twenty calls, one discovery: the activation is shared, so is its thread.
    assert not hung.entered.acquire(timeout=0)
    assert client.api.blocking.busy() == 1


def test_hung_lookups_never_hold_more_than_the_pools_threads(
    env: Env, hung: _HungFileSystem
) -> None:
    client = env.client(mount_timeout=0.5)
    before = _blocking_threads_busy()
    stuck = [client.mount(f"hung{i}", "vol", {}) for i in range(3 * FS_WORKERS)]
    for _ in range(FS_WORKERS):
        assert hung.entered.acquire(timeout=WAIT)
    for future in stuck:
        assert isinstance(failure(future, 0.5 + DEADLINE_SLACK), MountRefusedError)
    assert client.api.blocking.busy() == FS_WORKERS
    assert _blocking_threads_busy() <= before + FS_WORKERS
    assert not hung.entered.acquire(timeout=0)  # the others wait for a thread, not in one


def test_a_hung_mount_point_fails_the_mount_at_its_deadline_as_maybe_mounted(
    env: Env, hung: _HungFileSystem
) -> None:
    env.plugin()  # mounts volume NAME at <mounts>/NAME: the check of .../hung hangs
    client = env.client(mount_timeout=0.5)
    stuck = [client.mount("fake", "hung", {}) for _ in range(5)]
    assert hung.entered.acquire(timeout=WAIT)
    assert client.mount("fake", "other", {}).get(WAIT) == str(env.mounts / "other")
    for future in stuck:
        error = failure(future, 0.5 + DEADLINE_SLACK)
        assert str(error) == (
            "Docker volume plugin 'fake' did not mount volume 'hung' within 0.5 s: "
            f"still checking mount point {str(env.mounts / 'hung')!r}"
        )
        assert not isinstance(error, MountRefusedError)  # Mount succeeded: it is mounted
    assert not hung.entered.acquire(timeout=0)  # one check of that path, shared
