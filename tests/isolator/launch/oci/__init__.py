"""Containers with their own rootfs under real OCI runtimes (runc, crun)."""
