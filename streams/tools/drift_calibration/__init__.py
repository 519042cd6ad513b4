"""Calibration of the drift monitors (:mod:`models.drift`) on the synthetic world:
``python -m streams.tools.drift_calibration.calibrate``."""
