"""The reference plugin cannot hand out the host: ``mountpoint`` stays inside the allowed
directories, Remove deletes only the plugin's own real directories, and a state file that
points elsewhere is refused at start (issue 9). Each case checks the filesystem around the
allowed directories and that the plugin made no mount."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.plugin import PluginError, StateError, VolumePlugin
from isolator.plugin.state import volume_file_name
from tests.support.hygiene import mount_table
from tests.support.plugin_http import err, ok, tree

ID_A = "a" * 64
HINT = "start the plugin with --allow-mountpoint to allow it"


@pytest.fixture(autouse=True)
def _no_mounts() -> Iterator[None]:
    """The plugin only makes directories: the mount table is the same after each test."""
    before = mount_table()
    yield
    assert mount_table() == before


@pytest.fixture
def workdir() -> Iterator[Path]:
    """``allowed/`` (allowed), ``root/`` (the plugin's) and ``host/`` (neither), in /tmp
    because unix socket paths are short."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="vpm-"))
    for name in ("allowed", "host"):
        (path / name).mkdir()
    (path / "host" / "secret").write_text("host data")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def plugin(workdir: Path) -> Iterator[VolumePlugin]:
    with VolumePlugin(
        socket_path=workdir / "p.sock",
        root=workdir / "root",
        allowed_mountpoints=[workdir / "allowed"],
    ) as running:
        yield running


def roots(workdir: Path) -> str:
    return repr([str(workdir / "root" / "volumes"), str(workdir / "allowed")])


def create(plugin: VolumePlugin, name: str, mountpoint: str) -> str:
    """Create ``name`` at ``mountpoint``; the refusal, and that nothing was recorded."""
    message = err(plugin, "VolumeDriver.Create", {"Name": name, "Opts": {"mountpoint": mountpoint}})
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []
    return message


# -- Create ---------------------------------------------------------------------------------


def test_etc_is_refused(plugin: VolumePlugin, workdir: Path) -> None:
    assert create(plugin, "v", "/etc") == (
        f"option 'mountpoint': '/etc' is outside the allowed directories {roots(workdir)}; {HINT}"
    )
    fresh = f"/etc/isolator-test-{uuid.uuid4().hex}"
    assert create(plugin, "v", fresh) == (
        f"option 'mountpoint': '{fresh}' is outside the allowed directories {roots(workdir)}; "
        f"{HINT}"
    )
    assert not os.path.lexists(fresh)


@pytest.mark.parametrize(
    ("root", "resolved"), [("/", ""), ("/./", ""), ("//", " resolves to '/', which")]
)
def test_the_host_root_is_refused(
    plugin: VolumePlugin, workdir: Path, root: str, resolved: str
) -> None:
    assert create(plugin, "v", root) == (
        f"option 'mountpoint': {root!r}{resolved} is the host's root directory; a volume "
        f"must be a directory inside one of the allowed directories {roots(workdir)}"
    )


def test_an_allowed_directory_itself_is_refused(plugin: VolumePlugin, workdir: Path) -> None:
    for directory in (workdir / "allowed", workdir / "root" / "volumes"):
        assert create(plugin, "v", str(directory)) == (
            f"option 'mountpoint': '{directory}' is an allowed directory itself; a volume must "
            f"be a directory inside one of the allowed directories {roots(workdir)}"
        )


@pytest.mark.parametrize(
    "relative", ["allowed/../host/x", "allowed/a/../b", "root/volumes/../../host/x", "allowed/.."]
)
def test_a_dotdot_component_is_refused(plugin: VolumePlugin, workdir: Path, relative: str) -> None:
    before = tree(workdir)
    mountpoint = f"{workdir}/{relative}"
    assert create(plugin, "v", mountpoint) == (
        f"option 'mountpoint': '{mountpoint}' has a '..' component; a volume must be a "
        f"directory inside one of the allowed directories {roots(workdir)}"
    )
    assert tree(workdir) == before


def test_a_symlink_inside_pointing_out_is_refused(plugin: VolumePlugin, workdir: Path) -> None:
    (workdir / "allowed" / "out").symlink_to(workdir / "host")
    (workdir / "root" / "volumes" / "etc").symlink_to("/etc")
    before = tree(workdir)
    for link, target in (("allowed/out", workdir / "host"), ("root/volumes/etc", Path("/etc"))):
        mountpoint = f"{workdir}/{link}/x"
        assert create(plugin, "v", mountpoint) == (
            f"option 'mountpoint': '{mountpoint}' resolves to '{target}/x', which is outside "
            f"the allowed directories {roots(workdir)}; {HINT}"
        )
    assert tree(workdir) == before
    assert not os.path.lexists("/etc/x")


def test_a_symlink_that_stays_inside_is_resolved(plugin: VolumePlugin, workdir: Path) -> None:
    real = workdir / "allowed" / "real"
    real.mkdir()
    (workdir / "allowed" / "alias").symlink_to("real")
    # ``..`` is refused even where it would stay inside; without it the link is followed.
    assert "has a '..' component" in create(plugin, "v", f"{real}/../alias/d")
    ok(
        plugin,
        "VolumeDriver.Create",
        {"Name": "v", "Opts": {"mountpoint": f"{real.parent}/alias/d"}},
    )
    assert ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]["Mountpoint"] == f"{real}/d"
    assert (real / "d").is_dir()


def test_a_nul_or_a_relative_path_is_refused(plugin: VolumePlugin, workdir: Path) -> None:
    bad = f"{workdir}/allowed/a\0b"
    assert create(plugin, "v", bad) == f"option 'mountpoint': {bad!r} contains a NUL character"
    assert create(plugin, "v", "allowed/x") == (
        "option 'mountpoint': 'allowed/x' must be an absolute path"
    )


def test_the_plugins_own_files_are_refused(workdir: Path) -> None:
    # An operator allowing the directory that holds the plugin's root, state and socket.
    with VolumePlugin(
        socket_path=workdir / "p.sock", root=workdir / "root", allowed_mountpoints=[workdir]
    ) as plugin:
        before = tree(workdir)
        for mountpoint in (workdir / "root", workdir / "root" / "volumes"):
            message = create(plugin, "v", str(mountpoint))
            assert message.startswith(f"option 'mountpoint': '{mountpoint}' ")
        assert create(plugin, "v", str(workdir / "root")) == (
            f"option 'mountpoint': '{workdir / 'root'}' holds the plugin's own files "
            f"('{workdir / 'root'}')"
        )
        assert tree(workdir) == before


def test_volumes_never_share_or_nest_directories(plugin: VolumePlugin, workdir: Path) -> None:
    own = workdir / "root" / "volumes" / "a"
    ok(plugin, "VolumeDriver.Create", {"Name": "a"})
    ok(plugin, "VolumeDriver.Create", {"Name": "c", "Opts": {"mountpoint": f"{own.parent}/x"}})
    for name, path in (("b", own), ("b", own / "sub")):
        message = err(
            plugin, "VolumeDriver.Create", {"Name": name, "Opts": {"mountpoint": str(path)}}
        )
        assert message == (
            f"volume b: directory '{path}' overlaps volume 'a' at '{own}'; "
            "volumes do not share directories"
        )
    # A later volume of the plugin's own may not take another volume's directory either.
    assert err(plugin, "VolumeDriver.Create", {"Name": "x"}) == (
        f"volume x: directory '{own.parent}/x' overlaps volume 'c' at '{own.parent}/x'; "
        "volumes do not share directories"
    )
    names = [v["Name"] for v in ok(plugin, "VolumeDriver.List", {})["Volumes"]]
    assert names == ["a", "c"]
    assert not (own / "sub").exists()


@pytest.mark.parametrize("allowed", ["/", "missing"])
def test_an_allowed_directory_must_be_a_real_one_and_not_slash(workdir: Path, allowed: str) -> None:
    directory = allowed if allowed == "/" else str(workdir / allowed)
    plugin = VolumePlugin(
        socket_path=workdir / "p.sock", root=workdir / "root", allowed_mountpoints=[directory]
    )
    with pytest.raises(PluginError) as raised:
        plugin.start()
    reason = "is the whole host" if allowed == "/" else "is not an existing directory"
    assert str(raised.value) == f"allowed mountpoint directory {directory!r} {reason}"
    assert not plugin.running
    assert not (workdir / "p.sock").exists()
    assert not (workdir / "root").exists()


# -- Mount and Remove after the filesystem changed -----------------------------------------


def create_then_plant_link(plugin: VolumePlugin, workdir: Path, mountpoint: Path | None) -> Path:
    """Volume ``v`` (at ``mountpoint``, else the plugin's own), whose directory someone
    then replaced with a link to ``host/``; its path."""
    options = {} if mountpoint is None else {"mountpoint": str(mountpoint)}
    ok(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": options})
    path = mountpoint or workdir / "root" / "volumes" / "v"
    path.rmdir()
    path.symlink_to(workdir / "host")
    return path


def test_mount_refuses_a_directory_replaced_by_a_symlink(
    plugin: VolumePlugin, workdir: Path
) -> None:
    data = create_then_plant_link(plugin, workdir, workdir / "allowed" / "data")
    before = tree(workdir)
    assert err(plugin, "VolumeDriver.Mount", {"Name": "v", "ID": ID_A}) == (
        f"cannot create directory '{data}': '{data}' is a symbolic link"
    )
    assert tree(workdir) == before
    assert ok(plugin, "VolumeDriver.Get", {"Name": "v"})["Volume"]["Status"] == {
        "count": 0,
        "mounts": {},
    }


def test_remove_refuses_the_plugins_own_directory_replaced_by_a_symlink(
    plugin: VolumePlugin, workdir: Path
) -> None:
    own = create_then_plant_link(plugin, workdir, None)
    before = tree(workdir)
    assert err(plugin, "VolumeDriver.Remove", {"Name": "v"}) == (
        f"refusing to delete '{own}': it is a symbolic link; remove it by hand"
    )
    assert tree(workdir) == before
    assert (workdir / "host" / "secret").read_text() == "host data"
    assert [v["Name"] for v in ok(plugin, "VolumeDriver.List", {})["Volumes"]] == ["v"]
    own.unlink()  # the operator's fix: now there is nothing to delete
    ok(plugin, "VolumeDriver.Remove", {"Name": "v"})
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


def test_remove_of_an_unmanaged_mountpoint_that_became_a_symlink_deletes_nothing(
    plugin: VolumePlugin, workdir: Path
) -> None:
    create_then_plant_link(plugin, workdir, workdir / "allowed" / "data")
    state = f"root/state/{volume_file_name('v')}"
    before = [entry for entry in tree(workdir) if entry[0] != state]
    assert ok(plugin, "VolumeDriver.Remove", {"Name": "v"}) == {"Err": ""}
    assert tree(workdir) == before  # only the state file went: the link, its target stay
    assert (workdir / "host" / "secret").read_text() == "host data"
    assert ok(plugin, "VolumeDriver.List", {})["Volumes"] == []


def test_remove_deletes_the_plugins_own_directory_without_following_links_in_it(
    plugin: VolumePlugin, workdir: Path
) -> None:
    own = workdir / "root" / "volumes" / "v"
    ok(plugin, "VolumeDriver.Create", {"Name": "v"})
    (own / "host").symlink_to(workdir / "host")
    (own / "file").write_text("volume data")
    ok(plugin, "VolumeDriver.Remove", {"Name": "v"})
    assert not own.exists()
    assert (workdir / "host" / "secret").read_text() == "host data"


# -- the state file -------------------------------------------------------------------------


def write_state(
    root: Path, name: str, mountpoint: str, *, managed: bool = False, legacy: bool = False
) -> Path:
    """A state naming ``mountpoint``: the old single file, or one volume's file; its path."""
    record = {"mountpoint": mountpoint, "created_at": "2024-01-01T00:00:00Z", "managed": managed}
    if legacy:
        path, data = root / "state.json", {"version": 1, "volumes": {name: record}}
    else:
        path, data = root / "state" / volume_file_name(name), {"version": 2, "name": name, **record}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("mountpoint", "managed", "problem"),
    [
        (
            "/etc",
            False,
            "mountpoint '/etc' is outside the allowed directories {roots}; " + HINT,
        ),
        ("/", True, "is the plugin's own but its mountpoint '/' is not '{own}'"),
        ("{w}/allowed/../host", False, "mountpoint '{w}/allowed/../host' is not a normalised path"),
        (
            "{w}/allowed",
            False,
            "mountpoint '{w}/allowed' is an allowed directory itself; "
            "a volume must be a directory inside one of the allowed directories {roots}",
        ),
    ],
)
@pytest.mark.parametrize("legacy", [False, True], ids=["per-volume", "legacy-state-json"])
def test_a_state_file_pointing_outside_is_refused_at_start(
    workdir: Path, mountpoint: str, managed: bool, problem: str, legacy: bool
) -> None:
    own = workdir / "root" / "volumes" / "v"
    state = write_state(
        workdir / "root", "v", mountpoint.format(w=workdir), managed=managed, legacy=legacy
    )
    before = tree(workdir)
    plugin = VolumePlugin(
        socket_path=workdir / "p.sock",
        root=workdir / "root",
        allowed_mountpoints=[workdir / "allowed"],
    )
    with pytest.raises(StateError) as raised:
        plugin.start()
    expected = problem.format(w=workdir, roots=roots(workdir), own=own)
    assert str(raised.value) == f"plugin state file {state}: volume 'v' {expected}"
    assert not plugin.running
    assert tree(workdir) == before


def test_a_state_file_is_refused_once_its_directory_is_no_longer_allowed(workdir: Path) -> None:
    sock, root, data = workdir / "p.sock", workdir / "root", workdir / "allowed" / "data"
    with VolumePlugin(socket_path=sock, root=root, allowed_mountpoints=[data.parent]) as plugin:
        ok(plugin, "VolumeDriver.Create", {"Name": "v", "Opts": {"mountpoint": str(data)}})
    with pytest.raises(StateError) as raised:
        VolumePlugin(socket_path=sock, root=root).start()
    assert str(raised.value) == (
        f"plugin state file {root / 'state' / 'v-v.json'}: volume 'v' mountpoint '{data}' is "
        "outside "
        f"the allowed directories {[str(root / 'volumes')]!r}; {HINT}"
    )
    assert not sock.exists()
    assert data.is_dir()
