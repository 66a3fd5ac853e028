"""What an actor, an ask and a future cost: threads and memory, latency, throughput.

Three figures, each the median of ``--repeats`` runs in one process:

- ``sequences``: OS threads and RSS with ``--sequences`` live ``Sequence``s (each has its
  own actor), then the same after stopping them all;
- ``ask``: the round trip of a proxy call from a plain thread (``proxy.echo(x).get()``),
  and the cost of one ask when ``--asks`` of them are in flight at once (pipelined);
- ``future``: creating a ``Promise``, completing it and reading it back.

Run: ``.venv/bin/python -m benchmarks.actors_runtime`` (not a test: it only reports).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from collections.abc import Callable

from actors import Actor, Promise, Sequence, collect
from benchmarks.harness import rss_kib

WAIT = 120.0


class Echo(Actor):
    def echo(self, value: object) -> object:
        return value


def sequences(count: int) -> dict[str, float]:
    gc.collect()
    threads_before, rss_before = threading.active_count(), rss_kib()
    live = [Sequence() for _ in range(count)]
    # Every sequence has run an item: its actor has started and gone idle again.
    collect([seq.add(lambda: None) for seq in live]).get(timeout=WAIT)
    gc.collect()
    threads_live, rss_live = threading.active_count(), rss_kib()
    started = time.perf_counter()
    collect([seq.stop() for seq in live]).get(timeout=WAIT)
    stop_seconds = time.perf_counter() - started
    del live
    gc.collect()
    return {
        "threads before": threads_before,
        "threads live": threads_live,
        "threads after stop": threading.active_count(),
        "RSS KiB per live Sequence": (rss_live - rss_before) / count,
        "stop all, s": stop_seconds,
    }


def ask_round_trip(count: int) -> float:
    """Median seconds of one proxy call and its answer, asked from a plain thread."""
    ref = Echo.start()
    proxy = ref.proxy()
    samples = []
    try:
        for i in range(count):
            started = time.perf_counter()
            proxy.echo(i).get(timeout=WAIT)
            samples.append(time.perf_counter() - started)
    finally:
        ref.stop()
    return statistics.median(samples)


def pipelined_asks(count: int) -> float:
    """Seconds per ask with ``count`` asks in flight at once."""
    ref = Echo.start()
    proxy = ref.proxy()
    try:
        started = time.perf_counter()
        collect([proxy.echo(i) for i in range(count)]).get(timeout=WAIT)
        return (time.perf_counter() - started) / count
    finally:
        ref.stop()


def future_cost(count: int) -> float:
    """Seconds per Promise created, set and read back."""
    started = time.perf_counter()
    for i in range(count):
        promise: Promise[int] = Promise()
        promise.set(i)
        promise.future.get(timeout=0)
    return (time.perf_counter() - started) / count


def median_of(repeats: int, run: Callable[[], float]) -> str:
    values = [run() for _ in range(repeats)]
    return (
        f"{statistics.median(values) * 1e6:.2f} us [{min(values) * 1e6:.2f}, "
        f"{max(values) * 1e6:.2f}]"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--asks", type=int, default=2_000)
    parser.add_argument("--futures", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for name, value in sequences(args.sequences).items():
        print(f"{args.sequences} sequences: {name}: {value:.2f}")
    print("ask round trip, median:", median_of(args.repeats, lambda: ask_round_trip(args.asks)))
    print("ask pipelined, per ask:", median_of(args.repeats, lambda: pipelined_asks(args.asks)))
    print("future create+set+get:", median_of(args.repeats, lambda: future_cost(args.futures)))


if __name__ == "__main__":
    main()
