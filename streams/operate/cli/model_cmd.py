"""``delaycast model``: list the trained versions, promote one, roll back to the previous one.

Workers reload the champion within a few seconds of a change (they poll CHAMPION), so promotion
and rollback need no restart. A version is checked (checksum, features, unpickling) before it
becomes champion: a broken artifact is refused here instead of being discovered by the workers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _model_dir(value: Path | None) -> Path:
    if value is not None:
        return value
    from streams.settings import get_settings

    return get_settings().model_dir


model_dir_option = click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the versions live (default: the MODEL_DIR setting).",
)


def _holdout(metadata: dict[str, Any]) -> str:
    holdout = metadata.get("metrics", {}).get("holdout", {})
    model, heuristic = holdout.get("model", {}), holdout.get("heuristic", {})
    if "mae" not in model:
        return "no holdout metrics"
    return (
        f"holdout MAE {model['mae']:.2f} / R² {model.get('r2', float('nan')):.3f} "
        f"(heuristic {heuristic.get('mae', float('nan')):.2f} / "
        f"{heuristic.get('r2', float('nan')):.3f})"
    )


@click.group()
def model() -> None:
    """Trained model versions and the champion that workers serve.

    \b
    Examples:
      delaycast model list
      delaycast model promote rf-20261120T101500Z-4d505342
      delaycast model rollback          # back to the version before the champion
    """


@model.command("list")
@model_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def list_cmd(model_dir: Path | None, as_json: bool) -> None:
    """List the versions, oldest first; the champion is marked with '*', the challenger (from
    ``delaycast retrain``) with 'c'.

    \b
    Examples:
      delaycast model list
      delaycast model list --json
    """
    from connectors.model_store import (
        ArtifactError,
        challenger_version,
        champion_version,
        list_versions,
        read_metadata,
    )

    directory = _model_dir(model_dir)
    champion = champion_version(directory)
    challenger = challenger_version(directory)
    versions = list_versions(directory)
    if not versions:
        raise click.ClickException(f"no model versions in {directory}; train one first")
    for version in versions:
        try:
            metadata = read_metadata(directory, version)
        except ArtifactError as exc:
            metadata = {"error": str(exc)}
        if as_json:
            row = {
                "version": version,
                "champion": version == champion,
                "challenger": version == challenger,
                "created_at": metadata.get("created_at"),
                "metrics": metadata.get("metrics"),
                "error": metadata.get("error"),
            }
            click.echo(json.dumps(row))
            continue
        mark = "*" if version == champion else "c" if version == challenger else " "
        detail = metadata.get("error") or _holdout(metadata)
        click.echo(f"{mark} {version}  {detail}")


def _promote(directory: Path, version: str, action: str) -> None:
    from connectors.model_store import (
        ArtifactError,
        champion_version,
        load_version,
        record_audit,
        set_champion,
    )
    from streams.settings import get_settings

    before = champion_version(directory)
    try:
        loaded = load_version(directory, version, get_settings().service_area)
    except ArtifactError as exc:
        raise click.ClickException(
            f"{version} cannot be served, champion unchanged: {exc}"
        ) from None
    set_champion(directory, version)
    record_audit(directory, action, version=version, previous=before)
    click.echo(f"champion: {before or 'none'} -> {version} ({_holdout(loaded.metadata)})")
    click.echo("workers switch to it within a few seconds (they poll CHAMPION)")


@model.command()
@model_dir_option
@click.argument("version")
def promote(model_dir: Path | None, version: str) -> None:
    """Make VERSION the champion, after checking that it loads.

    \b
    Example:
      delaycast model promote rf-20261120T101500Z-4d505342
    """
    from connectors.model_store import list_versions

    directory = _model_dir(model_dir)
    if version not in list_versions(directory):
        known = ", ".join(list_versions(directory)[-5:]) or "none"
        raise click.BadParameter(
            f"no version {version!r} in {directory} (newest: {known})", param_hint="VERSION"
        )
    _promote(directory, version, "promote")


@model.command()
@model_dir_option
def rollback(model_dir: Path | None) -> None:
    """Make the version created before the current champion the champion again, passing over
    challengers of ``delaycast retrain`` that were never champion.

    \b
    Example:
      delaycast model rollback
    """
    from connectors.model_store import champion_version, list_versions, read_audit

    directory = _model_dir(model_dir)
    champion = champion_version(directory)
    versions = list_versions(directory)
    if champion not in versions:
        raise click.ClickException(f"no champion in {directory} to roll back from")
    audit = read_audit(directory)
    served = {e.get("version") for e in audit if e.get("action") != "challenger"}
    untried = {e.get("version") for e in audit if e.get("action") == "challenger"} - served
    earlier = [v for v in versions[: versions.index(champion)] if v not in untried]
    if not earlier:
        raise click.ClickException(
            f"no version older than {champion} that was not only a challenger: nothing to roll "
            "back to (`delaycast model promote VERSION` names one)"
        )
    _promote(directory, earlier[-1], "rollback")
