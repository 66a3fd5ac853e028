"""DockerPluginClient against plugins that misbehave: what is sent again and what never is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import WAIT
from plugin_fakes import (
    Close,
    Env,
    FakePlugin,
    Last,
    Reply,
    failure,
    fake_plugin_loop,
    plugin_env,
    submit,
)


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
