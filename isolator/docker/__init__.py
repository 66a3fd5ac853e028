"""The ``docker/volume`` isolator (Mesos's ``isolators/docker/volume/``): its actor, the
handle embedders call, the container table, one sequence per volume, what a task asks for,
and the checkpoint format and paths."""
