"""What every console script shares: ``--version``, the launcher's help, and logs that keep
the HTTP client's per-request lines below INFO."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import isolator
from isolator.version import DISTRIBUTION, UNKNOWN
from tests.support.repo import REPO

SCRIPTS = {
    "isolator-volume-plugin": "isolator.plugin",
    "isolator-launcher": "isolator.launcher",
    "isolator-dvdcli": "isolator.dvdcli.cli",
    "isolator-ctl": "isolator.ctl",
    "isolator-csi-plugin": "isolator.csi_plugin",
}
"""Each console script and the module ``python -m`` runs it from."""


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from this checkout, its output captured."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", module, *args)


def test_the_package_has_a_version() -> None:
    assert isolator.__version__ == importlib.metadata.version(DISTRIBUTION)
    assert "__version__" in isolator.__all__


def test_a_source_tree_that_is_not_installed_says_so() -> None:
    # As if no distribution metadata could be found for the package.
    code = (
        "import importlib.metadata as m, sys; "
        "m.version = lambda name: (_ for _ in ()).throw(m.PackageNotFoundError(name)); "
        "import isolator; print(isolator.__version__)"
    )
    assert run_python("-c", code).stdout == f"{UNKNOWN}\n"


@pytest.mark.parametrize(("script", "module"), SCRIPTS.items())
def test_every_console_script_prints_its_version(script: str, module: str) -> None:
    done = run_module(module, "--version")
    expected = (0, f"{script} {isolator.__version__}\n", "")
    assert (done.returncode, done.stdout, done.stderr) == expected


def test_dvdcli_keeps_its_own_version_command() -> None:
    done = run_module("isolator.dvdcli.cli", "version")
    assert done.returncode == 0
    assert f"SemVer: {isolator.__version__}\n" in done.stdout


def test_the_launcher_help_documents_its_input_and_exit_codes() -> None:
    done = run_module("isolator.launcher", "--help")
    assert (done.returncode, done.stderr) == (0, "")
    text = done.stdout
    assert text.startswith("usage: isolator-launcher [--launch-info=JSON]")
    for needle in (
        "ContainerLaunchInfo",
        "clone_namespaces",
        "mounts",
        "pre_exec_commands",
        "working_directory",
        "--environment-fd=FD",
        "125  the launcher failed before exec",
        "126  COMMAND was found but cannot be executed",
        "127  COMMAND was not found",
        "any other: COMMAND's own exit status",
    ):
        assert needle in text, needle


def test_the_launcher_help_example_is_a_launch_info_it_applies() -> None:
    done = run_module("isolator.launcher", "--help")
    start = done.stdout.index("e.g.") + len("e.g.")
    end = done.stdout.index("Applied:")
    example = " ".join(done.stdout[start:end].split())
    code = (
        "import sys; from google.protobuf import json_format; "
        "from isolator.protos import ContainerLaunchInfo; "
        "from isolator.launch.mounting import validate_launch_info; "
        "validate_launch_info(json_format.Parse(sys.argv[1], ContainerLaunchInfo()))"
    )
    parsed = run_python("-c", code, example)
    assert parsed.returncode == 0, (example, parsed.stderr)


LOG_PROBE = """
import logging, sys
from isolator.common import logs
logs.configure(sys.argv[1])
logging.getLogger("httpx").info("HTTP Request: POST /VolumeDriver.Get 500")
logging.getLogger("httpcore.connection").debug("connect_unix_socket.started")
logging.getLogger("isolator.drivers.protocol").info("activated")
"""


def test_http_request_lines_stay_below_info_unless_debug_is_asked_for() -> None:
    info = run_python("-c", LOG_PROBE, "INFO")
    assert "activated" in info.stderr
    assert "HTTP Request" not in info.stderr
    debug = run_python("-c", LOG_PROBE, "DEBUG")
    assert "HTTP Request" in debug.stderr
    assert "connect_unix_socket.started" in debug.stderr


def test_logging_set_up_by_an_embedder_is_left_alone() -> None:
    code = (
        "import logging; logging.basicConfig(level='INFO'); "
        "from isolator.common import logs; logs.configure('WARNING'); "
        "print(logging.getLogger().level, logging.getLogger('httpx').level)"
    )
    assert run_python("-c", code).stdout.split() == ["20", "0"]
