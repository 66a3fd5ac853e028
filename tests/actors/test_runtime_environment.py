"""The runtime reads ``ACTORS_*`` on first use, never at import."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.waits import WAIT


def _run(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=6 * WAIT,
        check=False,
    )


def test_importing_with_a_bad_value_changes_nothing_until_first_use() -> None:
    done = _run(
        "import actors, actors.runtime, actors.actor, actors.sequence; print('imported'); "
        "actors.statistics()",
        ACTORS_WORKERS="many",
    )
    assert done.stdout.split() == ["imported"], done.stderr
    assert done.returncode != 0
    assert "ACTORS_WORKERS must be a whole number, not 'many'" in done.stderr


def test_the_environment_is_read_at_first_use_not_at_import() -> None:
    code = (
        "import os, actors; "
        "os.environ.update(ACTORS_WORKERS='5', ACTORS_MAX_WORKERS='9', "
        "ACTORS_BLOCKING_WORKERS='4'); "
        "s = actors.statistics(); "
        "print(s.workers.workers, s.workers.max_workers, s.blocking.max_workers)"
    )
    done = _run(code, ACTORS_WORKERS="3", ACTORS_MAX_WORKERS="7", ACTORS_BLOCKING_WORKERS="5")
    assert done.stdout.split() == ["5", "9", "4"], done.stderr


def test_the_first_actor_started_reads_it_too() -> None:
    code = (
        "import os, actors; os.environ['ACTORS_WORKERS'] = '6'; "
        "s = actors.Sequence(); s.add(lambda: None).get(10); s.stop().get(10); "
        "print(actors.statistics().workers.workers)"
    )
    done = _run(code, ACTORS_WORKERS="3")
    assert done.stdout.split() == ["6"], done.stderr


def test_configure_before_first_use_keeps_the_environments_other_limits() -> None:
    code = (
        "import actors; actors.configure(workers=4); s = actors.statistics(); "
        "print(s.workers.workers, s.workers.max_workers, s.blocking.max_workers)"
    )
    done = _run(code, ACTORS_MAX_WORKERS="11", ACTORS_BLOCKING_WORKERS="3")
    assert done.stdout.split() == ["4", "11", "3"], done.stderr
