"""``trustload sign-image`` and ``attest-image``: cosign 2.x signatures in a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trustload.cli.options import ContainerDigestOpt, DatasetSnapshotOpt, GitShaOpt, SigningKeyOpt

_REF_HELP = "HOST[:PORT]/REPO@sha256:<hex>"
_CONFIG_HELP = "TOML with [[oci.registries]] (only listed hosts are contacted)."


def register(app: typer.Typer) -> None:
    @app.command("sign-image")
    def sign_image(
        ref: Annotated[str, typer.Argument(help=_REF_HELP)],
        key: SigningKeyOpt,
        config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    ) -> None:
        """Sign an image (or artifact) by digest, as `cosign sign --key` does."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.oci.cosign_sign import sign_image as do_sign
        from trustload.oci.reference import parse_registry_ref
        from trustload.oci.registry import open_reader

        pinned = parse_registry_ref(ref)
        with open_reader(pinned, config) as repo:
            written = do_sign(repo, pinned, key, key_password_from_env())
        typer.echo(f"{pinned.host}/{pinned.repository}:{written.tag}@{written.manifest_digest}")

    @app.command("attest-image")
    def attest_image(
        ref: Annotated[str, typer.Argument(help=_REF_HELP)],
        key: SigningKeyOpt,
        git_sha: GitShaOpt,
        container_digest: ContainerDigestOpt,
        dataset_snapshot: DatasetSnapshotOpt,
        config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    ) -> None:
        """Attach SLSA v1 provenance (DSSE) by digest, as `cosign attest --key` does."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.oci.cosign_sign import attest_image as do_attest
        from trustload.oci.reference import parse_registry_ref
        from trustload.oci.registry import open_reader

        pinned = parse_registry_ref(ref)
        with open_reader(pinned, config) as repo:
            written = do_attest(
                repo,
                pinned,
                key,
                git_sha=git_sha,
                container_digest=container_digest,
                dataset_snapshot=dataset_snapshot,
                password=key_password_from_env(),
            )
        typer.echo(f"{pinned.host}/{pinned.repository}:{written.tag}@{written.manifest_digest}")
