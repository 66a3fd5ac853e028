"""kubelet's ``csi_operations_seconds{method_name, driver_name, grpc_status_code}`` from a
CSI isolator talking to the reference plugin (the ``[metrics]`` extra)."""

from __future__ import annotations

import os

import pytest

from isolator import CsiVolumeIsolator, IsolatorError
from isolator.messages import container_config, container_id, csi_volume
from tests.support.csi_isolators import PLUGIN_TYPE, csi_setup
from tests.support.waits import WAIT

prometheus_client = pytest.importorskip("prometheus_client")
from isolator.contrib.prometheus import PrometheusObserver  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root"),
]


def test_each_csi_call_is_observed_with_its_status_code() -> None:
    registry = prometheus_client.CollectorRegistry()
    with csi_setup() as csi:
        csi.volume("vol")
        isolator = CsiVolumeIsolator.create(
            csi.flags(), observer=PrometheusObserver(registry=registry)
        )
        try:
            isolator.recover([], []).get(WAIT)
            good = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "vol", "d")])
            isolator.prepare(container_id("c1"), good).get(WAIT)
            isolator.cleanup(container_id("c1")).get(WAIT)
            bad = container_config(str(csi.sandbox), [csi_volume(PLUGIN_TYPE, "ghost", "d")])
            with pytest.raises(IsolatorError, match="NOT_FOUND"):
                isolator.prepare(container_id("c2"), bad).get(WAIT)
        finally:
            isolator.stop()

    def count(method: str, code: str = "OK") -> float | None:
        labels = {"method_name": method, "driver_name": PLUGIN_TYPE, "grpc_status_code": code}
        value = registry.get_sample_value("csi_operations_seconds_count", labels)
        return None if value is None else float(value)

    assert count("NodeGetCapabilities") == 1  # once per plugin
    assert count("NodeStageVolume") == 1
    assert count("NodePublishVolume") == 1
    assert count("NodeUnpublishVolume") == 1
    assert count("NodeUnstageVolume") == 1
    assert count("NodeStageVolume", "NOT_FOUND") == 1
    operations = "isolator_operation_duration_seconds_count"

    def operation(name: str, status: str) -> float | None:
        labels = {"operation": name, "driver": "", "status": status}
        value = registry.get_sample_value(operations, labels)
        return None if value is None else float(value)

    assert operation("prepare", "success") == 1
    assert operation("prepare", "error") == 1
    assert operation("cleanup", "success") == 1
    assert operation("recover", "success") == 1
