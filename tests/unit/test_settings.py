import json

import pytest

from streams.settings import DEFAULT_KAFKA, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DATABASE_URL", "OPENWEATHER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DELAYCAST_HOME", str(tmp_path))
    return tmp_path


def test_defaults_point_at_the_local_stack_ports():
    assert load_settings().kafka_bootstrap_servers == DEFAULT_KAFKA


def test_a_running_stack_s_endpoints_are_used_when_the_environment_is_silent(
    clean_env, monkeypatch
):
    (clean_env / "stack").mkdir()
    (clean_env / "stack" / "endpoints.json").write_text(
        json.dumps({"kafka_bootstrap_servers": "127.0.0.1:29999", "redis_url": "redis://x:1/0"})
    )
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:29999"
    assert settings.redis_url.get_secret_value() == "redis://x:1/0"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    assert load_settings().kafka_bootstrap_servers == "10.0.0.1:9092"


def test_bad_values_stop_with_a_message_naming_each_variable(monkeypatch):
    monkeypatch.setenv("ML_TRAFFIC_PERCENTAGE", "120")
    monkeypatch.setenv("BATCH_MAX", "zero")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "ML_TRAFFIC_PERCENTAGE" in message and "BATCH_MAX" in message


def test_recorded_weather_needs_its_csv(monkeypatch):
    monkeypatch.setenv("WEATHER_PROVIDER", "recorded")
    with pytest.raises(SettingsError, match="WEATHER_HISTORY_CSV"):
        load_settings()


def test_empty_variables_count_as_unset(monkeypatch):
    monkeypatch.setenv("WEATHER_HISTORY_CSV", "")
    monkeypatch.setenv("OPENWEATHER_API_KEY", "")
    settings = load_settings()
    assert settings.weather_history_csv is None
    assert settings.openweather_api_key is None


def test_secrets_never_show_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("OPENWEATHER_API_KEY", "sekret-123")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://u:pw-456@h/db")
    text = repr(load_settings()) + str(load_settings())
    assert "sekret-123" not in text and "pw-456" not in text


def test_a_coverage_band_upside_down_and_an_unknown_timezone_are_refused(monkeypatch):
    monkeypatch.setenv("COVERAGE_ALERT_LOW", "0.95")
    monkeypatch.setenv("COVERAGE_ALERT_HIGH", "0.85")
    with pytest.raises(SettingsError, match="COVERAGE_ALERT_LOW must be below"):
        load_settings()
    monkeypatch.delenv("COVERAGE_ALERT_LOW")
    monkeypatch.delenv("COVERAGE_ALERT_HIGH")
    monkeypatch.setenv("SERVICE_AREA_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="unknown timezone 'Mars/Olympus'"):
        load_settings()
    monkeypatch.setenv("SERVICE_AREA_TIMEZONE", "America/New_York")
    assert load_settings().service_area.tz.key == "America/New_York"


def test_a_stall_window_shorter_than_two_samples_is_refused(monkeypatch):
    monkeypatch.setenv("PIPELINE_SAMPLE_S", "10")
    monkeypatch.setenv("PIPELINE_STALL_S", "15")
    with pytest.raises(SettingsError, match="PIPELINE_STALL_S must span at least two"):
        load_settings()
    monkeypatch.setenv("PIPELINE_STALL_S", "20")
    assert (load_settings().pipeline_sample_s, load_settings().pipeline_stall_s) == (10.0, 20.0)
