"""The agent that ``test_csi_crash.py`` kills: a CSI isolator in a process of its own.

``python tests/support/csi_crash_agent.py PLAN_JSON`` where the plan is::

    {"config_dir": DIR, "root": DIR, "sandbox": DIR, "plugin": TYPE,
     "actions": [["prepare", "c1", ["a"]], ["cleanup", "c1"], ...]}

It recovers with no known container (whatever a previous round left is an unknown
orphan), prints ``recovered``, then runs the actions in order, printing ``preparing NAME``,
``prepared NAME``, ``cleaning NAME`` and ``cleaned NAME`` (or ``... failed: WHY``), and
``done``. ``ISOLATOR_FAILPOINTS`` (armed first thing) may kill it at any step; the test
may also kill it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from isolator import CsiVolumeIsolator, Flags
from isolator.common import failpoints
from isolator.messages import container_config, container_id, csi_volume

WAIT = 30.0


def say(line: str) -> None:
    print(line, flush=True)


def run(plan: dict[str, Any]) -> int:
    flags = Flags(
        csi_plugin_config_dir=plan["config_dir"],
        csi_root_dir=plan["root"],
        csi_rpc_timeout=5.0,
        csi_retry_budget=2.0,
    )
    isolator = CsiVolumeIsolator.create(flags)
    try:
        isolator.recover([], []).get(WAIT)
        isolator.background().get(WAIT)
        say("recovered")
        for action in plan["actions"]:
            name = action[1]
            if action[0] == "prepare":
                sandbox = os.path.join(plan["sandbox"], name)
                os.makedirs(sandbox, exist_ok=True)
                volumes = [csi_volume(plan["plugin"], v, f"data/{v}") for v in action[2]]
                say(f"preparing {name}")
                future: Any = isolator.prepare(
                    container_id(name), container_config(sandbox, volumes)
                )
                word = "prepared"
            else:
                say(f"cleaning {name}")
                future = isolator.cleanup(container_id(name))
                word = "cleaned"
            try:
                future.get(WAIT)
            except Exception as error:
                say(f"{word} {name} failed: {error}")
            else:
                say(f"{word} {name}")
        say("done")
    finally:
        isolator.stop()
    return 0


if __name__ == "__main__":
    failpoints.arm_from_env()  # importing the isolator arms none
    sys.exit(run(json.loads(sys.argv[1])))
