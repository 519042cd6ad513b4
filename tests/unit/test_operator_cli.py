"""The pure pieces of the operator commands: argument checks, offset ranges, verdicts, filters."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner

from connectors.kafka import OffsetRange, range_of_offsets, ranges_between_times
from connectors.weather import WeatherAuthError, WeatherNotFound, WeatherRateLimited
from connectors.weather.base import WeatherUnavailable
from schemas import DeadLetter, DeadLetterKind
from streams.operate.cli.dead_letters_cmd import selection_of
from streams.operate.cli.main import cli
from streams.operate.cli.params import ISO_TIME, epoch_ms
from streams.operate.cli.produce_cmd import csv_records
from streams.operate.cli.progress import Progress
from streams.operate.cli.replay_cmd import replay_mode
from streams.operate.dead_letters import (
    LetterFilter,
    letter_line,
    parse_letter,
    requeue,
    requeueable_topics,
)
from streams.operate.weather_probe import ProbeStatus, classify
from streams.redaction import scrub, secrets_of
from streams.settings import get_settings, load_settings

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
HEADER = (
    "booking_id,created_at,scheduled_pickup_at,pickup_lat,pickup_lon,dropoff_lat,dropoff_lon,"
    "vehicle_type,patient_priority,actual_delay_minutes\n"
)
GOOD_ROW = (
    "{id},2026-11-02T06:10:00+00:00,2026-11-02T07:30:00+00:00,46.21,6.12,46.19,6.15,"
    "standard,routine,{delay}\n"
)


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each command reads the environment the test gives it, not a cached one."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- offset ranges ---------------------------------------------------------------------------


def test_time_ranges_run_from_the_first_offset_at_the_start_to_the_first_at_the_end():
    marks = {0: (0, 100), 1: (10, 50), 2: (0, 0)}
    ranges = ranges_between_times(marks, {0: 40, 1: 12, 2: -1}, {0: 60, 1: -1, 2: -1})
    assert ranges == [OffsetRange(0, 40, 60), OffsetRange(1, 12, 50), OffsetRange(2, 0, 0)]
    assert [r.count for r in ranges] == [20, 38, 0]


def test_a_start_later_than_every_message_gives_an_empty_range_at_the_end():
    (only,) = ranges_between_times({0: (5, 30)}, {0: -1}, None)
    assert (only.start, only.end, only.count) == (30, 30, 0)


def test_without_an_end_time_a_range_runs_to_the_partition_end():
    (only,) = ranges_between_times({3: (0, 30)}, {3: 7}, None)
    assert only == OffsetRange(3, 7, 30)


def test_offsets_deleted_by_retention_are_skipped_from_a_time_range():
    (only,) = ranges_between_times({0: (20, 30)}, {0: 4}, {0: 25})
    assert only == OffsetRange(0, 20, 25)


def test_an_end_before_the_start_gives_an_empty_range_not_a_negative_one():
    (only,) = ranges_between_times({0: (0, 30)}, {0: 20}, {0: 10})
    assert only.count == 0


def test_an_offset_range_includes_both_ends():
    assert range_of_offsets({0: (0, 10), 1: (0, 10)}, 1, 3, 3) == OffsetRange(1, 3, 4)
    assert range_of_offsets({0: (0, 10)}, 0, 0, 9).count == 10


@pytest.mark.parametrize(
    ("partition", "first", "last", "message"),
    [
        (7, 0, 1, "partition 7 does not exist; the topic has 0, 1"),
        (0, 5, 4, "the last offset (4) is before the first (5)"),
        (0, 2, 10, "partition 0 holds offsets 0 to 9; 2 to 10 is not within them"),
        (1, 0, 0, "partition 1 is empty (next offset 4)"),
    ],
)
def test_an_impossible_offset_range_says_why(partition, first, last, message):
    with pytest.raises(ValueError) as raised:
        range_of_offsets({0: (0, 10), 1: (4, 4)}, partition, first, last)
    assert str(raised.value) == message


# --- replay arguments ------------------------------------------------------------------------


def test_replay_mode_follows_the_options_given():
    assert replay_mode(T0, None, None, None, None) == "time"
    assert replay_mode(T0, T0 + timedelta(hours=1), None, None, None) == "time"
    assert replay_mode(None, None, 0, 1, 2) == "offsets"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((None, None, None, None, None), "say what to replay"),
        ((T0, None, 1, None, None), "not both"),
        ((None, T0, None, None, None), "--until needs --since"),
        ((None, None, 2, 5, None), "an offset range needs --to-offset too"),
        ((None, None, None, 5, 6), "an offset range needs --partition too"),
    ],
)
def test_replay_mode_refuses_incomplete_or_mixed_options(args, expected):
    with pytest.raises(click.UsageError) as raised:
        replay_mode(*args)
    assert expected in raised.value.format_message()


def test_replay_refuses_an_end_before_the_start():
    with pytest.raises(click.BadParameter) as raised:
        replay_mode(T0, T0 - timedelta(minutes=1), None, None, None)
    assert "is not after --since" in raised.value.format_message()


def test_replay_on_the_command_line_rejects_bad_times_with_a_usage_error():
    runner = CliRunner()
    naive = runner.invoke(cli, ["replay", "bookings", "--since", "2026-11-22T08:00:00"])
    assert naive.exit_code == 2
    assert "has no UTC offset" in naive.output
    garbage = runner.invoke(cli, ["replay", "bookings", "--since", "yesterday"])
    assert garbage.exit_code == 2 and "is not an ISO 8601 time" in garbage.output
    nothing = runner.invoke(cli, ["replay", "bookings"])
    assert nothing.exit_code == 2 and "say what to replay" in nothing.output
    negative = runner.invoke(cli, ["replay", "bookings", "--partition", "-1"])
    assert negative.exit_code == 2 and "--partition" in negative.output
    no_time = runner.invoke(cli, ["replay", "reset-group"])
    assert no_time.exit_code == 2 and "Missing option '--to'" in no_time.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--partition", "1", "--from-offset", "3"], "--from-offset and --to-offset together"),
        (["--from-offset", "3", "--to-offset", "4"], "--from-offset and --to-offset together"),
        (["--partition", "1", "--from-offset", "3", "--to-offset", "2"], "is before"),
        (["--partition", "1", "--from-offset", "3", "--to-offset", "4", "--count", "2"], "one or"),
        (["--partition", "0", "--from-offset", "0", "--to-offset", "0", "--from-now"], "one or"),
        (["--partition", "-1", "--from-offset", "0", "--to-offset", "0"], "--partition"),
    ],
)
def test_a_consumed_offset_range_needs_its_three_options_and_nothing_that_follows(args, expected):
    """Refused before Kafka is reached (none runs here), with what was expected."""
    result = CliRunner().invoke(cli, ["consume", "bookings", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_iso_times_become_aware_datetimes_and_whole_kafka_milliseconds():
    at = ISO_TIME.convert("2026-11-22T09:00:00.0019+01:00", None, None)
    assert at == T0 + timedelta(microseconds=1900)
    assert epoch_ms(at) == int(T0.timestamp()) * 1000 + 1


# --- weather verdicts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "transport", "expected"),
    [
        (None, 200, None, ProbeStatus.OK),
        (WeatherAuthError("401"), 401, None, ProbeStatus.BAD_KEY),
        (WeatherRateLimited("429"), 429, None, ProbeStatus.RATE_LIMITED),
        (WeatherUnavailable("t"), None, ProbeStatus.TIMEOUT, ProbeStatus.TIMEOUT),
        (WeatherUnavailable("c"), None, ProbeStatus.UNREACHABLE, ProbeStatus.UNREACHABLE),
        (WeatherUnavailable("malformed body"), 200, None, ProbeStatus.MALFORMED),
        (WeatherUnavailable("500"), 500, None, ProbeStatus.HTTP_ERROR),
        (WeatherNotFound("404"), 404, None, ProbeStatus.NOT_FOUND),
    ],
)
def test_each_kind_of_weather_failure_gets_its_own_verdict(error, status, transport, expected):
    assert classify(error, http_status=status, transport=transport) is expected
    assert expected.passes is (expected is ProbeStatus.OK)


def test_a_weather_check_with_the_default_provider_passes_and_calls_nothing():
    result = CliRunner(env={"WEATHER_PROVIDER": "default"}).invoke(cli, ["weather", "check"])
    assert result.exit_code == 0, result.output
    assert "PASS default" in result.output and "nothing to call" in result.output


def test_a_weather_check_without_an_api_key_fails_and_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENWEATHER_API_KEY", raising=False)
    result = CliRunner(env={"WEATHER_PROVIDER": "openweather"}).invoke(
        cli, ["weather", "check", "--json"]
    )
    assert result.exit_code == 1
    assert '"status": "no_key"' in result.output and "OPENWEATHER_API_KEY" in result.output


def test_weather_check_rejects_a_latitude_off_the_globe():
    result = CliRunner().invoke(cli, ["weather", "check", "--lat", "91"])
    assert result.exit_code == 2 and "-90<=x<=90" in result.output


# --- secrets ---------------------------------------------------------------------------------


def test_every_secret_of_the_settings_is_scrubbed_from_a_message():
    settings = load_settings(
        redis_url="redis://:r3dis-pass@127.0.0.1:1/0",
        database_url="postgresql+psycopg2://u:pg%40pass@127.0.0.1:2/db",
        openweather_api_key="ow-key-123",
    )
    secrets = secrets_of(settings)
    text = (
        "redis://:r3dis-pass@127.0.0.1:1/0 failed; password pg@pass refused; "
        "GET /weather?appid=ow-key-123&lat=1 and key ow-key-123"
    )
    cleaned = scrub(text, secrets)
    for secret in ("r3dis-pass", "pg@pass", "ow-key-123"):
        assert secret not in cleaned
    assert "appid=***" in cleaned


# --- dead letters ----------------------------------------------------------------------------


def letter(**changes: object) -> DeadLetter:
    values: dict[str, object] = {
        "source_topic": "t.bookings",
        "source_partition": 2,
        "source_offset": 17,
        "source_key_b64": DeadLetter.encode_bytes(b"B-1"),
        "original_value_b64": DeadLetter.encode_bytes(b"{not json"),
        "kind": DeadLetterKind.DECODE,
        "error": "not valid UTF-8 JSON:\n  line 1",
        "failed_at": T0,
        "agent": "predict",
    }
    values.update(changes)
    return DeadLetter.model_validate(values)


def test_a_letter_filter_selects_by_time_kind_and_source_topic():
    a = letter()
    assert LetterFilter().matches(a)
    assert LetterFilter(since=T0).matches(a)
    assert not LetterFilter(since=T0 + timedelta(seconds=1)).matches(a)
    assert LetterFilter(kind=DeadLetterKind.DECODE).matches(a)
    assert not LetterFilter(kind=DeadLetterKind.VALIDATION).matches(a)
    assert LetterFilter(source_topic="t.bookings").matches(a)
    assert not LetterFilter(source_topic="bookings").matches(a)


def test_a_source_topic_option_gets_the_prefix_unless_it_has_it():
    assert selection_of(None, None, "bookings", "t.").source_topic == "t.bookings"
    assert selection_of(None, None, "t.bookings", "t.").source_topic == "t.bookings"
    assert selection_of(None, None, "bookings", "").source_topic == "bookings"
    assert selection_of(None, "VALIDATION", None, "").kind is DeadLetterKind.VALIDATION


def test_a_letter_line_shows_time_source_kind_and_the_reason_on_one_line():
    line = letter_line(letter())
    assert line == (
        "2026-11-22T08:00:00+00:00  t.bookings[2]@17  decode      not valid UTF-8 JSON: line 1"
    )
    assert len(letter_line(letter(error="x" * 900), width=50)) < 150


def test_a_message_that_is_not_a_letter_is_recognized_as_unreadable():
    assert parse_letter(letter().model_dump_json().encode()) == letter()
    assert parse_letter(b'{"source_topic": "x"}') is None
    assert parse_letter(None) is None


class _Message:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class _Letters:
    """The reading side of a requeue over a fixed list of letters (one batch, partition 0)."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values
        self.committed: dict[int, int] = {}

    def read(self, topic, ranges, max_batch=500):
        yield [_Message(v, i) for i, v in enumerate(self.values)]

    def commit(self, topic, offsets):
        self.committed.update(offsets)


class _Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic, key, value):
        self.records.append((topic, key, value))

    def flush(self):
        pass


def test_requeue_writes_only_to_the_input_topics_and_counts_the_refused_letters():
    assert requeueable_topics("t.") == {"t.bookings", "t.actual-delays"}
    names = ["t.bookings", "t.predictions", "t.actual-delays", "t.alerts", "__consumer_offsets"]
    names += ["bookings", "t.predictions"]  # an input topic without the deployment's prefix
    values = [letter(source_topic=n).model_dump_json().encode() for n in names]
    reader, producer = _Letters(values), _Sent()
    seen: list[tuple[str, bool]] = []
    report = requeue(
        reader,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        "t.dead-letters",
        [OffsetRange(0, 0, len(values))],
        LetterFilter(),
        existing_topics={*names, "t.outcomes"},
        allowed_topics=requeueable_topics("t."),
        on_letter=lambda a, sent: seen.append((a.source_topic, sent)),
    )
    assert [topic for topic, _, _ in producer.records] == ["t.bookings", "t.actual-delays"]
    assert dict(report.sent) == {"t.bookings": 1, "t.actual-delays": 1}
    assert dict(report.refused) == {
        "t.predictions": 2,
        "t.alerts": 1,
        "__consumer_offsets": 1,
        "bookings": 1,
    }
    assert report.examined == 7 and reader.committed == {0: 7}
    assert seen.count(("t.predictions", False)) == 2


def test_dead_letters_kind_must_be_one_of_the_kinds():
    result = CliRunner().invoke(cli, ["dead-letters", "list", "--kind", "weird"])
    assert result.exit_code == 2 and "'decode', 'too_large', 'validation'" in result.output


def test_requeue_never_sends_a_truncated_letter_back():
    whole = letter(source_topic="t.bookings")
    cut = whole.model_copy(update={"truncated": True, "original_size": 900_000})
    values = [v.model_dump_json().encode() for v in (whole, cut)]
    reader, producer = _Letters(values), _Sent()
    report = requeue(
        reader,  # type: ignore[arg-type]
        producer,  # type: ignore[arg-type]
        "t.dead-letters",
        [OffsetRange(0, 0, len(values))],
        LetterFilter(),
        existing_topics={"t.bookings"},
        allowed_topics=requeueable_topics("t."),
        on_letter=lambda a, sent: None,
    )
    assert len(producer.records) == 1 and report.truncated == 1
    assert dict(report.sent) == {"t.bookings": 1} and reader.committed == {0: 2}


# --- produce csv -----------------------------------------------------------------------------


def test_csv_records_send_valid_rows_and_name_the_lines_of_invalid_ones(tmp_path):
    path = tmp_path / "bookings.csv"
    path.write_text(
        HEADER
        + GOOD_ROW.format(id="B-1", delay=6.5)
        + GOOD_ROW.format(id="B-2", delay=6.5).replace("46.21", "146.21", 1)
        + "B-3,2026-11-02T06:10:00+00:00\n"
        + GOOD_ROW.format(id="B-4", delay=-3)
    )
    records = list(csv_records(path, actuals=True))
    assert [line for line, item in records if isinstance(item, str)] == [3, 4]
    assert "line 3: pickup_lat" in str(records[1][1]) and "line 4: too few values" in str(
        records[2][1]
    )
    valid = [item for _, item in records if not isinstance(item, str)]
    assert [key for key, _, _ in valid] == [b"B-1", b"B-4"]
    assert b'"actual_delay_minutes":-3.0' in valid[1][2]
    assert b'"observed_at":"2026-11-02T07:27:00Z"' in valid[1][2]


def test_produce_csv_dry_run_reports_invalid_lines_and_exits_1(tmp_path):
    path = tmp_path / "bookings.csv"
    path.write_text(HEADER + GOOD_ROW.format(id="B-1", delay=1) + "B-2,x\n")
    result = CliRunner().invoke(cli, ["produce", "csv", str(path), "--dry-run"])
    assert result.exit_code == 1
    assert "would publish 1 bookings" in result.stdout
    assert "1 invalid rows not sent (lines 3)" in result.stdout
    assert "line 3: too few values" in result.stderr


def test_produce_csv_names_a_missing_column():
    runner = CliRunner()
    with runner.isolated_filesystem():
        with open("b.csv", "w") as handle:
            handle.write("booking_id,created_at\nB-1,2026-11-02T06:10:00+00:00\n")
        result = runner.invoke(cli, ["produce", "csv", "b.csv", "--dry-run"])
    assert result.exit_code == 1 and "missing column(s) scheduled_pickup_at" in result.output


# --- progress --------------------------------------------------------------------------------


def test_progress_off_a_terminal_prints_a_line_every_interval():
    ticks = iter([0.0, 1.0, 6.0, 7.0, 12.5, 12.5])
    out = io.StringIO()
    with Progress("replay", 300, every_s=5.0, stream=out, clock=lambda: next(ticks)) as progress:
        progress.update(100)  # t=1: not yet
        progress.update(100)  # t=6: a line
        progress.update(50)  # t=7: not yet
        progress.update(50)  # t=12.5: a line
    assert out.getvalue().splitlines() == [
        "replay: 200/300 (67 %), 33/s",
        "replay: 300/300 (100 %), 24/s",
    ]


# --- docstring examples ----------------------------------------------------------------------


def test_the_dead_letter_commands_offer_every_kind_a_worker_writes():
    from schemas import DeadLetterKind
    from streams.operate.cli.dead_letters_cmd import KINDS

    assert list(KINDS.choices) == [k.value for k in DeadLetterKind]
