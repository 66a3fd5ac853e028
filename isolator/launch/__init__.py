"""Turning a ``ContainerLaunchInfo`` into a running task (Mesos's ``launch.cpp`` and
``linux/fs.cpp``): mount targets and launch-info building, path confinement inside a root,
and applying the mounts in a new mount namespace. ``isolator.launcher`` is the public entry.
"""
