"""``trustload policy digest DIR``: the bundle's ``policy_digest``, computed exactly
as the gate computes ``policy_digest(runtime)`` (see ``docs/policy.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Policy bundles (Rego).", no_args_is_help=True)

    @group.command("digest")
    def digest(
        directory: Annotated[Path, typer.Argument(help="Policy bundle directory.")],
        check: Annotated[
            bool,
            typer.Option("--check", help="Also compile the bundle (exit 2 if it does not)."),
        ] = False,
    ) -> None:
        """Print ``sha256:<hex>`` of a policy bundle."""
        if check:
            from trustload.policy.rego import PolicyEngine

            typer.echo(PolicyEngine.from_dir(directory).digest)
            return
        from trustload.policy.bundle import policy_digest

        typer.echo(policy_digest(directory))

    app.add_typer(group, name="policy")
