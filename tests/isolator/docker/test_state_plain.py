"""The plain-shape reading of a checkpoint (``state._plain_volumes``) reads exactly what
protobuf's ``json_format.ParseDict`` reads, and leaves everything else to it."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from hypothesis import example, given, settings
from hypothesis import strategies as st

from isolator.docker import state
from isolator.docker.state import VolumeKey, decode_volumes
from isolator.protos import DockerVolumes

_text = st.text(max_size=6) | st.sampled_from(["", "d", "\u00e9", "\ud800", "\x00"])
_value: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_text, inner, max_size=2),
    max_leaves=4,
)
_entry = st.fixed_dictionaries(
    {"driver": _text | _value, "name": _text | _value},
    optional={"driver_options": _value, "other": _value},
) | st.dictionaries(st.sampled_from(["driver", "name", "other"]), _text | _value, max_size=3)
_document = st.dictionaries(
    st.sampled_from(["volumes", "other"]),
    st.lists(_entry | _value, max_size=3) | _value,
    max_size=2,
)


def _by_protobuf(document: dict[str, Any]) -> list[VolumeKey] | None:
    message = DockerVolumes()
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError):
        return None
    if not message.IsInitialized():
        return None
    return [VolumeKey(volume.driver, volume.name) for volume in message.volumes]


@settings(max_examples=400, deadline=None)
@given(_document)
@example({"volumes": [{"driver": "d", "name": "n", "driver_options": 1}]})
@example({"volumes": [{"driver": "d", "name": 1}]})
def test_what_the_plain_reading_accepts_protobuf_reads_the_same(document: dict[str, Any]) -> None:
    plain = state._plain_volumes(document)
    if plain is not None:
        assert plain == _by_protobuf(document)


@given(st.lists(st.tuples(_text, _text), max_size=4))
def test_a_plain_document_of_ascii_names_takes_the_plain_reading(
    names: list[tuple[str, str]],
) -> None:
    document = {"volumes": [{"driver": d, "name": n} for d, n in names]}
    ascii_only = all(d.isascii() and n.isascii() for d, n in names)
    assert (state._plain_volumes(document) is not None) == ascii_only


def test_mesos_bytes_read_the_same_through_either_path() -> None:
    content = b'{"volumes":[{"driver":"rexray","name":"vol1"},{"driver":"convoy","name":"vol2"}]}'
    expected = [VolumeKey("rexray", "vol1"), VolumeKey("convoy", "vol2")]
    assert decode_volumes(content) == expected
    assert _by_protobuf(json.loads(content)) == expected
