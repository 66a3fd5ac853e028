"""The flags reference, written from ``Flags``' own field docs: the README's table and the
flags part of ``isolator-ctl --help``. ``python -m isolator.config.reference`` prints the
table; a test keeps the README's copy equal to it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import re
import sys
from collections.abc import Sequence
from typing import Final

from isolator.config import flags as flags_module
from isolator.config.duration import format_duration
from isolator.config.flags import Flags
from isolator.config.parsing import ENV_PREFIX, Kind, flag_kinds

__all__ = ["default_text", "field_docs", "help_text", "main", "markdown"]

_LITERAL: Final = re.compile(r"``(.+?)``")

_UNSET: Final = "unset"

_HEADER: Final = (
    "| flag | environment | default | meaning |",
    "| --- | --- | --- | --- |",
)


def field_docs() -> dict[str, str]:
    """Each ``Flags`` field's docstring (the string right after it), on one line."""
    tree = ast.parse(inspect.getsource(flags_module))
    (body,) = [
        node.body
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == Flags.__name__
    ]
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def default_text(value: object, kind: Kind) -> str:
    """A default as it is written on the command line (``2mins``, ``false``, ``/a,/b``)."""
    if value is None:
        return _UNSET
    if kind == "bool":
        return "true" if value else "false"
    if kind == "duration":
        assert isinstance(value, float)
        return format_duration(value)
    if kind == "list":
        assert isinstance(value, tuple)
        return ",".join(value)
    return str(value)


def _rows() -> list[tuple[str, str, str, str]]:
    """(name, environment variable, default, meaning) for each flag, in declaration order."""
    docs, kinds, defaults = field_docs(), flag_kinds(Flags), Flags()
    return [
        (
            field.name,
            ENV_PREFIX + field.name.upper(),
            default_text(getattr(defaults, field.name), kinds[field.name]),
            docs[field.name],
        )
        for field in dataclasses.fields(Flags)
    ]


def _markdown_cell(text: str) -> str:
    return _LITERAL.sub(r"`\1`", text).replace("|", "\\|")


def markdown() -> str:
    """The README's flags table (GitHub markdown), ending with a newline."""
    lines = list(_HEADER)
    for name, variable, default, meaning in _rows():
        shown = f"`{_markdown_cell(default)}`" if default != _UNSET else _UNSET
        lines.append(f"| `--{name}` | `{variable}` | {shown} | {_markdown_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def help_text() -> str:
    """The flags for ``--help``: one line each, ``--name=VALUE (default: ...)``."""
    kinds = flag_kinds(Flags)
    lines = []
    for name, _, default, _ in _rows():
        form = f"--[no-]{name}" if kinds[name] == "bool" else f"--{name}=VALUE"
        lines.append(f"  {form} (default: {default})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the flags reference: the README's table, or the ``--help`` lines."""
    parser = argparse.ArgumentParser(
        prog="python -m isolator.config.reference", description=__doc__
    )
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="the README's table (default)")
    form.add_argument("--text", action="store_true", help="one line per flag, as in --help")
    options = parser.parse_args(argv)
    sys.stdout.write(help_text() + "\n" if options.text else markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
