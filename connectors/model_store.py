"""The artifact store: versioned model directories on disk and the CHAMPION pointer.

Layout of a model directory::

    <model_dir>/CHAMPION                       the champion's version name (one line)
    <model_dir>/AUDIT.jsonl                    champion changes made by hand or past the gate
                                               (train --force, model promote / rollback)
    <model_dir>/<version>/model.joblib         the fitted model: a dict {"forest": forest} or
                                               {"point": boosting, "spread": boosting}, with
                                               "inputs": the columns it reads and its zone
                                               encodings (models.inputs), as plain numbers
    <model_dir>/<version>/heuristic.json       the heuristic fitted on the same history
    <model_dir>/<version>/metadata.json        features, window, metrics, checksum, …

A version is ``<kind>-<created_at as YYYYMMDDTHHMMSSZ>-<first 8 hex of the model's sha256>``,
kind ``rf`` for a forest and ``gb`` for gradient boosting (with or without zones). An
artifact directory is written under a temporary name and renamed into place, and CHAMPION is
replaced atomically, so a worker polling the directory never sees half an artifact.

Artifacts written before models read their columns by name (a bare forest, or a dict without
"inputs") are still served: their metadata's ``features`` names the columns they read, and a
model that needs a column this code no longer computes is refused (``missing_feature``).

Loading verifies the model file's sha256 against the metadata *before* unpickling it. The
checksum catches damaged or mismatched files; it is not a signature: anyone who can write the
directory can run code in the worker, so the directory must be writable only by operators.

Each failure to load is an :class:`ArtifactError` whose ``fallback_reason`` is what the agent
reports while it serves the heuristic instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from models.area import GENEVA, ServiceArea
from models.features import FEATURE_NAMES, FORMAT_1_FEATURES
from models.heuristic import DEFAULT_PARAMS, HeuristicParams
from schemas.prediction import FallbackReason

# scikit-learn and joblib are imported where an artifact is written or loaded, not with this
# module: a process that only reads metadata or the heuristic (a worker whose engine process
# holds the model, the CLI's `model list`) is spared their import time and memory.
if TYPE_CHECKING:
    from models.predictor import Predictor
    from models.training import TrainingResult

CHAMPION = "CHAMPION"
CHALLENGER = "CHALLENGER"  # a model judged against the champion, never served by it alone
MODEL_FILE = "model.joblib"
HEURISTIC_FILE = "heuristic.json"
AUDIT_FILE = "AUDIT.jsonl"
KIND_PREFIX = {"forest": "rf", "boosting": "gb", "boosting_zones": "gb"}
MODEL_TYPES = {
    "forest": "sklearn.ensemble.RandomForestRegressor",
    "boosting": "sklearn.ensemble.HistGradientBoostingRegressor",
    "boosting_zones": "sklearn.ensemble.HistGradientBoostingRegressor",
}
METADATA_FILE = "metadata.json"
# 2: the model file is a dict with "inputs" (models.inputs); workers of format 1 cannot serve
# it, so every worker is upgraded before such a model is trained or promoted.
METADATA_FORMAT = 2
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ArtifactError(Exception):
    """The champion cannot be served; ``fallback_reason`` says how to report it."""

    fallback_reason: ClassVar[FallbackReason] = FallbackReason.BAD_ARTIFACT


class ArtifactMissing(ArtifactError):
    """No model has been trained yet: no model directory or no CHAMPION file."""

    fallback_reason = FallbackReason.NO_MODEL


class ArtifactCorrupt(ArtifactError):
    """The champion exists but cannot be trusted or read; the message says why."""

    fallback_reason = FallbackReason.BAD_ARTIFACT


class ArtifactAreaMismatch(ArtifactError):
    """The champion was trained for another service area than the one configured."""

    fallback_reason = FallbackReason.AREA_MISMATCH


class ArtifactFeatureMismatch(ArtifactError):
    """The champion was trained on other features than this code computes."""

    fallback_reason = FallbackReason.MISSING_FEATURE


@dataclass(frozen=True)
class ArtifactInfo:
    version: str
    path: Path
    model_sha256: str
    model_bytes: int


@dataclass(frozen=True)
class LoadedModel:
    predictor: Predictor
    heuristic: HeuristicParams
    metadata: dict[str, Any]
    path: Path
    warnings: tuple[str, ...] = field(default=())  # e.g. trained with another scikit-learn

    @property
    def version(self) -> str:
        return self.predictor.version


def model_version(created_at: datetime, model_sha256: str, kind: str = "forest") -> str:
    return f"{KIND_PREFIX[kind]}-{created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{model_sha256[:8]}"


def save_artifact(
    out_dir: Path,
    result: TrainingResult,
    *,
    created_at: datetime | None = None,
    make_champion: bool = True,
) -> ArtifactInfo:
    """Write ``result`` as a new version under ``out_dir`` and (by default) make it champion."""
    import joblib

    created_at = created_at or datetime.now(UTC)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=out_dir))
    try:
        incoming.chmod(0o755)  # mkdtemp makes it private; workers may run as another user
        content = {**result.estimator, "inputs": result.predictor.inputs.to_dict()}
        joblib.dump(content, incoming / MODEL_FILE)
        digest = _sha256(incoming / MODEL_FILE)
        size = (incoming / MODEL_FILE).stat().st_size
        version = model_version(created_at, digest, result.model_kind)
        _write_json(incoming / HEURISTIC_FILE, result.heuristic.to_dict())
        _write_json(incoming / METADATA_FILE, _metadata(result, version, created_at, digest, size))
        for path in incoming.iterdir():
            _fsync(path)
        final = out_dir / version
        if final.exists():
            # Same model bytes saved within the same second: the artifact is already there.
            shutil.rmtree(incoming)
        else:
            incoming.rename(final)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    if make_champion:
        set_champion(out_dir, version)
    return ArtifactInfo(version=version, path=final, model_sha256=digest, model_bytes=size)


def set_champion(model_dir: Path, version: str) -> None:
    """Point CHAMPION at an existing version (promotion or rollback), atomically."""
    _point(model_dir, CHAMPION, version)


def champion_version(model_dir: Path) -> str | None:
    """The version CHAMPION names, or None when there is no model directory or no CHAMPION."""
    return _pointed(model_dir, CHAMPION)


def set_challenger(model_dir: Path, version: str) -> None:
    """Point CHALLENGER at an existing version: a model to be judged against the champion,
    never served by this pointer alone."""
    _point(model_dir, CHALLENGER, version)


def challenger_version(model_dir: Path) -> str | None:
    """The version CHALLENGER names, or None."""
    return _pointed(model_dir, CHALLENGER)


def _point(model_dir: Path, pointer: str, version: str) -> None:
    model_dir = Path(model_dir)
    if not _VERSION_PATTERN.match(version) or not (model_dir / version).is_dir():
        raise ValueError(f"no artifact {version!r} in {model_dir}")
    tmp = model_dir / f".{pointer}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n")
    _fsync(tmp)
    os.replace(tmp, model_dir / pointer)


def _pointed(model_dir: Path, pointer: str) -> str | None:
    try:
        text = (Path(model_dir) / pointer).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactCorrupt(f"cannot read {pointer}: {exc}") from None
    return text or None


def load_champion(model_dir: Path, area: ServiceArea | None = None) -> LoadedModel:
    """The champion's model, its fitted heuristic and its metadata.

    Raises ArtifactMissing, ArtifactCorrupt, ArtifactFeatureMismatch, or ArtifactAreaMismatch
    when ``area`` is given and the champion was trained for another (see the module docstring);
    the model file is unpickled only after its checksum matched.
    """
    model_dir = Path(model_dir)
    version = champion_version(model_dir)
    if version is None:
        raise ArtifactMissing(f"no {CHAMPION} in {model_dir}: no model trained yet")
    return load_version(model_dir, version, area)


def list_versions(model_dir: Path) -> list[str]:
    """The artifact versions under ``model_dir``, oldest first (names sort by creation time)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(
        p.name for p in model_dir.iterdir() if p.is_dir() and _VERSION_PATTERN.match(p.name)
    )


def read_metadata(model_dir: Path, version: str) -> dict[str, Any]:
    """A version's metadata.json (training window, metrics, checksum), without loading it."""
    return _read_metadata(_artifact_dir(Path(model_dir), version))


def load_version(model_dir: Path, version: str, area: ServiceArea | None = None) -> LoadedModel:
    """Like :func:`load_champion`, for any version: checked the same way before unpickling."""
    model_dir = Path(model_dir)
    path = _artifact_dir(model_dir, version)
    metadata = _read_metadata(path)
    if metadata.get("model_version") != version:
        raise ArtifactCorrupt(
            f"{path / METADATA_FILE} describes {metadata.get('model_version')!r}, not {version!r}"
        )
    features = _check_features(metadata.get("features"), version)
    if area is not None:
        _check_area(artifact_area(metadata), area, version)
    expected = metadata.get("model_sha256")
    try:
        actual = _sha256(path / MODEL_FILE)
    except OSError as exc:
        raise ArtifactCorrupt(f"cannot read {path / MODEL_FILE}: {exc}") from None
    if actual != expected:
        raise ArtifactCorrupt(
            f"checksum mismatch for {path / MODEL_FILE}: sha256 {actual[:12]}…, "
            f"metadata says {str(expected)[:12]}…; refusing to unpickle"
        )
    heuristic = _read_heuristic(path / HEURISTIC_FILE)
    import joblib
    import sklearn

    try:
        estimator = joblib.load(path / MODEL_FILE)
    except Exception as exc:
        raise ArtifactCorrupt(f"cannot unpickle {path / MODEL_FILE}: {exc!r}") from None
    try:
        predictor = _predictor(estimator, version, features, artifact_area(metadata))
    # KeyError, TypeError: damaged inputs; IndexError: a tree whose children point nowhere.
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ArtifactCorrupt(f"{path / MODEL_FILE}: {exc}") from None
    warnings = []
    if metadata.get("sklearn_version") != sklearn.__version__:
        warnings.append(
            f"trained with scikit-learn {metadata.get('sklearn_version')}, "
            f"running {sklearn.__version__}"
        )
    return LoadedModel(predictor, heuristic, metadata, path, tuple(warnings))


def _predictor(
    content: Any, version: str, features: tuple[str, ...], area: ServiceArea
) -> Predictor:
    """The predictor of a model file's content; ValueError when it is not one delaycast
    serves or disagrees with its metadata (``features``, ``area``)."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from models.boosting import BoostingPredictor
    from models.forest import ForestPredictor
    from models.inputs import ModelInputs

    if isinstance(content, RandomForestRegressor):  # written before models named their inputs
        content = {"forest": content}
    if not isinstance(content, dict):
        raise ValueError(f"holds a {type(content).__name__}, not a model delaycast serves")
    if "inputs" in content:
        inputs = ModelInputs.from_dict(content["inputs"])
        if inputs.required != features:
            raise ValueError(
                f"reads {list(inputs.required)}, but its metadata lists {list(features)}"
            )
        if inputs.zones is not None and inputs.zones.area.mismatch(area):
            raise ValueError("its zone encodings were fitted for another service area")
    else:
        # Written before models named their inputs: they read the booking features of that
        # time, in that order. Metadata is not checksummed, so any other list is refused
        # rather than trusted to reorder the columns.
        if features != FORMAT_1_FEATURES:
            raise ValueError(
                f"predates named inputs, so it reads the {len(FORMAT_1_FEATURES)} features of "
                "that time in their order, but its metadata lists others"
            )
        inputs = ModelInputs.of(features)
    models = {k: v for k, v in content.items() if k != "inputs"}
    if set(models) == {"forest"} and isinstance(models["forest"], RandomForestRegressor):
        return ForestPredictor(models["forest"], version, inputs)
    if set(models) == {"point", "spread"} and all(
        isinstance(m, HistGradientBoostingRegressor) for m in models.values()
    ):
        return BoostingPredictor(
            models["point"], version, inputs, spread_estimator=models["spread"]
        )
    raise ValueError(f"holds {sorted(models)}, not a model delaycast serves")


def record_audit(model_dir: Path, action: str, **details: Any) -> dict[str, Any]:
    """Append one line to the model directory's audit log: when, who, what and why.

    The log is the record of every champion change made against the promotion gate (``train
    --force``) and by hand (``model promote``, ``model rollback``).
    """
    import getpass
    import socket

    entry = {
        "at": datetime.now(UTC).isoformat(),
        "user": getpass.getuser(),
        "host": socket.gethostname(),
        "action": action,
        **details,
    }
    path = Path(model_dir) / AUDIT_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return entry


def read_audit(model_dir: Path) -> list[dict[str, Any]]:
    """The audit log's entries, oldest first (none when there is no log)."""
    path = Path(model_dir) / AUDIT_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_heuristic(model_dir: Path, version: str | None = None) -> HeuristicParams:
    """The fitted heuristic of ``version`` (the champion's by default), without touching its
    model file.

    Returns :data:`models.heuristic.DEFAULT_PARAMS` when there is no champion or it has no
    heuristic file; raises ArtifactCorrupt when the file is there but unreadable.
    """
    model_dir = Path(model_dir)
    version = version if version is not None else champion_version(model_dir)
    if version is None:
        return DEFAULT_PARAMS
    path = _artifact_dir(model_dir, version) / HEURISTIC_FILE
    if not path.exists():
        return DEFAULT_PARAMS
    return _read_heuristic(path)


def _artifact_dir(model_dir: Path, version: str) -> Path:
    if not _VERSION_PATTERN.match(version):
        raise ArtifactCorrupt(f"{CHAMPION} holds {version[:80]!r}, not a version name")
    path = model_dir / version
    if not path.is_dir():
        raise ArtifactCorrupt(f"{CHAMPION} names {version}, but {path} does not exist")
    return path


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactCorrupt(f"cannot read {path / METADATA_FILE}: {exc}") from None
    if not isinstance(metadata, dict):
        raise ArtifactCorrupt(f"{path / METADATA_FILE} is not a JSON object")
    return metadata


def artifact_area(metadata: dict[str, Any]) -> ServiceArea:
    """The service area an artifact was trained for (Geneva for artifacts older than areas)."""
    if "service_area" not in metadata:
        return GENEVA
    try:
        return ServiceArea.from_dict(metadata["service_area"])
    except ValueError as exc:
        raise ArtifactCorrupt(f"metadata's service_area: {exc}") from None


def _check_area(trained: ServiceArea, configured: ServiceArea, version: str) -> None:
    differences = trained.mismatch(configured)
    if differences:
        raise ArtifactAreaMismatch(
            f"model {version} was trained for another service area ({trained.describe()}) "
            f"than SERVICE_AREA_* configures ({configured.describe()}): "
            f"{', '.join(differences)} differ; train a model on this area's history, or "
            "serve with the settings it was trained for"
        )


def _check_features(features: Any, version: str) -> tuple[str, ...]:
    """The booking features the model reads, by name; ArtifactFeatureMismatch when this code
    does not compute one of them (a model may read any of them, in any order)."""
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
        or len(set(features)) != len(features)
    ):
        raise ArtifactCorrupt(f"metadata of {version} has no list of distinct feature names")
    missing = [f for f in features if f not in FEATURE_NAMES]
    if missing:
        raise ArtifactFeatureMismatch(
            f"model {version} was trained on features this code does not compute: {missing}"
        )
    return tuple(features)


def _read_heuristic(path: Path) -> HeuristicParams:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return HeuristicParams.from_dict(data)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise ArtifactCorrupt(f"cannot read {path}: {exc}") from None


def _metadata(
    result: TrainingResult, version: str, created_at: datetime, digest: str, size: int
) -> dict[str, Any]:
    import joblib
    import sklearn

    zones = result.predictor.inputs.zones
    return {
        "format": METADATA_FORMAT,
        "model_version": version,
        "model_type": MODEL_TYPES[result.model_kind],
        "model_kind": result.model_kind,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "model_file": MODEL_FILE,
        "model_sha256": digest,
        "model_bytes": size,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "joblib_version": joblib.__version__,
        "python_version": platform.python_version(),
        "features": list(result.feature_names),
        "model_inputs": list(result.predictor.inputs.names),
        "zones": None if zones is None else zones.summary(),
        "training_window": {
            "start": result.window_start.isoformat(),
            "end": result.window_end.isoformat(),
            "holdout_start": result.holdout_start.isoformat(),
            "event_time": "scheduled_pickup_at",
        },
        "rows": result.rows,
        "train_rows": result.train_rows,
        "holdout_rows": result.holdout_rows,
        "service_area": result.area.to_dict(),
        "metrics": {
            "holdout": {
                "model": result.model_scores.to_dict(),
                "heuristic": result.heuristic_scores.to_dict(),
                "candidates": {n: s.to_dict() for n, s in result.candidates.items()},
                "leads": {n: lead.to_dict() for n, lead in result.leads.items()},
                "confidence_deciles_mae": list(result.confidence_deciles),
            }
        },
        "gate": result.gate.to_dict(),
        "p90": {name: interval.to_dict() for name, interval in result.intervals.items()},
        "constant_median": result.constant_median,
        "heuristic_version": result.heuristic.version,
        "heuristic_note": result.heuristic_note,
        "hyperparameters": {
            "holdout_fraction": result.config.holdout_fraction,
            "zone_cell_km": result.config.zone_cell_km,
            "candidates": list(result.config.candidates),
            "forest": asdict(result.config.forest),
            "boosting": asdict(result.config.boosting),
        },
        "feature_distributions": {
            name: dist.to_dict() for name, dist in result.feature_distributions.items()
        },
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())
