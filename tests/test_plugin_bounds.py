"""DockerPluginClient against plugins that misbehave: what is sent again and what never is,
and the bounds on what a plugin can cost the agent (answer size, threads)."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import WAIT
from plugin_fakes import (
    Close,
    Endless,
    Env,
    FakePlugin,
    Last,
    Reply,
    failure,
    fake_plugin_loop,
    plugin_env,
    submit,
)

from isolator.drivers.transport import MAX_BODY

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


# -- file-system work off the loop, on bounded threads ---------------------------------------


def test_a_fifo_spec_file_is_refused_at_once_and_other_plugins_keep_working(env: Env) -> None:
    os.mkfifo(env.etc / "stuck.spec")  # reading it would block until a writer comes
    env.plugin("healthy")
    client = env.client(backoff=env.time.backoff(budget=30.0))
    error = failure(client.mount("stuck", "vol", {}))
    assert str(error) == (
        f"Docker volume plugin 'stuck': {env.etc}/stuck.spec: cannot read it: not a regular file"
    )
    assert env.time.sleeps == []
    assert client.mount("healthy", "vol", {}).get(WAIT) == str(env.mounts / "vol")
