"""The agent that ``test_crash.py`` kills: an isolator in a process of its own.

``python tests/support/crash_agent.py PLAN_JSON`` where the plan is::

    {"checkpoints": DIR, "sockets": DIR, "known": {"c1": ["v0"], ...},
     "actions": [["prepare", "c7", ["v1", "v2"]], ["cleanup", "c1"], ...]}

It recovers with the known containers (the rest are unknown orphans), waits for the orphan
cleanups, prints ``recovered``, waits for a line on stdin (the test looks at the plugin
meanwhile), then runs the actions in order, printing ``prepared NAME`` / ``cleaned NAME``
(or ``... failed``) as each ends, and ``done``. It arms the failpoints
``ISOLATOR_FAILPOINTS`` names first (importing the isolator arms none), so one may kill it
at any step; the test may also kill it at any moment.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from actors import Future
from isolator import DockerVolumeIsolator, Flags
from isolator.common import failpoints
from isolator.drivers import Backoff, DockerPluginClient
from isolator.messages import container_config, container_id, docker_volume
from isolator.protos import ContainerState

DRIVER = "crash"
WAIT = 30.0


def say(line: str) -> None:
    print(line, flush=True)


def run(plan: dict[str, Any]) -> int:
    flags = Flags(
        docker_volume_checkpoint_dir=plan["checkpoints"],
        docker_plugin_socket_dir=plan["sockets"],
        docker_plugin_spec_dirs=(),
    )
    client = DockerPluginClient(
        socket_dir=plan["sockets"], spec_dirs=[], backoff=Backoff(budget=5.0)
    )
    isolator = DockerVolumeIsolator.create(flags, client)
    sandbox = os.path.join(plan["checkpoints"], os.pardir, "sandbox")
    os.makedirs(sandbox, exist_ok=True)
    try:
        states = [
            ContainerState(container_id=container_id(name), pid=1, directory=sandbox)
            for name in plan["known"]
        ]
        isolator.recover(states, []).get(WAIT)
        failed = [str(c.failure()) for c in isolator.orphan_cleanups().get(WAIT) if c.is_failed()]
        say("recovered" + (f" with failed orphan cleanups: {failed}" if failed else ""))
        sys.stdin.readline()
        for action in plan["actions"]:
            name = action[1]
            future: Future[Any]
            if action[0] == "prepare":
                volumes = [docker_volume(DRIVER, v, f"data/{v}") for v in action[2]]
                future = isolator.prepare(container_id(name), container_config(sandbox, volumes))
                word = "prepared"
            else:
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
        client.close()
    return 0


if __name__ == "__main__":
    failpoints.arm_from_env()
    sys.exit(run(json.loads(sys.argv[1])))
