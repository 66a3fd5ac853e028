"""Hostile strings print on one line, as sent; names a driver sees carry no control character."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isolator.common.container_ids import format_container_id
from isolator.common.names import control_problem, printable
from isolator.messages import container_id


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name-1.2", "plain name-1.2"),
        ("a\0b", "a\\0b"),
        ("a\nb\r\t", "a\\nb\\r\\t"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x7f\x85", "\\x7f\\x85"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # a bidi override reads backwards
        ("line\u2028break", "line\\u2028break"),
        ("bytes\udcff", "bytes\\udcff"),  # os.fsdecode of an undecodable byte
        ("caf\u00e9 \u00a0\u4e2d", "caf\u00e9 \u00a0\u4e2d"),  # printable, kept
        ("back\\slash", "back\\slash"),
    ],
)
def test_printable_escapes_only_what_hides_or_breaks_a_line(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert "\n" not in printable(raw)


@pytest.mark.parametrize("name", ["a\0b", "a\nb", "\x1b", "a\u202eb", "a\u2029b", "\x9b"])
def test_control_characters_are_a_problem(name: str) -> None:
    assert control_problem(name) == "must not contain control characters"


@pytest.mark.parametrize("name", ["", "vol-1", "a b", "caf\u00e9", "a/b", "..", "\u4e2d\u6587"])
def test_other_names_are_no_problem_of_this_rule(name: str) -> None:
    assert control_problem(name) is None


def test_container_ids_print_escaped() -> None:
    assert format_container_id(container_id("c\n1", container_id("p\0"))) == "p\\0.c\\n1"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)) | st.text())
def test_the_ascii_fast_path_agrees_with_the_category_rule(value: str) -> None:
    # The rule itself, one character at a time: what the fast path must never change.
    hidden = [c for c in value if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs"}]
    assert (control_problem(value) is not None) == bool(hidden)
    assert (printable(value) == value) == (not hidden)
