"""The shim: ``python -m isolator.contrib.ray.shim RUN_DIR -- COMMAND...``.

Started by an agent (``processes.spawn``), it forks and its first process leaves at once, so
the second is nobody's child but init's (or a subreaper's) and outlives the agent whatever
kills it. The second process then:

1. starts COMMAND in a process group of its own, with its output in ``RUN_DIR/output`` and
   ``PR_SET_PDEATHSIG`` set, so the command never runs on unsupervised if the shim is killed;
2. writes both ``ProcessId``s to ``RUN_DIR/pids`` (durably) and then to its stdout, the pipe
   the agent reads (a restarted agent finds the first file, the running one the second);
3. waits for COMMAND and writes its exit status to ``RUN_DIR/status``, then exits.

It imports neither Ray nor the actor runtime: it is started once per task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from isolator.common.fs import write_atomically
from isolator.common.linux import PR_SET_PDEATHSIG, libc
from isolator.contrib.ray.processes import (
    OUTPUT_FILE,
    PIDS_FILE,
    STATUS_FILE,
    ProcessId,
    Supervised,
)

__all__ = ["main"]

_USAGE = "usage: python -m isolator.contrib.ray.shim RUN_DIR -- COMMAND [ARG]..."

_LIBC = libc()  # loaded before any fork, not in the child


def _die_with_the_shim() -> None:
    """In the child before exec: SIGKILL when the shim dies."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _report(answer: Mapping[str, object]) -> None:
    """Tell the agent (on stdout, its pipe) and let go of the pipe, so it reads to the end."""
    os.write(1, json.dumps(answer).encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _supervise(run_dir: Path, command: list[str]) -> int:
    try:
        with open(run_dir / OUTPUT_FILE, "wb") as output:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group: the agent kills it whole, never the shim
                preexec_fn=_die_with_the_shim,  # noqa: PLW1509 -- this process has one thread
            )
    except OSError as error:
        _report({"error": f"{error.strerror or error}"})
        return 1
    shim, started = ProcessId.of(os.getpid()), ProcessId.of(child.pid)
    assert shim is not None
    assert started is not None  # our child: its pid is ours until we reap it
    supervised = Supervised(shim, started).to_json()
    write_atomically(run_dir / PIDS_FILE, json.dumps(supervised).encode())
    _report(supervised)
    exit_code = child.wait()
    write_atomically(run_dir / STATUS_FILE, json.dumps({"exit_code": exit_code}).encode())
    return 0


def main(args: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    if len(argv) < 3 or argv[1] != "--":
        print(_USAGE, file=sys.stderr)
        return 2
    if os.fork() != 0:
        os._exit(0)  # the agent reaps this one at once; the child lives on without it
    return _supervise(Path(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
