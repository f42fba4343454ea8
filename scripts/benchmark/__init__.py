"""The benchmark behind ``scripts/bench.py``, one module per job:

- ``cli``: options and the entry point; ``run``: a whole run, in order;
- ``servers``: the servers under test (operator, operator over SSH, the bare reference from
  ``bare``), started and stopped; ``calllog``: the simulator's record of Tart calls;
- ``load`` and ``drive``: the client threads and one scenario's figures; ``probes``: single
  requests (a start, the cost of a Tart call); ``lifecycle``, ``events``, ``hostcost``: creates,
  watchers and a dashboard's cost to the host, each on an operator of its own;
- ``records``: the typed results; ``targets``: the goals and PASS/MISS; ``markdown``: the report.
"""
