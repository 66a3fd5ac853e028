"""Checkpoint paths: Mesos's layout, and no container ID can leave the root."""

from __future__ import annotations

import re

import pytest

from isolator.common.container_ids import format_container_id, join, validate_container_id
from isolator.common.errors import IsolatorError
from isolator.docker.paths import container_dir, volumes_path
from isolator.protos import ContainerID


def cid(*values: str) -> ContainerID:
    """``cid("a", "b", "c")`` is container ``c`` nested in ``b`` nested in top-level ``a``."""
    container_id = ContainerID(value=values[0])
    for value in values[1:]:
        container_id = ContainerID(value=value, parent=container_id)
    return container_id


def test_format_top_level() -> None:
    assert format_container_id(cid("a")) == "a"


def test_format_nested_prints_ancestors_first() -> None:
    assert format_container_id(cid("a", "b")) == "a.b"
    assert format_container_id(cid("a", "b", "c")) == "a.b.c"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("/root", "id"), "/root/id"),
        (("/root/", "id"), "/root/id"),
        (("/root", "/id"), "/root/id"),
        (("/root/", "/id/"), "/root/id/"),
        # Only one separator is dropped on each side, as stout's path::join.
        (("/root//", "id"), "/root//id"),
        (("/root", "//id"), "/root//id"),
        (("a", "b", "c"), "a/b/c"),
        (("/rootfs", "/mnt/mesos/sandbox", "tmp/foo"), "/rootfs/mnt/mesos/sandbox/tmp/foo"),
        (("", "b"), "/b"),
        (("a",), "a"),
    ],
)
def test_join_matches_stout(parts: tuple[str, ...], expected: str) -> None:
    assert join(*parts) == expected


def test_container_dir_and_volumes_path() -> None:
    assert container_dir("/var/run/iso", cid("abc")) == "/var/run/iso/abc"
    assert volumes_path("/var/run/iso", cid("abc")) == "/var/run/iso/abc/volumes"
    assert volumes_path("/var/run/iso/", cid("abc")) == "/var/run/iso/abc/volumes"


def test_nested_container_paths_use_only_its_own_value() -> None:
    assert container_dir("/root", cid("parent", "child")) == "/root/child"
    assert volumes_path("/root", cid("p", "c", "gc")) == "/root/gc/volumes"


@pytest.mark.parametrize(
    "value",
    ["abc", "a.b", "with space", "..a", "a..", "...", "ünïcode", "x" * 300],
)
def test_safe_values_are_accepted(value: str) -> None:
    validate_container_id(cid(value))
    validate_container_id(cid(value, "child"))


INVALID: list[tuple[ContainerID, str]] = [
    (cid(""), "Invalid container ID '': a container ID value must not be empty"),
    (ContainerID(), "Invalid container ID '': a container ID value must not be empty"),
    (cid("."), "Invalid container ID '.': a container ID value must not be '.'"),
    (cid(".."), "Invalid container ID '..': a container ID value must not be '..'"),
    (cid("a/b"), "Invalid container ID 'a/b': a container ID value must not contain '/'"),
    (cid("/"), "Invalid container ID '/': a container ID value must not contain '/'"),
    (
        cid("../etc"),
        "Invalid container ID '../etc': a container ID value must not contain '/'",
    ),
    (
        cid("a\0b"),
        "Invalid container ID 'a\\0b': a container ID value must not contain a NUL character",
    ),
    (
        cid("parent", ".."),
        "Invalid container ID 'parent...': a container ID value must not be '..'",
    ),
    (
        cid("..", "child"),
        "Invalid container ID '...child': parent container ID '..' is invalid: "
        "a container ID value must not be '..'",
    ),
    (
        cid("a/b", "child"),
        "Invalid container ID 'a/b.child': parent container ID 'a/b' is invalid: "
        "a container ID value must not contain '/'",
    ),
    (
        cid("", "child"),
        "Invalid container ID '.child': parent container ID '' is invalid: "
        "a container ID value must not be empty",
    ),
    (
        cid("a\0", "child"),
        "Invalid container ID 'a\\0.child': parent container ID 'a\\0' is invalid: "
        "a container ID value must not contain a NUL character",
    ),
    (
        cid(".", "p", "c"),
        "Invalid container ID '..p.c': parent container ID '..p' is invalid: "
        "parent container ID '.' is invalid: a container ID value must not be '.'",
    ),
]


@pytest.mark.parametrize(
    ("container_id", "message"), INVALID, ids=[message for _, message in INVALID]
)
def test_invalid_ids_are_rejected_with_the_reason(container_id: ContainerID, message: str) -> None:
    with pytest.raises(IsolatorError) as info:
        validate_container_id(container_id)
    assert str(info.value) == message


@pytest.mark.parametrize(("container_id", "message"), INVALID[:6])
def test_paths_validate_before_joining(container_id: ContainerID, message: str) -> None:
    with pytest.raises(IsolatorError, match=r"^Invalid container ID"):
        container_dir("/root", container_id)
    with pytest.raises(IsolatorError, match=r"^Invalid container ID"):
        volumes_path("/root", container_id)


def test_a_child_of_an_invalid_parent_is_rejected_even_with_a_safe_value() -> None:
    # The child's own path would be fine; the ID as a whole is still refused.
    with pytest.raises(IsolatorError, match=re.escape("parent container ID '..' is invalid")):
        volumes_path("/root", cid("..", "safe"))
