"""The examples run to their end: the main job on a small workload, and the two tours."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.repo import REPO

EXAMPLES = REPO / "examples"
TIMEOUT = 120


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def load_example(name: str) -> ModuleType:
    """Import an example script as a module, as ``python examples/<name>`` would run it."""
    if str(EXAMPLES) not in sys.path:  # where the script finds its helper modules
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(Path(name).stem, EXAMPLES / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_scheduler_main_job_on_a_small_workload() -> None:
    result = run_example("scheduler.py", "--volumes", "2", "--writers", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "phase 5: a new isolator recovers" in out
    assert "all checks held: every plugin count is 0 (as many Unmounts as Mounts)" in out
    assert "tasks: 12 (6 finished, 2 failed, 4 killed)" in out
    # Balanced: each volume is mounted once per mounted period, not once per task.
    for volume in ("vol-0", "vol-1"):
        found = re.search(rf"{volume}: (\d+) mounts, (\d+) unmounts", out)
        assert found is not None, out
        assert found.group(1) == found.group(2), found.group(0)
    if os.geteuid() == 0:
        # Data written by one task was read by another through the shared volume.
        assert "written by writer-0\\nwritten by writer-2" in out
        assert "Read-only file system" in out
        # The CSI phase: a shared CSI volume, a crash, a recovery.
        assert "phase 6: tasks on CSI volumes" in out
        assert "CSI tasks: 3 (1 finished, 2 killed)" in out
        assert "NodePublishVolume 3" in out
    if os.geteuid() == 0 and shutil.which("runc") and os.path.exists("/bin/busybox"):
        # Three tasks ran in a busybox rootfs under runc, sharing vol-0 with host tasks; the
        # one that survived the agent crash was found in the runtime's state.
        assert "rootfs tasks: 3 under runc in a busybox rootfs" in out
        assert "written by rootfs-writer\\nwritten by writer-0" in out
        assert "sh: can't create data/rootfs-read-only.txt: Read-only file system" in out
        assert "known from the runtime's state: ['rootfs-survivor']" in out


def test_scheduler_serves_metrics_and_prints_the_figures() -> None:
    result = run_example(
        "scheduler.py", "--volumes", "2", "--writers", "1", "--quiet", "--metrics-port", "0"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "isolator operations (the observer's figures):" in out
    assert "    prepare: 12 ok, 0 failed, mean " in out
    assert "    recover: 1 ok, 0 failed, mean " in out
    assert re.search(r"metrics served at http://127\.0\.0\.1:\d+/metrics: 12 prepares counted", out)


def test_scheduler_says_so_when_it_cannot_mount(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process with a non-root euid: the launched tasks get no launch info, so the
    # rest of the job (isolator, plugin, recovery) still runs and is checked.
    monkeypatch.syspath_prepend(str(EXAMPLES))  # its helper modules sit beside it
    scheduler = load_example("scheduler.py")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert scheduler.main(["--volumes", "2", "--writers", "1"]) == 0
    out = capsys.readouterr().out
    assert "not root: tasks run without mounts" in out
    assert "all checks held" in out


def test_isolator_demo() -> None:
    result = run_example("isolator_demo.py")
    assert result.returncode == 0, result.stderr
    assert "5. recovered: worker was an unknown orphan, cleaned up: ['ok']" in result.stdout
    assert "checkpoints left: []" in result.stdout


def test_actors_demo() -> None:
    result = run_example("actors_demo.py")
    assert result.returncode == 0, result.stderr
    assert "sequence ran in order: [0, 1, 2, 3, 4]" in result.stdout


def first_python_block(document: str) -> str:
    """The first ``python`` code block in ``document`` (a path under the repository)."""
    text = (REPO / document).read_text(encoding="utf-8")
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_embedding_guide_shows_embed_py_as_it_is() -> None:
    shown = first_python_block("docs/embedding.md")
    assert shown == (EXAMPLES / "embed.py").read_text(encoding="utf-8")


def test_the_readme_example_runs_as_shown(tmp_path: Path) -> None:
    script = tmp_path / "readme_example.py"
    script.write_text(first_python_block("README.md"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one Mount, one Unmount" in result.stdout, result.stdout


def test_embed_runs_its_whole_story() -> None:
    result = run_example("embed.py")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    if os.geteuid() == 0:
        # The reader sees what the writer wrote: one volume, shared, and still mounted.
        assert lines[:2] == ["writer: ['writer']", "reader: ['writer', 'reader']"]
    assert lines[-1] == "checkpoints left: []"
    assert "Unmounting the volume with driver 'local' and name 'shared' for container reader" in (
        result.stderr
    )


def test_embed_says_so_when_it_cannot_mount(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    embed = load_example("embed.py")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    work = Path(tempfile.mkdtemp(dir="/tmp", prefix="embed-"))  # short socket path
    try:
        embed.main(work)
    finally:
        shutil.rmtree(work)
    out = capsys.readouterr().out
    assert "writer: prepared; not root, so not launched" in out
    assert out.splitlines()[-1] == "checkpoints left: []"
