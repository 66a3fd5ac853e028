"""The ``[metrics]`` extra: every named metric is exposed after a prepare and a cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from isolator import DockerVolumeIsolator, Flags, IsolatorError
from isolator.common.observe import OperationEvent
from isolator.messages import container_config, container_id, docker_volume
from isolator.testing import RecordingDriverClient
from tests.support.isolators import sandbox
from tests.support.waits import WAIT

prometheus_client = pytest.importorskip("prometheus_client")
from isolator.contrib.prometheus import PrometheusObserver  # noqa: E402


def sample(registry: object, name: str, **labels: str) -> float | None:
    value = registry.get_sample_value(name, labels)  # type: ignore[attr-defined]
    return None if value is None else float(value)


def test_every_metric_after_a_prepare_and_a_cleanup(
    tmp_path: Path, flags: Flags, client: RecordingDriverClient
) -> None:
    registry = prometheus_client.CollectorRegistry()
    observer = PrometheusObserver(registry=registry)
    client.script("unmount", "d", "b", IsolatorError("busy"))
    isolator = DockerVolumeIsolator.create(flags, client, observer=observer)
    try:
        config = container_config(
            sandbox(tmp_path, "s"), [docker_volume("d", "a", "x"), docker_volume("d", "b", "y")]
        )
        client.hold("mount", "d", "a")
        preparing = isolator.prepare(container_id("c"), config)
        client.wait_for_calls(1)
        # A sequence lives while its volume has a call queued or running: both now.
        assert sample(registry, "isolator_volume_sequences") == 2
        client.release("mount", "d", "a", "/mnt/a")
        preparing.get(WAIT)
        assert sample(registry, "isolator_volumes_in_use", driver="d") == 2
        assert sample(registry, "isolator_containers") == 1
        assert sample(registry, "isolator_volume_sequences") == 0  # held, but idle
        with pytest.raises(IsolatorError, match=r"^busy$"):
            isolator.cleanup(container_id("c")).get(WAIT)
        isolator.sequence_count().get(WAIT)
    finally:
        isolator.stop()
    count = "isolator_operation_duration_seconds_count"
    assert sample(registry, count, operation="prepare", driver="", status="success") == 1
    assert sample(registry, count, operation="cleanup", driver="", status="error") == 1
    assert sample(registry, count, operation="mount", driver="d", status="success") == 2
    assert sample(registry, count, operation="unmount", driver="d", status="success") == 1
    assert sample(registry, count, operation="unmount", driver="d", status="error") == 1
    assert sample(registry, "isolator_operation_errors_total", operation="unmount", driver="d") == 1
    assert sample(registry, "isolator_operation_errors_total", operation="cleanup", driver="") == 1
    assert sample(registry, "isolator_volumes_in_use", driver="d") == 0
    assert sample(registry, "isolator_containers") == 1  # its cleanup failed: stranded
    assert sample(registry, "isolator_volume_sequences") == 0
    text = prometheus_client.generate_latest(registry).decode()
    for name in (
        "isolator_operation_duration_seconds_bucket",
        "isolator_operation_errors_total",
        "isolator_volumes_in_use",
        "isolator_containers",
        "isolator_volume_sequences",
    ):
        assert name in text


def test_observers_on_separate_registries_count_apart() -> None:
    first, second = prometheus_client.CollectorRegistry(), prometheus_client.CollectorRegistry()
    PrometheusObserver(registry=first).on_operation(OperationEvent("mount", 0.5, driver="d"))
    PrometheusObserver(registry=second)
    count = "isolator_operation_duration_seconds_count"
    assert sample(first, count, operation="mount", driver="d", status="success") == 1
    assert sample(second, count, operation="mount", driver="d", status="success") is None
