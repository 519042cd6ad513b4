"""River's Page–Hinkley detector as JSON data: its parameters and its running numbers.

River (0.26) has no public save/restore for a detector besides pickling it. Page–Hinkley's whole
state is a handful of numbers: the running mean of the inputs (count and value), the two
cumulative sums and their extremes, and whether the last update alarmed. They are read from and
written back to the detector's own fields; a river version that keeps them elsewhere is refused
at restore (ValueError: the monitor starts afresh) rather than restored wrongly.
"""

from __future__ import annotations

from typing import Any

from river import drift

from models.drift.persist import decode_float, encode_float, float_of, jsonable

#: The detector's running numbers, by the names river gives them.
_SUMS = ("_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease")


def detector_data(detector: drift.PageHinkley) -> dict[str, Any]:
    mean = detector._x_mean
    return {
        "params": jsonable(detector._get_params()),
        "mean_n": encode_float(mean.n),
        "mean": encode_float(mean._mean),
        "drift_detected": bool(detector.drift_detected),
        **{name: encode_float(getattr(detector, name)) for name in _SUMS},
    }


def restore_detector(detector: drift.PageHinkley, data: Any) -> drift.PageHinkley:
    """``detector`` (fresh, built with the saved parameters) continuing from
    :func:`detector_data`; ValueError when the data does not fit it."""
    if not isinstance(data, dict) or data.get("params") != jsonable(detector._get_params()):
        raise ValueError("Page-Hinkley state saved with other parameters")
    mean: Any = getattr(detector, "_x_mean", None)
    fields_known = all(isinstance(getattr(detector, n, None), int | float) for n in _SUMS)
    if not fields_known or not hasattr(mean, "n") or not hasattr(mean, "_mean"):
        raise ValueError("this river version keeps Page-Hinkley's state in other fields")
    n = float_of(data, "mean_n")
    if not n >= 0:
        raise ValueError("Page-Hinkley state with a negative count")
    flagged = data.get("drift_detected")
    if not isinstance(flagged, bool):
        raise ValueError("Page-Hinkley state without its alarm flag")
    mean.n, mean._mean = n, float_of(data, "mean")
    for name in _SUMS:
        setattr(detector, name, decode_float(data.get(name)))
    detector._drift_detected = flagged
    return detector
