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
- ``models.drift.scenario``: synthetic outcome and booking streams, with shifts.
- ``models.drift.calibrate``: ``python -m models.drift.calibrate`` — false alarms and detection
  delays of the default configurations on the synthetic world.
"""
