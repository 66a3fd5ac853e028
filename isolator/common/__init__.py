"""What every part of the package shares, one small module per idea (Mesos keeps these in
stout): errors and ``strerror``, names and container IDs, durable file writes, Linux
constants, the observer, console logging, failpoints, and awaiting a file descriptor.

Nothing here knows about a particular isolator; both ``docker`` and ``csi`` build on it.
"""
