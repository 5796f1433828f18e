"""``trustload token``: a short-lived token from the dev issuer (production uses an IdP)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def token(
    config: Annotated[Path, typer.Option("--config", help="registry.toml with [dev_issuer].")],
    sub: Annotated[str, typer.Option("--sub", help="Token subject (workload identity).")],
    tenant: Annotated[str, typer.Option("--tenant", help="tenant_id claim.")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="Purpose claim(s), comma separated.")
    ] = "",
    domain: Annotated[str | None, typer.Option("--domain", help="domain claim.")] = None,
    ttl: Annotated[int, typer.Option("--ttl", help="Lifetime in seconds.")] = 300,
    role: Annotated[str, typer.Option("--role", help="consumer | publisher | admin.")] = "consumer",
    bind_cert: Annotated[
        Path | None,
        typer.Option(
            "--bind-cert",
            help="Bind the token to this client certificate (PEM): cnf.x5t#S256, RFC 8705.",
        ),
    ] = None,
) -> None:
    """Print a signed ES256 token (JWT) with trustload's claims."""
    from trustload.config import load_registry_config
    from trustload.errors import UsageError
    from trustload.oidc import mint_token, thumbprint_of_file

    service = load_registry_config(config)
    if service.dev_issuer is None:
        raise UsageError(f"{config} has no [dev_issuer] section")
    purposes = [p.strip() for p in purpose.split(",") if p.strip()]
    typer.echo(
        mint_token(
            service.dev_issuer,
            sub=sub,
            tenant=tenant,
            purposes=purposes,
            domain=domain,
            role=role,
            ttl=ttl,
            bind_x5t=None if bind_cert is None else thumbprint_of_file(bind_cert),
        )
    )


def register(app: typer.Typer) -> None:
    app.command("token")(token)
