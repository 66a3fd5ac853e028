"""``python -m benchmarks`` (``make bench``): every figure of issue 8, as ratios, in a table and
as JSON.

Each repeat of each figure runs in a fresh interpreter (so one figure's heap, threads or
files never flatter another's) and measures its baseline in that same process, right
before the isolator; the table gives the median of the repeats' ratios with their range.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

from benchmarks import (
    floor,
    latency,
    oci_task,
    p1_fanout,
    p2_overhead,
    p3_recovery,
    p4_resources,
    p5_csi,
    p5_protocol,
)
from benchmarks.harness import Options, filesystem_type
from benchmarks.report import figure_rows, table

FIGURES: dict[str, ModuleType] = {
    "p1": p1_fanout,
    "p2": p2_overhead,
    "p3": p3_recovery,
    "p4": p4_resources,
    "p5": p5_csi,
    "p5-plugin": p5_protocol,
    "latency": latency,
    "oci": oci_task,
    "floor": floor,
}
DEFAULT_JSON = "build/benchmarks.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the isolator's benchmarks (P1-P5, latency, oci and the design's "
        "floor; see each module's docstring for the exact definitions); print a table and "
        "write JSON.",
        epilog="The JSON holds, per figure, every repeat's raw measurements and each row's "
        "median, min, max, target and whether it is met. Exit status 0 even when a "
        "target is missed (benchmarks report, they do not gate); 1 if a figure failed.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(FIGURES),
        metavar="FIGURE",
        help=f"run only this figure ({', '.join(FIGURES)}); repeatable",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: sizes scaled by 0.05 (e.g. 500 instead of 10,000)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="scale every size by this factor (1.0 is the full run)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats per figure (default 3)")
    parser.add_argument(
        "--json",
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the JSON (default {DEFAULT_JSON}; '-' for stdout)",
    )
    parser.add_argument("--tmpfs-dir", default="/dev/shm", help="a directory on a tmpfs")
    parser.add_argument("--disk-dir", default="/var/tmp", help="a directory on a disk")
    parser.add_argument("--child", choices=sorted(FIGURES), help=argparse.SUPPRESS)
    return parser


def _options(args: argparse.Namespace) -> Options:
    scale = args.scale if args.scale is not None else 0.05 if args.quick else 1.0
    return Options(scale=scale, tmpfs_dir=args.tmpfs_dir, disk_dir=args.disk_dir)


def _repeat(name: str, options: Options) -> dict[str, float]:
    """One repeat of figure ``name`` in a fresh interpreter; its measurements."""
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--child",
        name,
        "--scale",
        str(options.scale),
        "--tmpfs-dir",
        options.tmpfs_dir,
        "--disk-dir",
        options.disk_dir,
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    measured: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return measured


def _run(names: list[str], options: Options, repeats: int) -> tuple[list[dict[str, Any]], bool]:
    figures, failed = [], False
    for name in names:
        started = time.monotonic()
        try:
            samples = [_repeat(name, options) for _ in range(repeats)]
        except (subprocess.CalledProcessError, ValueError, IndexError) as error:
            print(f"{name}: failed: {error}", file=sys.stderr)
            failed = True
            continue
        checks = FIGURES[name].checks(options)
        figures.append(
            {
                "figure": name,
                "seconds": round(time.monotonic() - started, 1),
                "rows": figure_rows(checks, samples),
                "repeats": samples,
            }
        )
        print(f"{name}: done in {figures[-1]['seconds']} s", file=sys.stderr)
    return figures, failed


def _write(path: str, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = _options(args)
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    if args.child:
        print(json.dumps(FIGURES[args.child].measure(options)))
        return 0
    names = args.only or list(FIGURES)
    figures, failed = _run(names, options, args.repeats)
    print(table(figures), file=sys.stderr if args.json == "-" else sys.stdout)
    _write(
        args.json,
        {
            "scale": options.scale,
            "repeats": args.repeats,
            "tmpfs": {"dir": options.tmpfs_dir, "type": filesystem_type(options.tmpfs_dir)},
            "disk": {"dir": options.disk_dir, "type": filesystem_type(options.disk_dir)},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "figures": figures,
        },
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
