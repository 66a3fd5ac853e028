"""Apache Mesos's ``docker/volume`` isolator, ported to Python on the ``actors`` layer.

The modules follow Mesos's isolator folder, one concern each: ``isolator`` (the actor),
``drivers`` (the clients of the outside world), ``paths`` (where state lives), ``state``
(the checkpoint format), ``flags``, ``protos`` (Mesos's messages), plus ``plugin`` (a
reference Docker volume plugin) and ``launcher`` (applies a launch info).
"""

from isolator.drivers.base import DriverClient
from isolator.errors import CheckpointError, DriverError, IsolatorError
from isolator.flags import Flags
from isolator.isolator import DockerVolumeIsolator, DockerVolumeIsolatorActor

__all__ = [
    "CheckpointError",
    "DockerVolumeIsolator",
    "DockerVolumeIsolatorActor",
    "DriverClient",
    "DriverError",
    "Flags",
    "IsolatorError",
]
