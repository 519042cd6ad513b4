"""What operators touch: the monitoring API and dashboard (``api``), the ``delaycast`` CLI
(``cli``), flag changes, dead-letter operations, preflight checks and the weather probe."""
