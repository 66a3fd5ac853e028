"""The reference plugin as a real process, started by its console script's module from this
checkout: for tests that talk to it as the isolator, dvdcli or ``isolator-ctl`` would."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from tests.support.repo import REPO
from tests.support.waits import WAIT

__all__ = ["console_script", "serving", "wait_until_serving"]


def wait_until_serving(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    """Read the plugin's log until it says it serves: it logs that once its socket listens."""
    assert proc.stderr is not None
    seen = b""
    while b"serving on" not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the plugin did not start in time: {seen!r}"
        readable, _, _ = select.select([proc.stderr], [], [], remaining)
        if readable:
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"the plugin exited before serving: {seen!r}"
            seen += chunk
    return seen


def console_script(*args: str, umask: int = -1) -> subprocess.Popen[bytes]:
    """``python -m isolator.plugin ARGS`` from this checkout, stdout and stderr piped;
    ``umask``, if given, is the child's."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, "-m", "isolator.plugin", *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        umask=umask,
    )


@contextlib.contextmanager
def serving(*args: str, umask: int = -1) -> Iterator[tuple[subprocess.Popen[bytes], bytearray]]:
    """The console script, once it serves; the block gets it and its stderr so far, and
    stops it with SIGTERM unless the block did (the rest of stderr is appended)."""
    proc = console_script(*args, umask=umask)
    try:
        stderr = bytearray(wait_until_serving(proc, time.monotonic() + 2 * WAIT))
        yield proc, stderr
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stderr += proc.communicate(timeout=2 * WAIT)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
