"""``trustload registry stage|alias|revoke|quarantine|release``: governance actions.

Thin commands over :class:`trustload.client.api.RegistryClient` with the admin
identity of ``--config admin.toml`` (same mTLS + token channel as the gate). The
Registry enforces the roles (separation of duties) and logs every action; a refusal
exits 1 with the Registry's reason, a bad invocation exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trustload.errors import UsageError

STAGE_NAMES = ("Staging", "Approved", "Archived")

ConfigOpt = Annotated[Path, typer.Option("--config", help="admin.toml")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the Registry's answer as JSON.")]


def _pinned(ref: str) -> tuple[str, str]:
    from trustload.facts import ModelRef

    parsed = ModelRef.parse(ref)
    return parsed.name, parsed.ref


def _client(config: Path) -> Any:
    from trustload.client.api import RegistryClient
    from trustload.config import load_client_config

    return RegistryClient(load_client_config(config).registry)


def _report(answer: Any, as_json: bool, text: str) -> None:
    if as_json:
        from trustload.cli.jsonout import emit_json

        emit_json(answer)
    else:
        typer.echo(text, err=True)


def register(app: typer.Typer) -> None:
    @app.command("stage")
    def stage(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
        stage_name: Annotated[
            str, typer.Argument(metavar="STAGE", help="Staging|Approved|Archived")
        ],
        config: ConfigOpt,
        as_json: JsonOpt = False,
    ) -> None:
        """Set a version's stage (admin only)."""
        if stage_name not in STAGE_NAMES:
            raise UsageError(f"STAGE must be one of {', '.join(STAGE_NAMES)}, got {stage_name!r}")
        name, version = _pinned(ref)
        with _client(config) as client:
            answer = client.set_stage(name, version, stage_name)
        _report(answer, as_json, f"{name}@{version} stage -> {stage_name}")

    @app.command("alias")
    def alias(
        name: Annotated[str, typer.Argument(help="Model name.")],
        alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production")],
        version: Annotated[str, typer.Argument(help="The version the alias points at.")],
        config: ConfigOpt,
        change_ticket: Annotated[
            str | None,
            typer.Option("--change-ticket", help="Authorises a move to an older version."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Point an alias at a version (admin only); its revision increases by one."""
        with _client(config) as client:
            answer = client.set_alias(name, alias_name, version, change_ticket)
        revision = answer.get("revision") if isinstance(answer, dict) else None
        _report(answer, as_json, f"{name}@{alias_name} -> {version} (revision {revision})")

    @app.command("revoke")
    def revoke(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
        config: ConfigOpt,
        as_json: JsonOpt = False,
    ) -> None:
        """Revoke a version (final)."""
        name, version = _pinned(ref)
        with _client(config) as client:
            answer = client.revoke(name, version, reason)
        _report(answer, as_json, f"{name}@{version} revoked: {reason}")

    @app.command("quarantine")
    def quarantine(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
        reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
        config: ConfigOpt,
        as_json: JsonOpt = False,
    ) -> None:
        """Quarantine a version (reversible with ``release``)."""
        name, version = _pinned(ref)
        with _client(config) as client:
            answer = client.quarantine(name, version, reason)
        _report(answer, as_json, f"{name}@{version} quarantined: {reason}")

    @app.command("release")
    def release(
        ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
        config: ConfigOpt,
        as_json: JsonOpt = False,
    ) -> None:
        """Lift a quarantine (never a revocation)."""
        name, version = _pinned(ref)
        with _client(config) as client:
            answer = client.release(name, version)
        _report(answer, as_json, f"{name}@{version} released from quarantine")
