"""The Faust worker: the app, its agents (thin loops) and the runtime that wires them to the two
paths (:mod:`streams.predict`, :mod:`streams.outcomes`)."""
