"""The Tart adapter: the only place that builds Tart argument lists or reads Tart's text, and
the transports that run it (locally, or on a host over SSH)."""
