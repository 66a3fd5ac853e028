"""Regenerate the committed ``*_pb2.py``/``*_pb2.pyi`` modules (and the gRPC stubs
``*_pb2_grpc.py``/``*_pb2_grpc.pyi`` of the protos with services) from the ``.proto`` sources.

The ``.proto`` files are the source of truth; the generated modules are committed so that
installing the package needs no protoc. ``tests/test_protos.py`` regenerates into a temporary
directory and compares, so a ``.proto`` edit without regeneration (or a toolchain change that
alters the output) fails the tests.

Usage::

    python -m isolator.protos.generate            # rewrite the files next to the sources
    python -m isolator.protos.generate --out DIR  # write DIR/isolator/protos/*_pb2.py{,i}

It needs the tools of the ``test`` extra (grpcio-tools, mypy-protobuf); without them it
says what to install and exits 1. Installing the package needs neither.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "GRPC_PROTO_FILES",
    "PROTO_FILES",
    "REPO_ROOT",
    "GenerateError",
    "generate",
    "generated_files",
    "main",
]

PROTOS_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTOS_DIR.parent.parent
"""Imports between the protos are rooted here, so modules import as ``isolator.protos.*``."""

PROTO_FILES: tuple[str, ...] = (
    "isolator/protos/mesos.proto",
    "isolator/protos/containerizer.proto",
    "isolator/protos/docker_volume_state.proto",
    "isolator/protos/csi.proto",
    "isolator/protos/csi_state.proto",
    "isolator/protos/csi_isolator_state.proto",
)
"""The sources, relative to ``REPO_ROOT``."""

GRPC_PROTO_FILES: tuple[str, ...] = ("isolator/protos/csi.proto",)
"""The sources with services: they also get ``*_pb2_grpc.py{,i}`` (grpcio's stubs)."""


INSTALL_HINT = "install the test extra: pip install -e '.[test]'"


class GenerateError(RuntimeError):
    """The code cannot be generated here; the message says what is missing."""


def generated_files() -> list[str]:
    """The generated files, relative to the output root, in a stable order."""
    messages = [
        proto.removesuffix(".proto") + "_pb2" + ext
        for proto in PROTO_FILES
        for ext in (".py", ".pyi")
    ]
    stubs = [
        proto.removesuffix(".proto") + "_pb2_grpc" + ext
        for proto in GRPC_PROTO_FILES
        for ext in (".py", ".pyi")
    ]
    return messages + stubs


def _mypy_plugin(name: str = "protoc-gen-mypy") -> str:
    """Find a mypy-protobuf plugin: next to this interpreter first (a venv not on PATH),
    then PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise GenerateError(
            f"{name} (from mypy-protobuf) is not found next to the Python "
            f"interpreter or on PATH; {INSTALL_HINT}"
        )
    return found


def generate(out_dir: Path | None = None) -> list[Path]:
    """Run protoc on every source and return the paths written.

    ``out_dir`` defaults to the repository root, which puts the modules next to the sources.
    """
    try:
        protoc = importlib.import_module("grpc_tools.protoc")
    except ImportError as error:
        raise GenerateError(
            f"protoc comes from grpcio-tools, which cannot be imported ({error}); {INSTALL_HINT}"
        ) from None
    out = (out_dir if out_dir is not None else REPO_ROOT).resolve()
    (out / "isolator" / "protos").mkdir(parents=True, exist_ok=True)
    well_known = Path(importlib.import_module("grpc_tools").__file__ or "").parent / "_proto"
    includes = [f"-I{REPO_ROOT}", f"-I{well_known}"]
    runs = [
        [
            "grpc_tools.protoc",
            f"--plugin=protoc-gen-mypy={_mypy_plugin()}",
            *includes,
            f"--python_out={out}",
            f"--mypy_out={out}",
            *(str(REPO_ROOT / proto) for proto in PROTO_FILES),
        ],
        [
            "grpc_tools.protoc",
            f"--plugin=protoc-gen-mypy_grpc={_mypy_plugin('protoc-gen-mypy_grpc')}",
            *includes,
            f"--grpc_python_out={out}",
            f"--mypy_grpc_out={out}",
            *(str(REPO_ROOT / proto) for proto in GRPC_PROTO_FILES),
        ],
    ]
    for args in runs:
        code = protoc.main(args)
        if code != 0:
            raise GenerateError(f"protoc failed with exit code {code}: {' '.join(args)}")
    return [out / name for name in generated_files()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m isolator.protos.generate", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output root (default: the repository root, i.e. next to the .proto files)",
    )
    options = parser.parse_args(argv)
    try:
        written = generate(options.out)
    except GenerateError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
