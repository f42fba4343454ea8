"""The command-line client of vm-operator: ``vm-operator vms``, ``get``, ``start``, … .

It talks to a running operator over HTTP only (``urllib``) and imports nothing of the server
side of the package. ``main(argv)`` runs one command (``argv`` starts with its name) and
returns the exit code; ``COMMANDS`` names the subcommands, for the ``vm-operator`` console
script to dispatch on. ``python -m vm_operator.client COMMAND …`` runs it directly.
"""

from vm_operator.client.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
