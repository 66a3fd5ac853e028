"""Mesos 1.11's ``volume/csi`` isolator on the actors layer: pre-provisioned CSI volumes
staged and published through a CSI plugin's node service (gRPC), one checkpointed state
machine per volume. ``CsiVolumeIsolator`` is the handle; see ``docs/csi.md``."""
