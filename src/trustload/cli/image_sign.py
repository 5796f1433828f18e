"""``trustload sign-image`` and ``attest-image``: cosign 2.x signatures in a registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from trustload.oci.reference import RegistryRef
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport


def _repository(
    ref_text: str, config: Path | None
) -> tuple[RegistryRef, OciTransport, RegistryRepository]:
    from trustload.config import OciConfig, load_oci_config
    from trustload.oci.reference import parse_registry_ref
    from trustload.oci.registry import RegistryRepository
    from trustload.oci.transport import OciTransport

    ref = parse_registry_ref(ref_text)
    cfg = load_oci_config(config) if config is not None else OciConfig()
    transport = OciTransport(cfg)
    return ref, transport, RegistryRepository(transport, ref.host, ref.repository)


def register(app: typer.Typer) -> None:
    @app.command("sign-image")
    def sign_image(
        ref: Annotated[str, typer.Argument(help="HOST[:PORT]/REPO@sha256:<hex>")],
        key: Annotated[Path, typer.Option("--key", help="Private key (PEM).")],
        config: Annotated[
            Path | None, typer.Option("--config", help="TOML with [[oci.registries]].")
        ] = None,
    ) -> None:
        """Sign an image (or artifact) by digest, as `cosign sign --key` does."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.oci.cosign_sign import sign_image as do_sign

        pinned, transport, repo = _repository(ref, config)
        with transport:
            written = do_sign(repo, pinned, key, key_password_from_env())
        typer.echo(f"{pinned.host}/{pinned.repository}:{written.tag}@{written.manifest_digest}")

    @app.command("attest-image")
    def attest_image(
        ref: Annotated[str, typer.Argument(help="HOST[:PORT]/REPO@sha256:<hex>")],
        key: Annotated[Path, typer.Option("--key", help="Private key (PEM).")],
        git_sha: Annotated[str, typer.Option("--git-sha", help="Source commit.")],
        container_digest: Annotated[
            str, typer.Option("--container-digest", help="Serving image digest.")
        ],
        dataset_snapshot: Annotated[
            str, typer.Option("--dataset-snapshot", help="Dataset snapshot id.")
        ],
        config: Annotated[
            Path | None, typer.Option("--config", help="TOML with [[oci.registries]].")
        ] = None,
    ) -> None:
        """Attach SLSA v1 provenance (DSSE) by digest, as `cosign attest --key` does."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.oci.cosign_sign import attest_image as do_attest

        pinned, transport, repo = _repository(ref, config)
        with transport:
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
