"""P5 plugin (``--only p5-plugin``): prepare+cleanup through the Docker plugin protocol, the
figure users see (issue 20; ``p5`` is the CSI isolator's figure).

The reference plugin (``isolator-volume-plugin``) runs as its own process on a unix socket,
its root on tmpfs; the isolator talks to it with its ``DockerPluginClient`` and checkpoints
on tmpfs. The baseline is ``plugin_peer.BareClient``: the same HTTP calls (Get, Create once,
Mount, Unmount) with sync httpx over one kept-alive connection, and the same checkpoint
I/O, in a plain loop. Each volume is created in a warm-up, so a round trip is Get, Mount,
Unmount and the checkpoint written and removed.

One repeat measures, with a warm-up of 10 round trips each first:

- ``latency``: R = 200 round trips one after another from one thread, bare and isolator
  interleaved; the figure is ``median isolator / median bare``. Target: <= 1.3;
- ``concurrent``: 8 threads, each making K = 50 round trips on its own volume, bare (a
  client per thread) and then isolator; the figure is the throughput ratio ``bare seconds
  / isolator seconds``. Target: >= 0.8;
- for the transport: one Get of an existing volume, median of R, by sync httpx and by the
  isolator's client (``client.loop.submit(client.api.get(...))`` from a plain thread).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from benchmarks.harness import WAIT, Check, Options, scratch_dir, timed
from benchmarks.plugin_peer import MOUNT_ID, BareClient, plugin_serving
from benchmarks.workload import DRIVER, isolator_on
from isolator import DockerVolumeIsolator
from isolator.docker.state import VolumeKey
from isolator.drivers.plugin_client import DockerPluginClient
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerConfig

__all__ = ["checks", "measure"]

CALLERS = 8


def checks(options: Options) -> list[Check]:
    return [
        Check(
            "latency",
            "P5 plugin: one prepare+cleanup through the reference plugin vs bare sync httpx loop",
            1.3,
            detail="{bare_us:.0f} us bare, {isolator_us:.0f} us isolator; one Get "
            "{get_bare_us:.0f} us sync httpx, {get_client_us:.0f} us isolator's client",
        ),
        Check(
            "concurrent",
            f"P5 plugin: {CALLERS} concurrent callers, throughput vs bare",
            0.8,
            higher_is_better=True,
            detail="{concurrent_bare_s:.2f} s bare, {concurrent_isolator_s:.2f} s isolator",
        ),
    ]


def _config(name: str) -> ContainerConfig:
    return container_config("/tmp", [docker_volume(DRIVER, name, "/tmp")])


def _isolator_round(isolator: DockerVolumeIsolator, value: str, config: ContainerConfig) -> None:
    cid = container_id(value)
    isolator.prepare(cid, config).get(WAIT)
    isolator.cleanup(cid).get(WAIT)


def _median_us(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def _in_threads(work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # reported below: a failed figure, not a hang
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    if errors:
        raise errors[0]


def measure(options: Options) -> dict[str, float]:
    rounds = options.size(200, smallest=20)
    per_caller = options.size(50, smallest=5)
    result: dict[str, float] = {}
    with (
        scratch_dir(options.tmpfs_dir, expect_tmpfs=True) as root,
        plugin_serving(root, DRIVER) as sockets,
    ):
        bare_root, isolator_root = f"{root}/bare", f"{root}/isolator"
        client = DockerPluginClient(socket_dir=sockets, spec_dirs=[], mount_id=MOUNT_ID)
        bare = BareClient(sockets, DRIVER)
        try:
            with isolator_on(isolator_root, client) as isolator:
                config = _config("i0")
                bare_samples, isolator_samples = [], []
                for index in range(rounds + 10):
                    started = time.perf_counter()
                    bare.round_trip(bare_root, f"b{index}", VolumeKey(DRIVER, "b0"))
                    middle = time.perf_counter()
                    _isolator_round(isolator, f"i{index}", config)
                    ended = time.perf_counter()
                    if index >= 10:
                        bare_samples.append(middle - started)
                        isolator_samples.append(ended - middle)
                bare_us = statistics.median(bare_samples) * 1e6
                isolator_us = statistics.median(isolator_samples) * 1e6
                result.update(
                    latency=isolator_us / bare_us, bare_us=bare_us, isolator_us=isolator_us
                )
                result["get_bare_us"] = _median_us(lambda: bare.get("b0"), rounds)
                api = client.api
                result["get_client_us"] = _median_us(
                    lambda: client.loop.submit(api.get(DRIVER, "i0")).get(WAIT), rounds
                )
                result.update(_concurrent(isolator, sockets, bare_root, per_caller))
        finally:
            bare.close()
            client.close()
    return result


def _concurrent(
    isolator: DockerVolumeIsolator, sockets: str, bare_root: str, per_caller: int
) -> dict[str, float]:
    bares = [BareClient(sockets, DRIVER) for _ in range(CALLERS)]
    configs = [_config(f"ci{t}") for t in range(CALLERS)]
    try:
        for t in range(CALLERS):  # warm-up: every volume created, every connection open
            for index in range(10):
                bares[t].round_trip(bare_root, f"wb{t}-{index}", VolumeKey(DRIVER, f"cb{t}"))
                _isolator_round(isolator, f"wi{t}-{index}", configs[t])

        def bare_work(t: int) -> None:
            volume = VolumeKey(DRIVER, f"cb{t}")
            for index in range(per_caller):
                bares[t].round_trip(bare_root, f"cb{t}-{index}", volume)

        def isolator_work(t: int) -> None:
            for index in range(per_caller):
                _isolator_round(isolator, f"ci{t}-{index}", configs[t])

        bare_s = timed(lambda: _in_threads(bare_work))
        isolator_s = timed(lambda: _in_threads(isolator_work))
    finally:
        for bare in bares:
            bare.close()
    return {
        "concurrent": bare_s / isolator_s,
        "concurrent_bare_s": bare_s,
        "concurrent_isolator_s": isolator_s,
    }
