"""Mesos's protobuf messages, re-exported under their Mesos names.

The ``.proto`` files in this directory are the source of truth (proto2, Mesos's field names,
numbers, labels and defaults, Mesos's packages ``mesos``, ``mesos.slave`` and
``mesos.internal.slave``). The generated ``*_pb2.py`` / ``*_pb2.pyi`` next to them are
committed; after editing a ``.proto`` regenerate them with::

    .venv/bin/python -m isolator.protos.generate

(needs the ``test`` extra: grpcio-tools and mypy-protobuf). ``tests/test_protos.py`` fails when
the committed files differ from what this command produces.
"""

from __future__ import annotations

from isolator.protos.containerizer_pb2 import (
    ContainerConfig,
    ContainerLaunchInfo,
    ContainerMountInfo,
    ContainerState,
)
from isolator.protos.docker_volume_state_pb2 import DockerVolume, DockerVolumes
from isolator.protos.mesos_pb2 import (
    CommandInfo,
    ContainerID,
    ContainerInfo,
    ExecutorID,
    ExecutorInfo,
    Image,
    Parameter,
    Parameters,
    Volume,
)

__all__ = [
    "CommandInfo",
    "ContainerConfig",
    "ContainerID",
    "ContainerInfo",
    "ContainerLaunchInfo",
    "ContainerMountInfo",
    "ContainerState",
    "DockerVolume",
    "DockerVolumes",
    "ExecutorID",
    "ExecutorInfo",
    "Image",
    "Parameter",
    "Parameters",
    "Volume",
]
