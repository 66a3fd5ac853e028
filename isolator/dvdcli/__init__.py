"""``isolator-dvdcli``: a maintained drop-in for ``dvdcli``, the command Mesos runs to mount
Docker volumes, speaking the plugin protocol through ``isolator.drivers``."""
