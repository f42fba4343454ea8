"""The domain core: cached reads, the run supervisor, start/stop/suspend. No HTTP status, no
socket, no subprocess: it is given a Tart adapter, a state store and a clock."""
