"""The agent's settings: ``Flags``, parsed by stout's rules from arguments or ``MESOS_``
variables, their defaults (each written once), stout's durations, and the generated
reference table (Mesos's ``slave/flags.hpp``)."""
