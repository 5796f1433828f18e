"""``trustload keys generate PREFIX``: an ECDSA P-256 key pair usable where cosign's is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Manage signing keys.", no_args_is_help=True)

    @group.command("generate")
    def generate(
        prefix: Annotated[Path, typer.Argument(help="Writes PREFIX.key and PREFIX.pub.")],
    ) -> None:
        """Write PREFIX.key (PKCS#8 PEM; encrypted if TRUSTLOAD_KEY_PASSWORD) and PREFIX.pub."""
        from trustload.crypto.keys import generate_keypair, key_password_from_env

        key_path, pub_path = generate_keypair(prefix, key_password_from_env())
        typer.echo(f"private key: {key_path}")
        typer.echo(f"public key:  {pub_path}")

    app.add_typer(group, name="keys")
