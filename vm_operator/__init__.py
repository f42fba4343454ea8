"""vm-operator: an HTTP API for the Tart virtual machines of a Mac host."""

__version__ = "0.1.0"
