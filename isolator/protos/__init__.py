"""Mesos's protobuf messages, re-exported under their Mesos names.

The ``.proto`` files in this directory are the source of truth: Mesos's field names, numbers,
labels and defaults, in Mesos's packages ``mesos``, ``mesos.slave``, ``mesos.internal.slave``
and ``mesos.csi.state`` (proto3 where Mesos's file is). ``CSIVolume`` here is the CSI
isolator's checkpoint entry; a task's request is ``Volume.Source.CSIVolume``. The CSI spec's
own messages and gRPC stubs (``csi.v1``, a subset) are ``isolator.protos.csi_pb2`` and
``isolator.protos.csi_pb2_grpc``. The generated ``*_pb2*.py`` / ``*.pyi`` next to them are
committed; after editing a ``.proto`` regenerate them with::

    .venv/bin/python -m isolator.protos.generate

(needs the ``test`` extra: grpcio-tools and mypy-protobuf). ``tests/isolator/protos/test_protos.py``
fails when the committed files differ from what this command produces.
"""

from __future__ import annotations

from isolator.protos.containerizer_pb2 import (
    ContainerConfig,
    ContainerLaunchInfo,
    ContainerMountInfo,
    ContainerState,
)
from isolator.protos.csi_isolator_state_pb2 import CSIVolume, CSIVolumes
from isolator.protos.csi_state_pb2 import VolumeState
from isolator.protos.docker_volume_state_pb2 import DockerVolume, DockerVolumes
from isolator.protos.mesos_pb2 import (
    CommandInfo,
    ContainerID,
    ContainerInfo,
    CSIPluginContainerInfo,
    CSIPluginEndpoint,
    CSIPluginInfo,
    ExecutorID,
    ExecutorInfo,
    Image,
    Parameter,
    Parameters,
    Secret,
    Volume,
)

__all__ = [
    "CSIPluginContainerInfo",
    "CSIPluginEndpoint",
    "CSIPluginInfo",
    "CSIVolume",
    "CSIVolumes",
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
    "Secret",
    "Volume",
    "VolumeState",
]
