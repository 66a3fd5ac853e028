"""The launcher's own runtime commands, against a fake runtime (a shell script) that
hangs or talks too much, as a wedged or broken runtime binary would; and what the launcher
loads at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from isolator.launch import oci_commands, oci_supervisor
from isolator.launch.oci_commands import RuntimeCommandError, delete_container, list_state
from isolator.launch.oci_supervisor import write_bundle
from tests.support.waits import WAIT


def _runtime(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-runtime"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _state(tmp_path: Path) -> str:
    state = tmp_path / "state"
    (state / "someone").mkdir(parents=True)  # not empty: list_state asks the runtime
    return str(state)


def test_a_runtime_command_past_its_time_is_killed_reaped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    runtime = _runtime(tmp_path, f"echo $$ > {pid_file}; exec sleep 60")
    monkeypatch.setattr(oci_commands, "RUNTIME_TIMEOUT", 0.5)
    expected = r"fake-runtime delete --force isolator-x' did not finish within 0.5 seconds; it was"
    with pytest.raises(RuntimeCommandError, match=expected):
        delete_container(runtime, str(tmp_path / "state"), "isolator-x")
    with pytest.raises(ProcessLookupError):  # killed and reaped: no zombie either
        os.kill(int(pid_file.read_text()), 0)


def test_a_failed_list_reports_the_runtimes_message_bounded(tmp_path: Path) -> None:
    noisy = "echo 'state is corrupt' >&2; head -c 1000000 /dev/zero >&2; exit 1"
    runtime = _runtime(tmp_path, noisy)
    with pytest.raises(RuntimeCommandError) as raised:
        list_state(runtime, _state(tmp_path))
    message = str(raised.value)
    assert message.startswith(f"Failed to list the containers of '{runtime}': state is corrupt")
    assert len(message) < 70_000  # the runtime's stderr is read up to 64 KiB, not 1 MB


def test_a_list_too_large_is_refused_and_the_runtime_still_reaped(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, "head -c 17000000 /dev/zero")
    with pytest.raises(RuntimeCommandError, match=r"The container list of .* is too large"):
        list_state(runtime, _state(tmp_path))


def test_list_reads_the_runtimes_json(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, """echo '[{"id": "isolator-a", "status": "stopped"}, 7]'""")
    assert list_state(runtime, _state(tmp_path)) == [{"id": "isolator-a", "status": "stopped"}]


def test_the_launcher_loads_only_c_modules_at_start() -> None:
    directory = os.path.dirname(oci_supervisor.__file__)
    code = (
        f"import sys; before = set(sys.modules); sys.path.append({directory!r}); "
        "import oci_supervisor; print(' '.join(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=WAIT, check=True)  # fmt: skip
    loaded = set(done.stdout.split())
    assert "oci_supervisor" in loaded
    heavy = {"json", "subprocess", "signal", "typing", "enum", "re", "ctypes", "traceback"}
    assert not loaded & heavy, f"loaded at start: {sorted(loaded & heavy)}"


def test_the_runtime_does_not_inherit_pythons_ignored_signals(tmp_path: Path) -> None:
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec,
    # into the runtime and the task it starts, unless reset, as subprocess does.
    status = tmp_path / "status"
    runtime = _runtime(tmp_path, f"grep SigIgn /proc/self/status > {status}")
    assert delete_container(runtime, str(tmp_path / "state"), "isolator-x")
    ignored = int(status.read_text().split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), f"{signum!r} is ignored in the runtime"


def test_a_leftover_bundle_is_removed_only_when_the_launcher_wrote_it(tmp_path: Path) -> None:
    ours = write_bundle(b"{}", parent=str(tmp_path))
    (Path(ours) / "init.pid").write_text("1")
    oci_supervisor._remove_leftover_bundle(ours)
    assert not os.path.lexists(ours)

    crowded = write_bundle(b"{}", parent=str(tmp_path))
    (Path(crowded) / "someone-elses").write_text("x")
    oci_supervisor._remove_leftover_bundle(crowded)
    assert (Path(crowded) / "someone-elses").exists()  # not emptied: the directory stays

    target = write_bundle(b"{}", parent=str(tmp_path))
    link = tmp_path / "isolator-bundle-link"
    link.symlink_to(target)
    open_dir = tmp_path / "isolator-bundle-open"
    open_dir.mkdir(mode=0o755)
    (open_dir / "config.json").write_text("{}")
    other_name = tmp_path / "my-bundle"
    other_name.mkdir(mode=0o700)
    (other_name / "config.json").write_text("{}")
    for kept in (link, open_dir, other_name):
        oci_supervisor._remove_leftover_bundle(str(kept))
        assert (kept / "config.json").exists(), kept  # a link, another mode, another name
