"""The isolator's benchmarks: every figure of issue 8, each a ratio against a baseline
measured in the same run (``python -m benchmarks``, ``make bench``).

- ``p1_fanout``: slow drivers overlap across volumes (against the critical path);
- ``p2_overhead``: prepare+cleanup throughput against a bare loop doing the same I/O;
- ``p3_recovery``: recovering known checkpoints and cleaning up unknown orphans;
- ``p4_resources``: threads and memory with 10,000 live containers, and after cleanup;
- ``latency``: one prepare+cleanup round trip;
- ``p5_protocol``, ``p5_csi``: through the reference plugin's protocol, and CSI over gRPC;
- ``oci_task``: a rootfs task's life under runc, with its floor;
- ``floor``: the design's floor, a skeleton actor with the isolator's messages and
  sequences around the bare loop's work, on the latency, P1, P2 and P3 workloads;
- ``hops``, ``profile`` and ``actors_runtime`` (run on their own): a round trip's
  messages, futures and sleeps counted, its time split by area from cProfile, and what
  one ask, future and sequence cost.

``workload`` says exactly what the bare loops do; ``doubles`` holds the drivers. Benchmarks
report, they are not tests: nothing here fails on a slow machine.
"""
