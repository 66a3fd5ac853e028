"""What a user gets: a wheel with every package, data file and script; a non-editable install
whose commands work; an embedding program that type-checks with the ``typing`` extra; an
sdist that ships the whole project, with tests that run from an unpacked copy.

Nothing is fetched: the wheel is installed without dependencies into a fresh virtual
environment that reads this environment's packages through a ``.pth`` file (which does
not load this checkout's editable install: a ``.pth`` line adds a path, it does not
process the ``.pth`` files found there).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isolator.docker.state import VolumeKey, checkpoint_container
from isolator.protos import ContainerID
from tests.support.plugin_process import wait_until_serving
from tests.support.repo import REPO
from tests.support.waits import WAIT

SCRIPTS = ("isolator-volume-plugin", "isolator-dvdcli", "isolator-launcher", "isolator-ctl")
NOT_SHIPPED = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".ci"
)
"""What is not the project: version control, environments, caches, the session's CI."""
BUILD_TIMEOUT = 180


def run(*argv: str | Path, cwd: Path = Path("/")) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, its output captured; never raises for its status.

    From ``/`` unless told: ``python -c`` puts its working directory first on the path,
    and this checkout must not be found that way.
    """
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
        cwd=cwd,
    )


def ok(*argv: str | Path, cwd: Path = Path("/")) -> str:
    done = run(*argv, cwd=cwd)
    assert done.returncode == 0, (argv, done.stdout, done.stderr)
    return done.stdout


def clean_copy(destination: Path) -> Path:
    """The project as a clean copy: a build/ left in the work tree would hide a missing file."""
    shutil.copytree(REPO, destination, ignore=NOT_SHIPPED)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = clean_copy(tmp_path_factory.mktemp("packaging") / "source")
    dist = source.parent / "wheel"
    ok(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
       "--wheel-dir", dist, source)  # fmt: skip
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    """A fresh virtual environment with the wheel installed (not editable); its bin dir."""
    venv = wheel.parent.parent / "venv"
    ok(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    ok(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
       "--no-index", wheel)  # fmt: skip
    purelib = ok(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    deps = "".join(f"{path}\n" for path in site.getsitepackages())
    (Path(purelib.strip()) / "test-dependencies.pth").write_text(deps)
    return venv / "bin"


# -- the wheel -----------------------------------------------------------------------------


def test_the_wheel_holds_every_package_data_file_script_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(path.relative_to(REPO))
        for top in ("actors", "isolator")
        for path in (REPO / top).rglob("*")
        if path.suffix in {".py", ".proto", ".pyi"} or path.name == "py.typed"
    }
    missing = sorted(sources - names)
    assert not missing, f"left out of the wheel: {missing}"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in SCRIPTS:
        assert f"{script} = " in scripts


# -- a non-editable install ----------------------------------------------------------------


def test_the_install_is_the_wheel_not_this_checkout(installed: Path) -> None:
    where = ok(installed / "python", "-c", "import isolator; print(isolator.__file__)")
    assert where.startswith(str(installed.parent)), where
    version = ok(installed / "python", "-c", "import isolator; print(isolator.__version__)")
    assert version.strip() == configparser_version()


def configparser_version() -> str:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    return config["metadata"]["version"]


def test_every_installed_script_prints_its_version(installed: Path) -> None:
    for script in SCRIPTS:
        assert ok(installed / script, "--version") == f"{script} {configparser_version()}\n"
    assert "exit status:" in ok(installed / "isolator-launcher", "--help")
    assert "SemVer: " in ok(installed / "isolator-dvdcli", "version")


def test_the_installed_ctl_reads_checkpoints(installed: Path, tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    checkpoint_container(str(root), ContainerID(value="c1"), [VolumeKey("local", "shared")])
    checkpoint_container(str(root), ContainerID(value="c2"), [VolumeKey("local", "shared")])
    ctl = installed / "isolator-ctl"
    assert "c1          local    shared\n" in ok(ctl, "status", "--checkpoint-dir", root)
    volumes = ok(ctl, "volumes", "--offline", f"--docker_volume_checkpoint_dir={root}")
    assert "local    shared   2         c1, c2\n" in volumes
    recovery = json.loads(ok(ctl, "recover", "--dry-run", "--json", "--checkpoint-dir", root))
    assert recovery["unmounts"] == [{"driver": "local", "name": "shared"}]
    assert run(ctl, "forget", "c1", "--checkpoint-dir", root).returncode == 2
    ok(ctl, "forget", "c1", "--yes", "--checkpoint-dir", root)
    assert not (root / "c1").exists()


@pytest.fixture
def installed_plugin(installed: Path, tmp_path: Path) -> Iterator[Path]:
    """The installed ``isolator-volume-plugin`` serving in a short socket directory."""
    sockets = Path(f"/tmp/pkg-{os.getpid()}")
    sockets.mkdir()
    proc = subprocess.Popen(
        [installed / "isolator-volume-plugin", "--socket", sockets / "local.sock",
         "--root", tmp_path / "plugin"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until_serving(proc, time.monotonic() + 2 * WAIT)
        yield sockets
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=2 * WAIT)
        shutil.rmtree(sockets, ignore_errors=True)


def test_the_installed_ctl_finds_the_installed_plugin(
    installed: Path, installed_plugin: Path, tmp_path: Path
) -> None:
    specs, checkpoints = tmp_path / "specs", tmp_path / "checkpoints"
    specs.mkdir()
    dirs = ["--socket-dir", str(installed_plugin), "--spec-dir", str(specs)]
    document = json.loads(ok(installed / "isolator-ctl", "plugins", "--json", *dirs))
    assert [(p["name"], p["activated"]) for p in document["plugins"]] == [("local", True)]
    doctor = run(installed / "isolator-ctl", "doctor", *dirs, "--checkpoint-dir", checkpoints)
    assert doctor.returncode == (0 if os.geteuid() == 0 else 1), doctor.stdout
    assert f"OK    plugin local: activated at unix://{installed_plugin}/local.sock" in doctor.stdout
    dvdcli = installed / "isolator-dvdcli"
    listed = ok(dvdcli, "--volumedriver=local", "--retry-budget=0", "--socket-dir",
                installed_plugin, "--spec-dir", specs, "list")  # fmt: skip
    assert listed == ""


# -- the typing extra ----------------------------------------------------------------------

MISUSE = """
from isolator import Flags

Flags(docker_volume_driver_client="docker")
"""


def test_an_embedding_program_type_checks_with_the_typing_extra(
    installed: Path, tmp_path: Path
) -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert "types-protobuf" in config["options.extras_require"]["typing"]
    program = tmp_path / "embedding_program.py"
    shutil.copy(REPO / "tests" / "support" / "embedding_program.py", program)
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    # From tmp_path: no project config applies, only --strict.
    done = run(installed / "python", "-m", "mypy", "--strict", "--cache-dir", tmp_path / "cache",
               program, misuse, cwd=tmp_path)  # fmt: skip
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert [line.split(":")[0] for line in errors] == ["misuse.py"], done.stdout
    assert '"docker_volume_driver_client"' in errors[0]
    assert "[arg-type]" in errors[0]


# -- the sdist -----------------------------------------------------------------------------


def test_the_sdist_ships_the_project_and_its_tests_run_unpacked(tmp_path: Path) -> None:
    source = clean_copy(tmp_path / "source")
    dist = tmp_path / "dist"
    ok(sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", dist, source)
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
        top = archive.getnames()[0].split("/")[0]
    unpacked = tmp_path / top
    shipped = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file()}
    project = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()}
    missing = sorted(project - shipped - {".gitignore"})
    assert not missing, f"left out of the sdist: {missing}"
    assert {"LICENSE", "CHANGELOG.md", "tests/conftest.py", "tests/support/hygiene.py"} <= shipped
    where = ok(sys.executable, "-c", "import isolator; print(isolator.__file__)", cwd=unpacked)
    assert where.startswith(str(unpacked)), where
    tests = [
        "tests/isolator/config/test_flags.py",
        "tests/isolator/config/test_flags_reference.py",
        "tests/isolator/ctl/test_ctl.py",
    ]
    done = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, cwd=unpacked)
    assert done.returncode == 0, done.stdout[-3000:]
