"""Prometheus metrics for an isolator, named as kubelet names its volume metrics.

Needs the ``[metrics]`` extra (``prometheus_client``)::

    from isolator.contrib.prometheus import PrometheusObserver
    isolator = DockerVolumeIsolator.create(flags, observer=PrometheusObserver())
    prometheus_client.start_http_server(9100)   # or mount make_wsgi_app() in your server

| metric | type | labels |
| --- | --- | --- |
| ``isolator_operation_duration_seconds`` | histogram | ``operation``, ``driver``, ``status`` |
| ``isolator_operation_errors_total`` | counter | ``operation``, ``driver`` |
| ``isolator_volumes_in_use`` | gauge | ``driver`` |
| ``isolator_containers`` | gauge | |
| ``isolator_volume_sequences`` | gauge | |
| ``csi_operations_seconds`` | histogram | ``method_name``, ``driver_name``, ``grpc_status_code`` |

``operation`` is ``prepare``, ``cleanup``, ``recover`` (``driver`` empty), ``mount`` or
``unmount``; ``status`` is ``success`` or ``error``. ``csi_operations_seconds`` is kubelet's
metric of the same name: one observation per CSI call of ``CsiVolumeIsolator``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from isolator.common.observe import Gauges, Observer, OperationEvent

__all__ = ["DURATION_BUCKETS", "PrometheusObserver"]

DURATION_BUCKETS: Final = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    25.0,
    50.0,
    120.0,
    300.0,
    600.0,
)
"""kubelet's ``storage_operation_duration_seconds`` buckets, up to Mesos's 10 min unmount."""


class PrometheusObserver(Observer):
    """Records the isolator's reports in ``registry`` (the default registry if none)."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        self.duration = Histogram(
            "isolator_operation_duration_seconds",
            "How long isolator operations and volume driver calls took.",
            ["operation", "driver", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "isolator_operation_errors",
            "Isolator operations and volume driver calls that failed.",
            ["operation", "driver"],
            registry=registry,
        )
        self.volumes_in_use = Gauge(
            "isolator_volumes_in_use",
            "Volumes that at least one container holds, by driver.",
            ["driver"],
            registry=registry,
        )
        self.containers = Gauge(
            "isolator_containers", "Containers the isolator knows.", registry=registry
        )
        self.volume_sequences = Gauge(
            "isolator_volume_sequences", "Per-volume sequences alive.", registry=registry
        )
        self.csi_operations = Histogram(
            "csi_operations_seconds",
            "How long CSI calls took, by method, plugin and gRPC status code.",
            ["method_name", "driver_name", "grpc_status_code"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def on_operation(self, event: OperationEvent) -> None:
        self.duration.labels(event.operation, event.driver, event.status).observe(event.seconds)
        if event.error is not None:
            self.errors.labels(event.operation, event.driver).inc()

    def on_csi_operation(self, method: str, driver: str, code: str, seconds: float) -> None:
        self.csi_operations.labels(method, driver, code).observe(seconds)

    def on_gauges(self, gauges: Gauges) -> None:
        self.containers.set(gauges.containers)
        self.volume_sequences.set(gauges.volume_sequences)
        for driver, count in gauges.volumes_in_use.items():
            self.volumes_in_use.labels(driver).set(count)
