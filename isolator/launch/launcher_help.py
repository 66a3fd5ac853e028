"""The launcher's usage line and ``--help`` text, kept apart from its code."""

from __future__ import annotations

__all__ = ["HELP", "USAGE"]

USAGE = (
    "usage: isolator-launcher [--launch-info=JSON] [--environment-fd=FD] [--] COMMAND [ARG]...\n"
    "       isolator-launcher --rootfs=DIR [--sandbox=DIR] [--runtime=NAME] [--runtime-root=DIR]\n"
    "                         [--launch-info=JSON] [--environment-fd=FD] -- COMMAND [ARG]..."
)

HELP = f"""{USAGE}

Run COMMAND with a Mesos ContainerLaunchInfo applied, as Mesos's launch helper does: a
mount namespace of its own, '/' marked rslave, the bind mounts, the pre-exec commands, the
working directory; then exec COMMAND (it keeps the launcher's pid, stdio and exit status).
Creating a mount namespace and mounting needs root (CAP_SYS_ADMIN).

options:
  --launch-info=JSON   the launch info, a mesos.slave.ContainerLaunchInfo in protobuf's
                       JSON mapping (field names as in the .proto or in lowerCamelCase),
                       as DockerVolumeIsolator.prepare() returns it, e.g.
                       {{"clone_namespaces": [131072], "mounts": [{{"source": "/vol",
                       "target": "/sandbox/data", "flags": 20480}}]}}
                       Applied: clone_namespaces (only CLONE_NEWNS, 131072), mounts
                       (source, target, type, flags, options: each with mount(2), never
                       through a symlink; a read-only bind is remounted MS_RDONLY),
                       pre_exec_commands (each must exit 0), working_directory.
                       Refused (exit 125): rootfs, user, command, enter_namespaces,
                       other namespaces, and any string holding a NUL.
                       Without it COMMAND runs as is, in the caller's mount namespace.
  --environment-fd=FD  read COMMAND's environment from inherited fd FD, as one JSON
                       object of strings (it stays out of /proc/PID/cmdline); default:
                       the launcher's own environment (with --rootfs: PATH only)

a container with its own root filesystem, run by an OCI runtime (docs/oci.md):
  --rootfs=DIR         run COMMAND inside the root filesystem DIR under the runtime:
                       its own mount, PID, IPC and UTS namespaces, no new privileges,
                       Docker's default capabilities, masked /proc paths. The launch
                       info's mounts must target paths under DIR (or the sandbox); a
                       read-only one is recursively read-only. Its user is looked up in
                       DIR's /etc/passwd, its working_directory is inside the container
                       (default: the sandbox, or /), COMMAND is looked up in DIR's PATH
  --sandbox=DIR        the container's host sandbox, bound first at /mnt/mesos/sandbox
  --runtime=NAME       runc (the default), crun, or the absolute path of a runtime
  --runtime-root=DIR   the runtime's --root state directory
                       (default: /run/isolator/oci/<runtime name>)
  --container-id=ID    the runtime's name for the container (default: a new
                       isolator-<random>); it is deleted from the runtime's state when
                       COMMAND ends, and stopped leftovers of killed launchers are
                       deleted when a launcher starts
  --version            print the version and exit
  -h, --help           print this help and exit

exit status:
  125  the launcher failed before exec (bad launch info, not root, a failed mount or
       pre-exec command, a bad working directory; with --rootfs: a target outside
       the rootfs or through a link, an unknown user, the runtime failed); the
       reason is on stderr
  126  COMMAND was found but cannot be executed
  127  COMMAND was not found
  any other: COMMAND's own exit status (a COMMAND killed by a signal: the launcher
       dies of the same signal)
"""
