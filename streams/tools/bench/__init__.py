"""``make bench``: delaycast's benchmark against the limits of its machine.

:mod:`streams.tools.bench.__main__` runs it; :mod:`~streams.tools.bench.runs` and
:mod:`~streams.tools.bench.latency` are the scenarios; :mod:`~streams.tools.bench.stats` and
:mod:`~streams.tools.bench.report` the arithmetic and the output; ``consume_only``, ``noop_agent``
and
``old_design`` the bench-only programs of scenarios (a), (b) and (f).
"""
