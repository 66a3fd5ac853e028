"""The flags reference comes from ``Flags``' own metadata, and ``TABLE_FILE`` carries it
unchanged."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from isolator.config import reference
from isolator.config.flags import Flags
from isolator.config.reference import (
    TABLE_BEGIN,
    TABLE_END,
    TABLE_FILE,
    field_docs,
    help_text,
    markdown,
    update_table,
)
from tests.support.repo import REPO


def documented_table(root: Path = REPO) -> str:
    text = (root / TABLE_FILE).read_text(encoding="utf-8")
    match = re.search(re.escape(TABLE_BEGIN) + "(.*?)" + re.escape(TABLE_END), text, re.DOTALL)
    assert match is not None, f"{TABLE_FILE} has no generated flags table"
    return match.group(1)


def test_the_documented_table_is_the_generated_one() -> None:
    assert documented_table() == markdown(), (
        f"{TABLE_FILE}'s flags table is stale: run `python -m isolator.config.reference --update`"
    )


def test_update_rewrites_only_the_table(tmp_path: Path) -> None:
    target = tmp_path / TABLE_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"before\n{TABLE_BEGIN}| stale |\n{TABLE_END}after\n", encoding="utf-8")
    assert update_table(tmp_path) is True
    assert (
        target.read_text(encoding="utf-8") == f"before\n{TABLE_BEGIN}{markdown()}{TABLE_END}after\n"
    )
    assert update_table(tmp_path) is False
    target.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no flags table markers"):
        update_table(tmp_path)


def test_the_reference_parses_no_source() -> None:
    source = Path(reference.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^import (ast|inspect)|^from (ast|inspect) ", source, re.MULTILINE)


def test_every_flag_is_documented_and_in_the_table() -> None:
    docs = field_docs()
    names = [field.name for field in dataclasses.fields(Flags)]
    assert list(docs) == names
    undocumented = [name for name, doc in docs.items() if len(doc) <= 20]
    assert not undocumented, f"give these Flags fields metadata=_help(...): {undocumented}"
    rows = markdown().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [f"--{name}" for name in names]


def test_the_table_shows_defaults_as_flags_are_written() -> None:
    rows = {row.split("`")[1]: row for row in markdown().splitlines()[2:]}
    assert "| `2mins` |" in rows["--docker_volume_mount_timeout"]
    assert "| `10secs` |" in rows["--docker_plugin_retry_budget"]
    assert "| `false` |" in rows["--docker_volume_chown"]
    assert "| `/etc/docker/plugins,/usr/lib/docker/plugins` |" in rows["--docker_plugin_spec_dirs"]
    assert "| unset |" in rows["--docker_plugin_mount_id"]
    assert "`MESOS_DOCKER_VOLUME_CHECKPOINT_DIR`" in rows["--docker_volume_checkpoint_dir"]


def test_the_help_lines_name_every_flag_in_its_written_form() -> None:
    lines = help_text().splitlines()
    assert "  --[no-]docker_volume_chown (default: false)" in lines
    assert "  --docker_volume_mount_timeout=VALUE (default: 2mins)" in lines
    assert len(lines) == len(dataclasses.fields(Flags))


def test_the_module_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "isolator.config.reference", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout == markdown()
    assert done.stderr == ""
