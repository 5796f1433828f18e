"""``trustload registry stage|alias|revoke|quarantine|release``: governance actions.

Thin commands over :class:`trustload.client.api.RegistryClient` with the admin
identity of ``--config admin.toml`` (same mTLS + token channel as the gate). The
Registry enforces the roles (separation of duties) and logs every action; a refusal
exits 1 with the Registry's reason, a bad invocation exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from trustload.errors import UsageError

STAGE_NAMES = ("Staging", "Approved", "Archived")

ConfigOpt = Annotated[Path, typer.Option("--config", help="admin.toml")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the Registry's answer as JSON.")]
VersionArg = Annotated[str, typer.Argument(help="NAME@VERSION")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded).")]


def _pinned(ref: str) -> tuple[str, str]:
    from trustload.facts import ModelRef

    parsed = ModelRef.parse(ref)
    return parsed.name, parsed.ref


def _client(config: Path) -> Any:
    from trustload.client.api import RegistryClient
    from trustload.config import load_client_config

    return RegistryClient(load_client_config(config).registry)


def _on_version(
    ref: str, config: Path, action: Callable[[Any, str, str], Any]
) -> tuple[str, str, Any]:
    """Run ``action(client, name, version)`` for a pinned ``NAME@VERSION``."""
    name, version = _pinned(ref)
    with _client(config) as client:
        return name, version, action(client, name, version)


def _report(answer: Any, as_json: bool, text: str) -> None:
    if as_json:
        from trustload.cli.jsonout import emit_json

        emit_json(answer)
    else:
        typer.echo(text, err=True)


def register(app: typer.Typer) -> None:
    @app.command("stage")
    def stage(
        ref: VersionArg,
        stage_name: Annotated[
            str, typer.Argument(metavar="STAGE", help="Staging|Approved|Archived")
        ],
        config: ConfigOpt,
        as_json: JsonOpt = False,
    ) -> None:
        """Set a version's stage (admin only)."""
        if stage_name not in STAGE_NAMES:
            raise UsageError(f"STAGE must be one of {', '.join(STAGE_NAMES)}, got {stage_name!r}")
        name, version, answer = _on_version(
            ref, config, lambda client, n, v: client.set_stage(n, v, stage_name)
        )
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
        ref: VersionArg, reason: ReasonOpt, config: ConfigOpt, as_json: JsonOpt = False
    ) -> None:
        """Revoke a version (final)."""
        name, version, answer = _on_version(
            ref, config, lambda client, n, v: client.revoke(n, v, reason)
        )
        _report(answer, as_json, f"{name}@{version} revoked: {reason}")

    @app.command("quarantine")
    def quarantine(
        ref: VersionArg, reason: ReasonOpt, config: ConfigOpt, as_json: JsonOpt = False
    ) -> None:
        """Quarantine a version (reversible with ``release``)."""
        name, version, answer = _on_version(
            ref, config, lambda client, n, v: client.quarantine(n, v, reason)
        )
        _report(answer, as_json, f"{name}@{version} quarantined: {reason}")

    @app.command("release")
    def release(ref: VersionArg, config: ConfigOpt, as_json: JsonOpt = False) -> None:
        """Lift a quarantine (never a revocation)."""
        name, version, answer = _on_version(ref, config, lambda client, n, v: client.release(n, v))
        _report(answer, as_json, f"{name}@{version} released from quarantine")
