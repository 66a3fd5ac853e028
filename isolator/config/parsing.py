"""Flags the way a Mesos agent reads them: its command line and its ``MESOS_`` environment.

The rules are stout's (``FlagsBase::load``), so an operator passes this isolator the same
text as the agent:

- ``--name=value``; names are case-insensitive; surrounding whitespace is trimmed;
- a boolean flag: ``--name`` (true), ``--no-name`` (false) or ``--name=true|false|1|0``
  (``--name=`` is ``--name``); ``--no-name=value`` is an error;
- a duration: stout's, a number with a unit: ``120secs``, ``2mins``, ``500ms`` (a bare
  number is refused, as Mesos refuses it: seconds or minutes?);
- a list: comma-separated, ``--docker_plugin_spec_dirs=/a,/b`` (``=`` alone: empty);
- a flag given twice, or as ``--name`` and ``--no-name``, is an error;
- an unknown flag is an error (stout's ``unknowns=false``, as the agent loads its flags),
  unless ``unknowns=True``: then it is skipped, so an agent's whole command line can be
  passed; an argument that is not a flag (no leading ``--``) is always an error;
- the environment: ``MESOS_<NAME>`` (upper or lower case) for each known flag; other
  ``MESOS_`` variables belong to the agent's other flags and are ignored. The command
  line wins over the environment (``Flags.from_args(argv, base=Flags.from_env())``).

Not supported: stout's ``file://`` values (read from a file); a value is taken as written.

This module turns text into ``Flags``' keyword arguments (``kinds`` says how to read each,
from its type); ``Flags`` itself checks the values, with the same errors for every source.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from isolator.config.duration import DurationError, parse_duration

__all__ = [
    "ENV_PREFIX",
    "FlagError",
    "Kind",
    "flag_kinds",
    "invalid_flag",
    "parse_command_line",
    "parse_environment",
]

ENV_PREFIX: Final = "MESOS_"
"""The agent's environment prefix: ``MESOS_DOCKER_VOLUME_CHECKPOINT_DIR``."""

Kind = Literal["bool", "duration", "list", "string"]
"""How a flag's text is read: by the type of its ``Flags`` field."""

_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
_NEGATION: Final = "no-"


class FlagError(ValueError):
    """A command line or environment that cannot be read into flags; the message says why."""


def invalid_flag(name: str, value: object, problem: str, expected: str) -> FlagError:
    """The one wording of a bad value, from the constructor or from text."""
    return FlagError(f"Invalid flag '{name}': {value!r} {problem}; expected {expected}")


def flag_kinds(cls: type) -> dict[str, Kind]:
    """Each field of the dataclass ``cls`` and how its text is read, from its type:
    ``bool``, ``float`` (a duration), ``tuple`` (a list); anything else is a string."""
    hints = typing.get_type_hints(cls)
    kinds: dict[str, Kind] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if hint is bool:
            kinds[field.name] = "bool"
        elif hint is float:
            kinds[field.name] = "duration"
        elif typing.get_origin(hint) is tuple:
            kinds[field.name] = "list"
        else:
            kinds[field.name] = "string"
    return kinds


def parse_command_line(
    argv: Sequence[str], kinds: Mapping[str, Kind], *, unknowns: bool = False
) -> dict[str, Any]:
    """The keyword arguments ``argv`` gives; raises ``FlagError``. See the module's rules."""
    values: dict[str, str | None] = {}
    for raw in argv:
        arg = raw.strip()
        if not arg.startswith("--") or arg == "--":
            raise FlagError(
                f"Unexpected argument '{raw}': flags are written --name=value "
                "(--name or --no-name for a boolean)"
            )
        name, equals, value = arg[2:].partition("=")
        name = name.lower()
        base = name.removeprefix(_NEGATION)
        if name in values or base in values or _NEGATION + base in values:
            raise FlagError(f"Duplicate flag '{name}' on command line")
        values[name] = value if equals else None
    return _load(values.items(), kinds, unknowns=unknowns)


def parse_environment(
    environ: Mapping[str, str], kinds: Mapping[str, Kind], *, prefix: str = ENV_PREFIX
) -> dict[str, Any]:
    """The keyword arguments ``environ`` gives through ``<prefix><NAME>`` variables."""
    values: list[tuple[str, str | None]] = []
    for key, value in sorted(environ.items()):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :].lower()
        if name.removeprefix(_NEGATION) in kinds:
            values.append((name, value))
    return _load(values, kinds, unknowns=True)


def _load(
    values: Iterable[tuple[str, str | None]], kinds: Mapping[str, Kind], *, unknowns: bool
) -> dict[str, Any]:
    """stout's ``load(values)``: names resolved, ``no-`` applied, values read by kind."""
    loaded: dict[str, Any] = {}
    for name, value in values:
        negated = name.startswith(_NEGATION) and name not in kinds
        flag = name.removeprefix(_NEGATION) if negated else name
        kind = kinds.get(flag)
        if kind is None:
            if unknowns:
                continue
            via = f" via '{name}'" if negated else ""
            raise FlagError(f"Failed to load unknown flag '{flag}'{via}")
        if kind == "bool":
            loaded[flag] = _boolean(flag, name, value, negated=negated)
            continue
        if negated:
            raise FlagError(f"Failed to load non-boolean flag '{flag}' via '{name}'")
        if value is None:
            raise FlagError(f"Failed to load non-boolean flag '{flag}': Missing value")
        loaded[flag] = _read(flag, kind, value)
    return loaded


def _boolean(flag: str, name: str, value: str | None, *, negated: bool) -> bool:
    if not value:  # --name, --no-name, --name=
        return not negated
    if negated:
        raise FlagError(f"Failed to load boolean flag '{flag}' via '{name}' with value '{value}'")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise invalid_flag(flag, value, "is not a boolean", "true, false, 1 or 0")


def _read(flag: str, kind: Kind, value: str) -> Any:
    if kind == "duration":
        try:
            return parse_duration(value)
        except DurationError as error:
            raise invalid_flag(
                flag, value, f"is not a duration ({error})", "a number and a unit, e.g. '2mins'"
            ) from None
    if kind == "list":
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value
