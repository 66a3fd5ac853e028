"""Tasks in a busybox rootfs under the real runtimes: volumes, sandbox, statuses, env, user.

Each test has a runtime state directory of its own and must leave it empty; the host's
mount table must be unchanged and no process left (``host_unchanged``). A test that needs a
mount of its own on the host side (a submount) makes it inside ``unshare -m``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from isolator import Flags
from isolator.common.linux import CLONE_NEWNS, MS_BIND, MS_RDONLY, MS_REC
from isolator.launch.launch_info import VolumeMount, build_launch_info, mount_target
from isolator.launch.oci_launch import rootfs_options
from isolator.launcher import launch, launcher_command, run
from isolator.messages import container_config
from isolator.protos import ContainerLaunchInfo
from tests.support.oci import EXTRA_GID, RUNTIMES, TASK_GID, TASK_UID, runtime_containers
from tests.support.waits import WAIT

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("host_unchanged")]


def _volume_info(
    rootfs: Path, box: Path, volumes: list[tuple[Path, str, bool]]
) -> ContainerLaunchInfo:
    """What ``prepare`` returns for these (source, container_path, read_only) volumes."""
    flags = Flags(docker_volume_checkpoint_dir="/nonexistent")
    config = container_config(str(box), [], rootfs=str(rootfs))
    mounts = [
        VolumeMount(None, {}, mount_target(path, config, flags), read_only)  # type: ignore[arg-type]
        for _, path, read_only in volumes
    ]
    return build_launch_info(mounts, [str(s) for s, _, _ in volumes], flags=flags, user=None)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    path.mkdir()
    return path


def _dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@RUNTIMES
def test_volumes_at_absolute_and_relative_paths_are_written_inside_read_on_the_host(
    runtime: str, runtime_state: Path, rootfs: Path, box: Path, tmp_path: Path
) -> None:
    absolute, relative = _dir(tmp_path, "absolute"), _dir(tmp_path, "relative")
    info = _volume_info(rootfs, box, [(absolute, "/srv/data", False), (relative, "data", False)])
    script = "echo one > /srv/data/a && echo two > /mnt/mesos/sandbox/data/b && echo done"
    done = run(info, ["sh", "-c", script], rootfs=rootfs, sandbox=box, runtime=runtime,
               runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, b"done\n", b"")
    assert (absolute / "a").read_text() == "one\n"
    assert (relative / "b").read_text() == "two\n"
    assert not (rootfs / "srv" / "data" / "a").exists()  # in the volume, not the rootfs
    assert runtime_containers(runtime, runtime_state) == []


@RUNTIMES
def test_the_sandbox_is_at_mnt_mesos_sandbox_and_the_default_cwd(
    runtime: str, runtime_state: Path, rootfs: Path, box: Path
) -> None:
    (box / "from-host").write_text("hello")
    done = run(None, ["sh", "-c", "pwd && cat from-host && echo back > from-task"],
               rootfs=rootfs, sandbox=box, runtime=runtime, runtime_root=runtime_state,
               timeout=WAIT)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, b"/mnt/mesos/sandbox\nhello"), done.stderr
    assert (box / "from-task").read_text() == "back\n"


@RUNTIMES
def test_a_read_only_volume_and_a_submount_under_it_refuse_writes(
    runtime: str, runtime_state: Path, rootfs: Path, box: Path, tmp_path: Path
) -> None:
    volume = _dir(tmp_path, "volume")
    (volume / "sub").mkdir()
    info = _volume_info(rootfs, box, [(volume, "/ro", True)])
    options = rootfs_options(info, rootfs=rootfs, sandbox=box, runtime=runtime,
                             runtime_root=runtime_state)  # fmt: skip
    script = (
        "test -e /ro/sub/on-tmpfs || exit 3; "
        "touch /ro/top 2>/dev/null && exit 4; touch /ro/sub/inner 2>/dev/null && exit 5; echo ro"
    )
    command = launcher_command(info, ["sh", "-c", script], rootfs=options)
    # The submount exists only in a mount namespace of the test's own (private /).
    wrapper = 'mount -t tmpfs tmpfs "$0/sub" && touch "$0/sub/on-tmpfs" && exec "$@"'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", wrapper, str(volume), *command],
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"ro\n"), done.stderr
    assert list(volume.iterdir()) == [volume / "sub"]
    assert list((volume / "sub").iterdir()) == []  # the tmpfs went with its namespace


@RUNTIMES
def test_host_only_files_are_not_visible(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-only"
    secret.write_text("secret")
    script = f"test -e {secret} && exit 1; test -e /usr/bin/python3 && exit 2; cat /etc/passwd"
    done = run(None, ["sh", "-c", script], rootfs=rootfs, runtime=runtime,
               runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (rootfs / "etc" / "passwd").read_bytes()


@RUNTIMES
@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["true"], 0, ""),
        (["sh", "-c", "exit 7"], 7, ""),
        (["sh", "-c", "exit 143"], 143, ""),
        (["no-such-command"], 127, "No such file or directory"),
        (["/etc/passwd"], 126, "Permission denied"),
    ],
    ids=["0", "7", "143_is_not_a_signal", "127_missing", "126_not_executable"],
)
def test_the_exit_status_is_the_commands(
    runtime: str, runtime_state: Path, rootfs: Path, *, argv: list[str], status: int, message: str
) -> None:
    done = run(None, argv, rootfs=rootfs, runtime=runtime, runtime_root=runtime_state,
               timeout=WAIT)  # fmt: skip
    assert done.returncode == status, done.stderr
    assert message in done.stderr.decode()


@RUNTIMES
def test_env_replaces_the_environment_and_cwd_is_inside(
    runtime: str, runtime_state: Path, rootfs: Path
) -> None:
    (rootfs / "work").mkdir()
    os.environ["ISOLATOR_HOST_ONLY"] = "leak"
    try:
        done = run(None, ["sh", "-c", "pwd; env | grep -v '^PWD=\\|^SHLVL=' | sort"],
                   rootfs=rootfs, runtime=runtime, runtime_root=runtime_state,
                   env={"GREETING": "hi", "PATH": "/bin"}, cwd="/work", timeout=WAIT)  # fmt: skip
    finally:
        del os.environ["ISOLATOR_HOST_ONLY"]
    assert done.returncode == 0, done.stderr
    # HOME is the runtime's, from the rootfs's /etc/passwd, as it sets it when unset.
    assert done.stdout.decode().splitlines() == ["/work", "GREETING=hi", "HOME=/root", "PATH=/bin"]


@RUNTIMES
def test_the_user_runs_with_the_rootfs_ids(runtime: str, runtime_state: Path, rootfs: Path) -> None:
    info = ContainerLaunchInfo(user="task")
    done = run(info, ["sh", "-c", "id -u; id -g; id -G"], rootfs=rootfs, runtime=runtime,
               runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == [
        str(TASK_UID), str(TASK_GID), str(TASK_GID), str(EXTRA_GID)
    ]  # fmt: skip


@RUNTIMES
def test_an_unknown_user_exits_125_with_the_reason(
    runtime: str, runtime_state: Path, rootfs: Path
) -> None:
    done = run(ContainerLaunchInfo(user="ghost"), ["true"], rootfs=rootfs, runtime=runtime,
               runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert done.returncode == 125
    assert b"Failed to resolve user 'ghost'" in done.stderr
    assert b"no such user in /etc/passwd" in done.stderr


@RUNTIMES
def test_a_rootfs_task_and_a_host_task_share_a_volume(
    runtime: str, runtime_state: Path, rootfs: Path, box: Path, tmp_path: Path
) -> None:
    volume = _dir(tmp_path, "shared")
    info = _volume_info(rootfs, box, [(volume, "shared", False)])
    wrote = run(info, ["sh", "-c", "echo from-rootfs > shared/note"], rootfs=rootfs,
                sandbox=box, runtime=runtime, runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    host_target = _dir(tmp_path, "host-view")
    host_info = ContainerLaunchInfo(clone_namespaces=[CLONE_NEWNS])
    host_info.mounts.add(source=str(volume), target=str(host_target), flags=MS_BIND | MS_REC)
    read = run(host_info, ["cat", str(host_target / "note")], timeout=WAIT)
    assert (read.returncode, read.stdout) == (0, b"from-rootfs\n"), read.stderr
    assert list(host_target.iterdir()) == []  # the host task's bind was its own


@RUNTIMES
def test_a_hostile_target_exits_125_and_nothing_runs(
    runtime: str, runtime_state: Path, rootfs: Path, tmp_path: Path
) -> None:
    outside, volume = _dir(tmp_path, "outside"), _dir(tmp_path, "volume")
    (rootfs / "escape").symlink_to(f"../../../../..{outside}")
    info = ContainerLaunchInfo()
    info.mounts.add(source=str(volume), target=f"{rootfs}/escape/x",
                    flags=MS_BIND | MS_REC | MS_RDONLY)  # fmt: skip
    done = run(info, ["touch", "/ran"], rootfs=rootfs, runtime=runtime,
               runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert done.returncode == 125
    assert b"points outside" in done.stderr
    assert list(outside.iterdir()) == []
    assert not (rootfs / "ran").exists()


@RUNTIMES
def test_stdio_pass_through(runtime: str, runtime_state: Path, rootfs: Path) -> None:
    with launch(None, ["sh", "-c", "cat; echo err >&2"], rootfs=rootfs, runtime=runtime,
                runtime_root=runtime_state, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE) as process:  # fmt: skip
        out, err = process.communicate(b"from the caller\n", timeout=WAIT)
    assert (process.returncode, out, err) == (0, b"from the caller\n", b"err\n")


@RUNTIMES
def test_prepare_keeps_a_link_out_of_the_rootfs_inside_it(
    runtime: str, runtime_state: Path, rootfs: Path, box: Path, tmp_path: Path
) -> None:
    outside, volume = _dir(tmp_path, "outside"), _dir(tmp_path, "volume")
    (rootfs / "escape").symlink_to(str(outside))  # absolute: it means the rootfs's own path
    info = _volume_info(rootfs, box, [(volume, "/escape/data", False)])
    assert info.mounts[0].target == f"{rootfs}{outside}/data"  # resolved inside the rootfs
    done = run(info, ["sh", "-c", "echo in > /escape/data/f"], rootfs=rootfs, sandbox=box,
               runtime=runtime, runtime_root=runtime_state, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (volume / "f").read_text() == "in\n"
    assert list(outside.iterdir()) == []
