"""``delaycast verify``: pre-flight checks before starting workers (or after a change)."""

from __future__ import annotations

import json
import logging

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
def verify(as_json: bool) -> None:
    """Check everything a worker needs, one PASS/FAIL line each; exit status 1 on any FAIL.

    \b
    The checks:
      model      the champion in MODEL_DIR exists, its sha256 matches, it loads and
                 predicts one synthetic booking
      kafka      the brokers answer; every catalogue topic exists with TOPIC_PREFIX and
                 TOPIC_PARTITIONS partitions
      redis      PING, and the flags hash (FLAGS_REDIS_KEY) is readable
      postgres   it answers, and its schema is at the migrations head
      weather    one call to WEATHER_PROVIDER (as `delaycast weather check`);
                 `default` passes with a note

    Passwords, tokens and the OpenWeather key never appear in the output.

    \b
    Examples:
      delaycast verify
      delaycast verify --json | jq '.checks[] | select(.ok | not)'
      delaycast verify && delaycast worker
    """
    from streams.clock import utc_now
    from streams.operate.preflight import run_checks
    from streams.settings import get_settings

    # Drivers and the weather client log their failures too; the report says each once.
    for name in ("connectors", "delaycast", "confluent_kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    checks = run_checks(get_settings(), now=utc_now())
    ok = all(c.ok for c in checks)
    failed = sum(not c.ok for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [c.to_dict() for c in checks]}))
    else:
        for check in checks:
            click.echo(check.line())
        click.echo(
            f"verify: all {len(checks)} checks passed"
            if ok
            else f"verify: {failed} of {len(checks)} checks FAILED"
        )
    if not ok:
        raise SystemExit(1)
