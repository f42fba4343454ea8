#!/usr/bin/env python3
"""Benchmark of vm-operator against the Tart simulator, with the references that give it meaning.

Run it from a checkout, with the interpreter you serve with (stdlib only):

    .venv/bin/python scripts/bench.py            # full run, Markdown on stdout (~21 min)
    .venv/bin/python scripts/bench.py --quick    # smoke run (~2 min)
    .venv/bin/python scripts/bench.py --reads-only --tls-only   # the read path alone
    .venv/bin/python scripts/bench.py --json     # the same figures as JSON

What it starts, all on 127.0.0.1 and all as separate processes (``sys.executable``):

* the operator (``--cache-ttl 1``, the default design: cache + single-flight) on the Tart
  simulator, with ``TART_SIM_DELAY`` (``--tart-delay``, default 50 ms) added to every Tart
  call to stand for a real Tart's start-up cost;
* the same operator with ``--cache-ttl 0``: the naive design that spawns Tart per request;
* a bare ``http.server.ThreadingHTTPServer`` answering a fixed JSON body with the same
  fairness fixes as the operator (HTTP/1.1 keep-alive, TCP_NODELAY, one write per response):
  the ceiling of this design;
* for the reads over TLS, the same bare server and an operator, both serving HTTPS with one
  certificate made by the operator's ``tls init``.

The reads (``benchmark.reads``) run against the bare server in alternating rounds; the soak
runs their mix for ``--soak-seconds`` with the operator's RSS sampled.

Then what a 1 Hz dashboard over 10 VMs costs the host (``benchmark.hostcost``): Tart processes per
second locally, SSH logins per minute and a cold ``GET /vms/{name}`` over SSH to a throw-away
sshd on 127.0.0.1 (tests/sshd_env.py: Linux and root; ``--no-ssh`` skips it).

Each server gets its own throw-away ``TART_HOME`` and ``TART_SIM_CALL_LOG``. The clients are
threads of this process, one keep-alive connection each; by default they send pre-built
request bytes over a raw socket and parse just the status line and Content-Length
(``--client http.client`` uses the standard library client instead).

Every scenario runs for ``--duration`` seconds (the per-request-spawn mode for
``--naive-duration``) at each client count; for the cached operator, ``--rounds`` rounds
alternate bare server / operator so that ratios to the bare server come from neighbouring
measurements (the median ratio is reported). Tart process counts and the largest number of
``tart list`` running at once come from the call logs (start and end times that the
simulator itself writes). Everything started is stopped on exit, Ctrl-C included.
"""
import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
