"""The outcome path: predictions and actual delays in; outcomes, history, A/B, drift and alerts out.

- ``join`` and ``join_handler``: match each prediction with its actual delay (a Faust table).
- ``recorder_process``, ``recorder``, ``recorder_wiring``, ``recorder_bounds``: a process beside
  the outcome worker writes predictions and outcomes to PostgreSQL, with rolling metrics and alerts.
- ``drift``: the river drift monitors wired to the recorder.
- ``ab_eval`` and ``windows``: A/B figures over the named event-time windows every screen shares.
"""
