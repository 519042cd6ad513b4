"""The champion model and the heuristic a worker serves, reloaded when the champion changes.

Loading never raises: a missing or bad artifact leaves ``model`` empty and records why, and the
agent serves the heuristic with that reason as the fallback_reason.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from connectors.model_store import (
    ArtifactAreaMismatch,
    ArtifactCorrupt,
    ArtifactFeatureMismatch,
    ArtifactMissing,
    champion_version,
    load_champion,
    load_heuristic,
    read_metadata,
)
from models.area import GENEVA, ServiceArea
from models.heuristic import DEFAULT_PARAMS, HeuristicParams
from models.interval import quantiles_from_metadata, scale_from_metadata
from schemas import FallbackReason

log = logging.getLogger("delaycast.models")


class ModelHolder:
    def __init__(self, model_dir: Path, area: ServiceArea = GENEVA) -> None:
        self.model_dir = model_dir
        self.area = area
        self.model: Any | None = None
        self.metadata: dict[str, Any] = {}
        self.heuristic: HeuristicParams = DEFAULT_PARAMS
        # Calibrated P90 scales (models.interval) of the model and the heuristic served; None
        # when the artifact has none, and then predictions carry no P90.
        self.model_p90_scale: float | None = None
        self.heuristic_p90_scale: float | None = None
        # ... and the quantiles of their normalised excess, for the chance of a late pickup.
        self.model_quantiles: tuple[float, ...] | None = None
        self.heuristic_quantiles: tuple[float, ...] | None = None
        self.unavailable: FallbackReason | None = FallbackReason.NO_MODEL
        self.detail: str | None = "not loaded yet"
        self._signature: tuple[Any, ...] | None = None

    def _current_signature(self) -> tuple[Any, ...]:
        champion = self.model_dir / "CHAMPION"
        try:
            stat = champion.stat()
            name = champion.read_text().strip()
        except OSError:
            return ("absent",)
        artifact = self.model_dir / name
        parts: list[Any] = [name, stat.st_mtime_ns]
        for filename in ("model.joblib", "metadata.json", "heuristic.json"):
            try:
                st = (artifact / filename).stat()
                parts.append((st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append(None)
        return tuple(parts)

    def reload_if_changed(self) -> bool:
        """Load the champion when it changed since the last call (blocking; run it off the loop)."""
        signature = self._current_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self.heuristic = self._load_heuristic()
        self.heuristic_p90_scale, self.heuristic_quantiles = self._heuristic_interval()
        try:
            loaded = load_champion(self.model_dir, self.area)
        except ArtifactMissing as exc:
            self._unavailable(FallbackReason.NO_MODEL, str(exc))
        except ArtifactAreaMismatch as exc:
            # Its heuristic learned another area's hours too: the default rules answer.
            self.heuristic = DEFAULT_PARAMS
            self.heuristic_p90_scale = self.heuristic_quantiles = None
            self._unavailable(FallbackReason.AREA_MISMATCH, str(exc))
        except ArtifactFeatureMismatch as exc:
            self._unavailable(FallbackReason.MISSING_FEATURE, str(exc))
        except ArtifactCorrupt as exc:
            self._unavailable(FallbackReason.BAD_ARTIFACT, str(exc))
        except Exception as exc:  # any other failure to load is a bad artifact, never a crash
            self._unavailable(FallbackReason.BAD_ARTIFACT, f"{type(exc).__name__}: {exc}")
        else:
            self.model = loaded.predictor
            self.metadata = dict(loaded.metadata)
            self.model_p90_scale = scale_from_metadata(self.metadata, "model")
            self.model_quantiles = quantiles_from_metadata(self.metadata, "model")
            self.unavailable = None
            self.detail = None
            log.info("[ML] serving model %s from %s", self.model.version, self.model_dir)
        return True

    def _load_heuristic(self) -> HeuristicParams:
        try:
            params = load_heuristic(self.model_dir)
        except Exception as exc:
            log.warning("[ML] fitted heuristic unreadable (%s); using the defaults", exc)
            return DEFAULT_PARAMS
        return params

    def _heuristic_interval(self) -> tuple[float | None, tuple[float, ...] | None]:
        if self.heuristic is DEFAULT_PARAMS:
            return None, None
        try:
            version = champion_version(self.model_dir)
            metadata = read_metadata(self.model_dir, version) if version else {}
        except Exception:  # the heuristic's interval is a nicety: never a reason to fail
            return None, None
        return (
            scale_from_metadata(metadata, "heuristic"),
            quantiles_from_metadata(metadata, "heuristic"),
        )

    def _unavailable(self, reason: FallbackReason, detail: str) -> None:
        self.model = None
        self.model_p90_scale = None
        self.model_quantiles = None
        self.metadata = {}
        self.unavailable = reason
        self.detail = detail
        log.warning("[ML] no model served (%s: %s); the heuristic answers", reason.value, detail)


RELOAD_INTERVAL_S = 5.0


async def reload_forever(
    models: ModelHolder, executor: Executor, interval_s: float = RELOAD_INTERVAL_S
) -> None:
    """Pick up a new champion (promote, rollback, retrain) within ``interval_s``; runs until
    cancelled. The load runs in ``executor``, off the event loop."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        await loop.run_in_executor(executor, models.reload_if_changed)
