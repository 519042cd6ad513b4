"""The champion model and the heuristic a worker serves, reloaded when the champion changes,
and the challenger it scores in shadow (never served), reloaded when the challenger changes.

Loading never raises: a missing or bad artifact leaves ``model`` empty and records why, and the
agent serves the heuristic with that reason as the fallback_reason.

What is served is one immutable :class:`Served` snapshot, replaced whole by a reload (which
runs on another thread). A batch takes the snapshot once and uses it throughout, so it never
mixes one champion's model with another's interval, quantiles or heuristic.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from connectors.model_store import (
    ArtifactAreaMismatch,
    ArtifactCorrupt,
    ArtifactFeatureMismatch,
    ArtifactMissing,
    challenger_version,
    champion_version,
    load_heuristic,
    load_version,
    read_metadata,
)
from models.area import GENEVA, ServiceArea
from models.heuristic import DEFAULT_PARAMS, HeuristicParams
from models.interval import quantiles_from_metadata, scale_from_metadata
from schemas import FallbackReason

log = logging.getLogger("delaycast.models")


@dataclass(frozen=True)
class Served:
    """Everything a batch needs of the champion, from one load."""

    model: Any | None = None  # the champion's Predictor, None when it cannot be served
    metadata: dict[str, Any] = field(default_factory=dict)
    heuristic: HeuristicParams = DEFAULT_PARAMS
    # Calibrated P90 scales (models.interval) of the model and the heuristic served; None when
    # the artifact has none, and then predictions carry no P90 ...
    model_p90_scale: float | None = None
    heuristic_p90_scale: float | None = None
    # ... and the quantiles of their normalised excess, for the chance of a late pickup.
    model_quantiles: tuple[float, ...] | None = None
    heuristic_quantiles: tuple[float, ...] | None = None
    unavailable: FallbackReason | None = FallbackReason.NO_MODEL  # why model is None
    detail: str | None = "not loaded yet"
    # The challenger's Predictor, scored in shadow on every booking; None when there is no
    # challenger, it is the champion itself, shadow scoring is off, or it cannot be loaded.
    shadow: Any | None = None


class ModelHolder:
    def __init__(self, model_dir: Path, area: ServiceArea = GENEVA, *, shadow: bool = True) -> None:
        self.model_dir = model_dir
        self.area = area
        self.shadow = shadow
        self.current = Served()
        self._signature: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    # Read-only views of the current snapshot (a batch should take ``current`` once instead).
    @property
    def model(self) -> Any | None:
        return self.current.model

    @property
    def metadata(self) -> dict[str, Any]:
        return self.current.metadata

    @property
    def heuristic(self) -> HeuristicParams:
        return self.current.heuristic

    @property
    def unavailable(self) -> FallbackReason | None:
        return self.current.unavailable

    @property
    def detail(self) -> str | None:
        return self.current.detail

    def _current_signature(self) -> tuple[Any, ...]:
        champion = self._pointer_signature("CHAMPION")
        if champion is None:
            return ("absent",)
        return (*champion, self._pointer_signature("CHALLENGER") if self.shadow else None)

    def _pointer_signature(self, pointer: str) -> tuple[Any, ...] | None:
        path = self.model_dir / pointer
        try:
            stat = path.stat()
            name = path.read_text().strip()
        except OSError:
            return None
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
        """Load the champion when it changed since the last call (blocking; run it off the loop).

        Calls from several threads are serialised: two reloads racing could otherwise install
        the older load last, under the newer signature, until the champion changed again."""
        with self._lock:
            signature = self._current_signature()
            if signature == self._signature:
                return False
            self._signature = signature
            self.current = self._load()
            served = self.current
        if served.shadow is not None:
            log.info("[ML] scoring challenger %s in shadow (never served)", served.shadow.version)
        if served.model is not None:
            log.info("[ML] serving model %s from %s", served.model.version, self.model_dir)
        else:
            log.warning(
                "[ML] no model served (%s: %s); the heuristic answers",
                getattr(served.unavailable, "value", None),
                served.detail,
            )
        return True

    def _load(self) -> Served:
        """Everything of one champion: CHAMPION is read once, and the heuristic, its interval
        and the model all come from the version it named, so a promotion meanwhile cannot pair
        one champion's heuristic with another's model."""
        try:
            version = champion_version(self.model_dir)
        except Exception as exc:
            return Served(unavailable=FallbackReason.BAD_ARTIFACT, detail=str(exc))
        if version is None:
            return Served(
                unavailable=FallbackReason.NO_MODEL,
                detail=f"no CHAMPION in {self.model_dir}: no model trained yet",
            )
        heuristic = self._load_heuristic(version)
        heuristic_scale, heuristic_quantiles = self._heuristic_interval(heuristic, version)
        rules = Served(
            heuristic=heuristic,
            heuristic_p90_scale=heuristic_scale,
            heuristic_quantiles=heuristic_quantiles,
        )
        try:
            loaded = load_version(self.model_dir, version, self.area)
        except ArtifactMissing as exc:
            return replace(rules, unavailable=FallbackReason.NO_MODEL, detail=str(exc))
        except ArtifactAreaMismatch as exc:
            # Its heuristic learned another area's hours too: the default rules answer.
            return Served(unavailable=FallbackReason.AREA_MISMATCH, detail=str(exc))
        except ArtifactFeatureMismatch as exc:
            return replace(rules, unavailable=FallbackReason.MISSING_FEATURE, detail=str(exc))
        except ArtifactCorrupt as exc:
            return replace(rules, unavailable=FallbackReason.BAD_ARTIFACT, detail=str(exc))
        except Exception as exc:  # any other failure to load is a bad artifact, never a crash
            detail = f"{type(exc).__name__}: {exc}"
            return replace(rules, unavailable=FallbackReason.BAD_ARTIFACT, detail=detail)
        metadata = dict(loaded.metadata)
        return replace(
            rules,
            model=loaded.predictor,
            metadata=metadata,
            model_p90_scale=scale_from_metadata(metadata, "model"),
            model_quantiles=quantiles_from_metadata(metadata, "model"),
            unavailable=None,
            detail=None,
            shadow=self._load_shadow(version),
        )

    def _load_shadow(self, champion: str) -> Any | None:
        """The challenger's predictor; None (logged) when there is none to score or it cannot
        be loaded: a bad challenger never touches what is served."""
        if not self.shadow:
            return None
        try:
            version = challenger_version(self.model_dir)
            if version is None or version == champion:
                return None
            return load_version(self.model_dir, version, self.area).predictor
        except Exception as exc:
            log.warning(
                "[ML] challenger not scored in shadow: %s",
                f"{type(exc).__name__}: {exc}"[:300],
            )
            return None

    def _load_heuristic(self, version: str) -> HeuristicParams:
        try:
            params = load_heuristic(self.model_dir, version)
        except Exception as exc:
            log.warning("[ML] fitted heuristic unreadable (%s); using the defaults", exc)
            return DEFAULT_PARAMS
        return params

    def _heuristic_interval(
        self, heuristic: HeuristicParams, version: str
    ) -> tuple[float | None, tuple[float, ...] | None]:
        if heuristic is DEFAULT_PARAMS:
            return None, None
        try:
            metadata = read_metadata(self.model_dir, version)
        except Exception:  # the heuristic's interval is a nicety: never a reason to fail
            return None, None
        return (
            scale_from_metadata(metadata, "heuristic"),
            quantiles_from_metadata(metadata, "heuristic"),
        )


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
