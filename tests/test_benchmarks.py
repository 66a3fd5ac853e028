"""``python -m benchmarks`` runs and writes its JSON (a smoke run: no timing is asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.repo import REPO


def test_a_quick_latency_run_writes_every_row_with_its_target(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            "latency",
            "--repeats",
            "1",
            "--json",
            str(output),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["repeats"] == 1
    [figure] = document["figures"]
    assert figure["figure"] == "latency"
    [row] = figure["rows"]
    assert row["target"] == "<= 2.5x"
    assert isinstance(row["met"], bool)
    assert row["min"] <= row["median"] <= row["max"]
    assert "| Latency: one prepare+cleanup round trip" in done.stdout


def test_a_small_p5_run_talks_to_the_reference_plugin_and_reports_both_rows(
    tmp_path: Path,
) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--scale",
            "0.01",
            "--only",
            "p5-plugin",
            "--repeats",
            "1",
            "--json",
            str(output),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [figure] = json.loads(output.read_text(encoding="utf-8"))["figures"]
    assert [row["target"] for row in figure["rows"]] == ["<= 1.3x", ">= 0.8x"]
    [sample] = figure["repeats"]
    assert sample["bare_us"] > 0
    assert sample["isolator_us"] > 0
    assert sample["get_client_us"] > 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the reference CSI plugin bind mounts")
def test_a_quick_csi_run_writes_its_row(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "p5",
         "--repeats", "1", "--json", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [figure] = json.loads(output.read_text(encoding="utf-8"))["figures"]
    [row] = figure["rows"]
    assert row["target"] == "<= 1.3x"
    assert row["median"] > 0
    assert "| P5 CSI prepare+cleanup vs bare gRPC loop, 10 volumes" in done.stdout


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runc") is None or not os.path.exists("/bin/busybox"),
    reason="the OCI figure needs root, runc and busybox-static",
)
def test_a_quick_oci_run_writes_its_row(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "oci",
         "--repeats", "1", "--json", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [figure] = json.loads(output.read_text(encoding="utf-8"))["figures"]
    task, floor = figure["rows"]
    assert (figure["figure"], task["target"], floor["key"]) == ("oci", "<= 1.2x", "floor")
    assert task["median"] > 0
    [sample] = figure["repeats"]
    assert sample["floor_ms"] > 0  # the floor's runtime commands ran and succeeded


def test_a_small_floor_run_checks_the_skeletons_work_and_reports_every_row(
    tmp_path: Path,
) -> None:
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "0.01", "--only", "floor",
         "--repeats", "1", "--json", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the skeleton's calls were checked in measure
    [figure] = json.loads(output.read_text(encoding="utf-8"))["figures"]
    assert [row["key"] for row in figure["rows"]] == [
        "latency", "throughput_small", "throughput_large", "linearity", "fanout_fast", "orphans",
    ]  # fmt: skip
    assert [row["target"] for row in figure["rows"]][:2] == ["<= 2.5x", ">= 0.6x"]
    [sample] = figure["repeats"]
    assert sample["skeleton_us"] > 0
    assert sample["bare_us"] > 0
