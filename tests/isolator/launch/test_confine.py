"""Paths resolved inside their root, link by link, without root privileges or mounts.

A rootfs resolves as ``openat2(RESOLVE_IN_ROOT)`` would (absolute links restart at the
root, ``..`` stops there), a sandbox as ``RESOLVE_BENEATH`` (a link that leaves is refused).
Every test also checks that nothing appeared outside the root.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.launch.confine import (
    MAX_SYMLINKS,
    ConfinementError,
    Resolved,
    container_path_problem,
    open_no_symlinks,
    resolve_in_root,
)
from tests.support.hygiene import tree


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A root with a neighbour outside it; the test must not change anything but the root."""
    (tmp_path / "outside" / "etc").mkdir(parents=True)
    (tmp_path / "root").mkdir()
    before = tree(tmp_path, skip=("root",))
    yield tmp_path / "root"
    assert tree(tmp_path, skip=("root",)) == before, "something changed outside the root"


def links(root: Path, **targets: str) -> None:
    for name, target in targets.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / name)


def refused(root: Path, path: str, *, beneath: bool) -> str:
    with pytest.raises(ConfinementError) as raised:
        resolve_in_root(str(root), path, beneath=beneath)
    return str(raised.value)


# -- what a container path may be --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a/../b", "must not contain a '..' component"),
        ("/a/..", "must not contain a '..' component"),
        ("..", "must not contain a '..' component"),
        ("a\0/../../etc", "must not contain a NUL character"),
        ("", "must name a directory below the root"),
        (".", "must name a directory below the root"),
        ("/", "must name a directory below the root"),
        ("//./", "must name a directory below the root"),
    ],
)
def test_container_paths_that_are_refused(path: str, problem: str) -> None:
    assert container_path_problem(path) == problem


@pytest.mark.parametrize("path", ["a", "/a/b", "./a//b/", "a..b/...", "new\nline"])
def test_container_paths_that_are_accepted(path: str) -> None:
    assert container_path_problem(path) is None


# -- RESOLVE_IN_ROOT: a rootfs ----------------------------------------------------------


def test_plain_path_is_made_in_the_root(root: Path) -> None:
    assert resolve_in_root(str(root), "/a/b/") == Resolved(str(root), "a/b")
    assert (root / "a" / "b").is_dir()
    assert resolve_in_root(str(root), "a/b").path == f"{root}/a/b"  # exists now: same answer


def test_absolute_link_to_etc_is_resolved_inside(root: Path) -> None:
    leaf = f"confine-test-{uuid.uuid4().hex}"
    host_etc = sorted(os.listdir("/etc"))
    links(root, data="/etc")
    assert resolve_in_root(str(root), f"/data/{leaf}") == Resolved(str(root), f"etc/{leaf}")
    assert (root / "etc" / leaf).is_dir()
    assert sorted(os.listdir("/etc")) == host_etc


def test_absolute_link_to_a_host_directory_is_resolved_inside(root: Path) -> None:
    outside = root.parent / "outside" / "etc"
    links(root, data=str(outside))
    resolved = resolve_in_root(str(root), "/data/x")
    assert resolved.relative == f"{str(outside).lstrip('/')}/x"
    assert (root / resolved.relative).is_dir()


def test_dotdot_links_stop_at_the_root(root: Path) -> None:
    links(root, a="../../..", **{"d/e": "../../../../outside"})
    assert resolve_in_root(str(root), "/a/x").relative == "x"
    assert resolve_in_root(str(root), "/d/e/y").relative == "outside/y"
    assert (root / "x").is_dir()
    assert (root / "outside" / "y").is_dir()


def test_dotdot_inside_a_link_walks_the_resolved_directories(root: Path) -> None:
    (root / "real" / "sub").mkdir(parents=True)
    links(root, deep="real/sub", up="deep/../sibling")  # ".." of real/sub, not of "deep"
    assert resolve_in_root(str(root), "/up/z").relative == "real/sibling/z"


def test_link_to_the_root_itself_is_refused(root: Path) -> None:
    links(root, slash="/", dot=".")
    assert refused(root, "/slash", beneath=False) == f"it resolves to the root '{root}' itself"
    assert refused(root, "dot", beneath=True) == f"it resolves to the root '{root}' itself"


def test_self_loop_is_refused_naming_the_link(root: Path) -> None:
    links(root, loop="loop")
    assert refused(root, "/loop/x", beneath=False) == (
        f"Too many levels of symbolic links (at the symbolic link '{root}/loop' -> 'loop')"
    )
    assert not (root / "x").exists()


def test_two_link_cycle_is_refused(root: Path) -> None:
    links(root, ping="/pong", pong="ping")
    assert refused(root, "/ping/x", beneath=False).startswith(
        f"Too many levels of symbolic links (at the symbolic link '{root}/p"
    )


def test_forty_links_are_followed_and_the_forty_first_is_refused(root: Path) -> None:
    (root / "end").mkdir()
    links(
        root, **{f"l{i}": f"l{i + 1}" for i in range(MAX_SYMLINKS)}, **{f"l{MAX_SYMLINKS}": "end"}
    )
    assert resolve_in_root(str(root), "/l1/x").relative == "end/x"
    assert refused(root, "/l0/x", beneath=False) == (
        "Too many levels of symbolic links "
        f"(at the symbolic link '{root}/l{MAX_SYMLINKS}' -> 'end')"
    )


def test_link_to_a_file_is_not_a_directory_naming_the_link(root: Path) -> None:
    (root / "passwd").write_text("")
    links(root, pw="/passwd")
    assert refused(root, "/pw/x", beneath=False) == (
        f"Not a directory (through the symbolic link '{root}/pw' -> '/passwd')"
    )


def test_file_on_the_callers_path_is_an_os_error(root: Path) -> None:
    (root / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        resolve_in_root(str(root), "file/x")


def test_without_create_a_missing_directory_is_an_os_error(root: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_in_root(str(root), "missing", create=False)
    assert not (root / "missing").exists()


def test_a_root_reached_through_a_link_answers_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "root", tmp_path / "alias")
    assert resolve_in_root(str(tmp_path / "alias"), "a") == Resolved(str(tmp_path / "root"), "a")
    assert (tmp_path / "root" / "a").is_dir()


def test_a_directory_that_moved_during_the_walk_is_refused(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if ``a`` were renamed out of the root between its mkdirat and the final check."""
    real_readlink = os.readlink

    def readlink(path: str, *, dir_fd: int | None = None) -> str:
        if path.startswith("/proc/self/fd/") and (root / "a").exists():
            return "/elsewhere/a"
        return real_readlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "readlink", readlink)
    assert refused(root, "a", beneath=False) == (
        f"'{root}/a' moved while it was resolved (it is now '/elsewhere/a')"
    )


# -- RESOLVE_BENEATH: a sandbox ---------------------------------------------------------


def test_links_that_stay_inside_the_sandbox_are_followed(root: Path) -> None:
    (root / "work").mkdir()
    links(root, data="work", **{"work/up": "../shared"})
    assert resolve_in_root(str(root), "data/up/x", beneath=True).relative == "shared/x"


def test_absolute_link_out_of_the_sandbox_is_refused(root: Path) -> None:
    links(root, data="/etc")
    assert refused(root, "data/x", beneath=True) == (
        f"the symbolic link '{root}/data' -> '/etc' points outside '{root}'"
    )
    assert not (root / "etc").exists()


def test_relative_link_out_of_the_sandbox_is_refused(root: Path) -> None:
    links(root, a="../../..", b="x/../../outside")
    assert refused(root, "a/x", beneath=True) == (
        f"the symbolic link '{root}/a' -> '../../..' points outside '{root}'"
    )
    assert refused(root, "b", beneath=True) == (
        f"the symbolic link '{root}/b' -> 'x/../../outside' points outside '{root}'"
    )


def test_messages_escape_what_a_link_holds(root: Path) -> None:
    links(root, **{"bad\nname": "/etc\x1b[2J"})
    assert refused(root, "bad\nname/x", beneath=True) == (
        f"the symbolic link '{root}/bad\\nname' -> '/etc\\x1b[2J' points outside '{root}'"
    )


# -- the launcher's side ----------------------------------------------------------------


def test_open_no_symlinks_opens_a_plain_path(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    fd = open_no_symlinks(f"{root}/a//b/")
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == f"{root}/a/b"
    finally:
        os.close(fd)


@pytest.mark.parametrize("planted", ["a", "a/b"])
def test_open_no_symlinks_refuses_a_link_at_any_component(root: Path, planted: str) -> None:
    (root / "real" / "b").mkdir(parents=True)
    if planted == "a":
        links(root, a="real")
    else:
        (root / "a").mkdir()
        links(root, **{"a/b": "../real/b"})
    with pytest.raises(ConfinementError) as raised:
        open_no_symlinks(f"{root}/a/b")
    assert str(raised.value) == f"'{root}/{planted}' is a symbolic link; refusing to follow it"


@pytest.mark.parametrize(
    ("path", "problem"),
    [("relative/x", "it is not an absolute path"), ("/a/../b", "it has a '..' component")],
)
def test_open_no_symlinks_refuses_paths_that_are_not_plain(path: str, problem: str) -> None:
    with pytest.raises(ConfinementError) as raised:
        open_no_symlinks(path)
    assert str(raised.value) == problem
