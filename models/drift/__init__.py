"""Drift monitors: pure, stateful, river-shaped (``update()`` returns signals, ``get()`` a
summary, ``state()`` / ``restore()`` survive a restart). No I/O and no clock: time is the
events' own.

Public surface, by module (imported from there, so that one monitor does not load the others'
dependencies):

- ``models.drift.signal``: ``DriftSignal`` — what every monitor returns (kind, subject,
  statistic, threshold, event time, evidence); the caller turns it into an Alert.
- ``models.drift.errors``: ``ErrorDriftMonitor``, ``ErrorDriftConfig`` — concept drift, river's
  Page–Hinkley on each arm's absolute error.
- ``models.drift.features``: ``FeatureDriftMonitor``, ``FeatureDriftConfig``,
  ``DEFAULT_FEATURES`` — PSI of incoming bookings against the training distribution.
- ``models.drift.predictions``: ``PredictionDriftMonitor``, ``PredictionDriftConfig`` — PSI of
  predicted delays against a reference, per arm.
- ``models.drift.psi``: ``Reference``, ``bin_counts``, ``psi`` — the population stability index.
- ``models.drift.cooldown``, ``models.drift.window``, ``models.drift.persist``: the shared
  cooldown, tumbling-window and state helpers.

Their calibration on the synthetic world (false alarms, detection delays) is a development tool:
``python -m streams.tools.drift_calibration.calibrate``.
"""
