"""``make bench``: delaycast's benchmark against the limits of its machine.

:mod:`streams.bench.__main__` runs it; :mod:`~streams.bench.runs` and
:mod:`~streams.bench.latency` are the scenarios; :mod:`~streams.bench.stats` and
:mod:`~streams.bench.report` the arithmetic and the output; ``consume_only``, ``noop_agent`` and
``old_design`` the bench-only programs of scenarios (a), (b) and (f).
"""
