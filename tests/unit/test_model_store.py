import json
import re
from datetime import UTC, datetime, timedelta

import joblib
import numpy as np
import pytest

from connectors import model_store
from connectors.model_store import (
    ArtifactCorrupt,
    ArtifactFeatureMismatch,
    ArtifactMissing,
    load_champion,
    load_heuristic,
    save_artifact,
    set_champion,
)
from models.boosting import BoostingConfig, fit_boosting
from models.features import FEATURE_NAMES, feature_matrix
from models.forest import ForestConfig, fit_forest
from models.heuristic import DEFAULT_PARAMS
from models.synthetic import SyntheticWorld, generate_history
from models.training import TrainingConfig, train
from schemas import FallbackReason

CREATED = datetime(2026, 11, 22, 10, 30, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def result():
    end = datetime(2026, 11, 1, tzinfo=UTC)
    data = generate_history(end - timedelta(days=7), end, seed=2, bookings_per_day=150)
    config = TrainingConfig(forest=ForestConfig(n_estimators=5, max_depth=5, n_jobs=1))
    return train(data.rows, data.row_weather, config)


@pytest.fixture
def saved(tmp_path, result):
    info = save_artifact(tmp_path, result, created_at=CREATED)
    return tmp_path, info


def sample_features(n: int = 50) -> np.ndarray:
    world, rng = SyntheticWorld(4), np.random.default_rng(4)
    bookings = [world.booking(CREATED, rng) for _ in range(n)]
    weathers = [world.weather(b.pickup_lat, b.pickup_lon, b.scheduled_pickup_at) for b in bookings]
    return feature_matrix(bookings, weathers)


def edit_metadata(path, **changes):
    metadata = json.loads((path / "metadata.json").read_text())
    metadata.update(changes)
    (path / "metadata.json").write_text(json.dumps(metadata))


def test_artifact_round_trips_and_becomes_champion(saved, result):
    model_dir, info = saved
    prefix = {"forest": "rf", "boosting": "gb", "boosting_zones": "gb"}[result.model_kind]
    assert re.fullmatch(rf"{prefix}-20261122T103005Z-[0-9a-f]{{8}}", info.version)
    assert (model_dir / "CHAMPION").read_text().strip() == info.version
    assert {p.name for p in info.path.iterdir()} == {
        "model.joblib",
        "heuristic.json",
        "metadata.json",
    }
    loaded = load_champion(model_dir)
    assert loaded.version == loaded.predictor.version == info.version
    assert loaded.heuristic == result.heuristic
    X = sample_features()
    delays, confidences = loaded.predictor.predict(X)
    np.testing.assert_array_equal(delays, result.predictor.predict(X)[0])
    np.testing.assert_array_equal(confidences, result.predictor.predict(X)[1])
    inputs = loaded.predictor.inputs
    np.testing.assert_array_equal(delays, loaded.predictor.estimator.predict(inputs.transform(X)))
    assert inputs == result.predictor.inputs
    meta = loaded.metadata
    assert meta["features"] == list(inputs.required)
    assert meta["model_inputs"] == list(inputs.names)
    assert meta["model_sha256"] == info.model_sha256
    assert meta["rows"] == result.rows and meta["train_rows"] == result.train_rows
    assert meta["metrics"]["holdout"]["model"]["mae"] == result.model_scores.mae
    assert meta["training_window"]["start"] == result.window_start.isoformat()
    assert meta["created_at"] == CREATED.isoformat()
    assert set(meta["feature_distributions"]) == set(FEATURE_NAMES)
    assert loaded.warnings == ()


def test_no_directory_or_no_champion_is_missing(tmp_path):
    for model_dir in (tmp_path / "absent", tmp_path):
        with pytest.raises(ArtifactMissing) as info:
            load_champion(model_dir)
        assert info.value.fallback_reason is FallbackReason.NO_MODEL
        assert load_heuristic(model_dir) is DEFAULT_PARAMS


def test_a_checksum_mismatch_is_refused_before_unpickling(saved, monkeypatch):
    model_dir, info = saved
    model = info.path / "model.joblib"
    model.write_bytes(model.read_bytes() + b"tampered")

    def never(*args, **kwargs):
        raise AssertionError("unpickled a file whose checksum did not match")

    monkeypatch.setattr(joblib, "load", never)
    with pytest.raises(ArtifactCorrupt, match="checksum mismatch") as raised:
        load_champion(model_dir)
    assert raised.value.fallback_reason is FallbackReason.BAD_ARTIFACT


def test_a_feature_list_unlike_this_code_is_a_feature_mismatch(saved):
    model_dir, info = saved
    edit_metadata(info.path, features=[*FEATURE_NAMES[:-1], "road_works"])
    with pytest.raises(ArtifactFeatureMismatch, match="road_works") as raised:
        load_champion(model_dir)
    assert raised.value.fallback_reason is FallbackReason.MISSING_FEATURE
    # Names this code computes, but not those the model file reads: the two disagree.
    edit_metadata(info.path, features=list(reversed(FEATURE_NAMES)))
    with pytest.raises(ArtifactCorrupt, match="but its metadata lists"):
        load_champion(model_dir)


def test_unreadable_metadata_or_unpicklable_model_is_corrupt(saved):
    model_dir, info = saved
    (info.path / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactCorrupt, match=r"metadata\.json"):
        load_champion(model_dir)


def test_garbage_with_a_matching_checksum_fails_to_unpickle(saved):
    model_dir, info = saved
    garbage = b"this is not a pickle"
    (info.path / "model.joblib").write_bytes(garbage)
    edit_metadata(info.path, model_sha256=model_store._sha256(info.path / "model.joblib"))
    with pytest.raises(ArtifactCorrupt, match="cannot unpickle"):
        load_champion(model_dir)


def test_champion_naming_a_missing_version_is_corrupt(saved):
    model_dir, _ = saved
    (model_dir / "CHAMPION").write_text("rf-20000101T000000Z-deadbeef\n")
    with pytest.raises(ArtifactCorrupt, match="does not exist"):
        load_champion(model_dir)
    (model_dir / "CHAMPION").write_text("../../etc\n")
    with pytest.raises(ArtifactCorrupt, match="not a version name"):
        load_champion(model_dir)


def test_fitted_heuristic_loads_even_when_the_model_file_is_corrupt(saved, result):
    model_dir, info = saved
    (info.path / "model.joblib").write_bytes(b"broken")
    assert load_heuristic(model_dir) == result.heuristic
    (info.path / "heuristic.json").unlink()
    assert load_heuristic(model_dir) is DEFAULT_PARAMS
    (info.path / "heuristic.json").write_text('{"rush_hour_min": 1}')
    with pytest.raises(ArtifactCorrupt, match=r"heuristic\.json"):
        load_heuristic(model_dir)


def test_set_champion_rolls_back_to_an_earlier_version(saved, result):
    model_dir, first = saved
    second = save_artifact(model_dir, result, created_at=CREATED + timedelta(hours=1))
    assert load_champion(model_dir).version == second.version != first.version
    set_champion(model_dir, first.version)
    assert load_champion(model_dir).version == first.version
    with pytest.raises(ValueError):
        set_champion(model_dir, "rf-unknown")
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".")]


def old_artifact(model_dir, result, content):
    """An artifact as written before models named their inputs: ``content`` as the model file,
    the 20 booking features of that time as its metadata's feature list."""
    info = save_artifact(model_dir, result, created_at=CREATED)
    joblib.dump(content, info.path / "model.joblib")
    digest = model_store._sha256(info.path / "model.joblib")
    edit_metadata(info.path, features=list(FEATURE_NAMES[:20]), model_sha256=digest)
    return info


def test_artifacts_older_than_named_inputs_read_the_columns_they_were_trained_on(tmp_path):
    end = datetime(2026, 11, 1, tzinfo=UTC)
    data = generate_history(end - timedelta(days=5), end, seed=6, bookings_per_day=150)
    X_old = feature_matrix([r.booking for r in data.rows], data.row_weather)[:, :20]
    y = np.array([r.actual_delay_minutes for r in data.rows])
    forest = fit_forest(X_old, y, ForestConfig(n_estimators=5, max_depth=4, n_jobs=1))
    point = fit_boosting(X_old, y, BoostingConfig(max_iter=20))
    spread = fit_boosting(X_old, np.abs(y - point.predict(X_old)), BoostingConfig(max_iter=10))
    config = TrainingConfig(candidates=("forest",), forest=ForestConfig(n_estimators=3))
    result = train(data.rows, data.row_weather, config)
    X = sample_features()
    assert X.shape[1] == 24
    for name, content, estimator in (
        ("forest", forest, forest),
        ("boosting", {"point": point, "spread": spread}, point),
    ):
        model_dir = tmp_path / name
        old_artifact(model_dir, result, content)
        loaded = load_champion(model_dir)
        assert loaded.predictor.feature_names == FEATURE_NAMES[:20]
        delays, _ = loaded.predictor.predict(X)
        np.testing.assert_array_equal(delays, estimator.predict(X[:, :20]))
        # Those features in another order: metadata is not checksummed, and such a model read
        # its columns in the order of its time, so the list is refused, never trusted.
        info_path = loaded.path
        edit_metadata(info_path, features=list(reversed(FEATURE_NAMES[:20])))
        with pytest.raises(ArtifactCorrupt, match="predates named inputs"):
            load_champion(model_dir)


def test_a_zoned_model_round_trips_with_its_encodings_and_refuses_another_area(tmp_path):
    end = datetime(2026, 11, 1, tzinfo=UTC)
    data = generate_history(end - timedelta(days=7), end, seed=2, bookings_per_day=150)
    config = TrainingConfig(candidates=("boosting_zones",), bootstrap_samples=200)
    result = train(data.rows, data.row_weather, config)
    assert result.model_kind == "boosting_zones"
    info = save_artifact(tmp_path, result, created_at=CREATED)
    assert info.version.startswith("gb-")
    loaded = load_champion(tmp_path)
    zones = loaded.predictor.inputs.zones
    assert zones is not None and zones == result.predictor.inputs.zones
    X = sample_features()
    np.testing.assert_array_equal(loaded.predictor.predict(X)[0], result.predictor.predict(X)[0])
    meta = loaded.metadata
    assert meta["model_inputs"][-3:] == ["zone_pickup", "zone_dropoff", "zone_pickup_hour"]
    assert {"pickup_lat", "dropoff_lon"} <= set(meta["features"])
    assert meta["zones"]["cells"]["zone_pickup"]["count"] == zones.tables[0].keys.size
    # Encodings of another area than the artifact's: the file disagrees with its metadata.
    content = joblib.load(info.path / "model.joblib")
    content["inputs"]["zones"]["area"]["center_lat"] = 40.7
    joblib.dump(content, info.path / "model.joblib")
    edit_metadata(info.path, model_sha256=model_store._sha256(info.path / "model.joblib"))
    with pytest.raises(ArtifactCorrupt, match="zone encodings were fitted for another"):
        load_champion(tmp_path)
