"""A read-only volume is read-only all the way down: a submount under it refuses writes too.

The submount is made inside a mount namespace of the test's own (``unshare -m``, private
``/``), then the host launcher runs there; the host's mount table is checked unchanged.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.launcher import launcher_command
from isolator.protos import ContainerLaunchInfo
from tests.support.waits import WAIT

pytestmark = [
    pytest.mark.root,
    pytest.mark.usefixtures("host_unchanged"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root"),
]

# Make a tmpfs under the volume's source, then become the launcher.
WRAPPER = 'mount -t tmpfs tmpfs "$0/sub" && touch "$0/sub/on-tmpfs" && exec "$@"'


def test_a_submount_under_a_read_only_volume_refuses_writes(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    (source / "sub").mkdir(parents=True)
    target.mkdir()
    info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    info.mounts.add(source=str(source), target=str(target), flags=MS_BIND | MS_REC | MS_RDONLY)
    script = (
        f"test -e {target}/sub/on-tmpfs || exit 3; "
        f"touch {target}/top 2>/dev/null && exit 4; "
        f"touch {target}/sub/inner 2>/dev/null && exit 5; echo read-only"
    )
    command = launcher_command(info, ["sh", "-c", script])
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", WRAPPER, str(source), *command],
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"read-only\n"), done.stderr
    assert list((source / "sub").iterdir()) == []  # the tmpfs went with its namespace
