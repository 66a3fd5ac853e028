"""What ``pip install .`` installs: every package, the protobuf sources and stubs, the scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_and_data_file(tmp_path: Path) -> None:
    # Built from a copy: a build/ left in the work tree would hide a missing package.
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    sources = {
        str(path.relative_to(REPO))
        for top in ("actors", "isolator")
        for path in (REPO / top).rglob("*")
        if path.suffix in {".py", ".proto", ".pyi"} or path.name == "py.typed"
    }
    missing = sorted(sources - names)
    assert not missing, f"left out of the wheel: {missing}"

    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("isolator-volume-plugin", "isolator-dvdcli", "isolator-launcher"):
        assert f"{script} = " in scripts
