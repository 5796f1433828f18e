"""``trustload verify-image REF TRUST ...``: ``cosign verify`` (and ``verify-attestation``
with the seed's checks) for one image or artifact by digest, offline, no cosign binary.

Same decision JSON and exit status as ``verify``: 0 permit, 1 deny, 2 usage (a tag-only
reference, contradictory trust flags, unreadable keys). Heavy modules load inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("verify-image")
    def verify_image(
        ref: Annotated[
            str, typer.Argument(help="HOST[:PORT]/REPO@sha256:<hex> or oci-layout:DIR@sha256:<hex>")
        ],
        key: Annotated[
            list[Path] | None, typer.Option("--key", help="Trusted public key (PEM); repeatable.")
        ] = None,
        certificate_identity: Annotated[
            str | None, typer.Option("--certificate-identity", help="Exact SAN e-mail or URI.")
        ] = None,
        certificate_oidc_issuer: Annotated[
            str | None, typer.Option("--certificate-oidc-issuer", help="Exact OIDC issuer.")
        ] = None,
        ca_roots: Annotated[
            list[Path] | None, typer.Option("--ca-roots", help="Fulcio / private-CA roots (PEM).")
        ] = None,
        ca_intermediates: Annotated[
            list[Path] | None, typer.Option("--ca-intermediates", help="Intermediates (PEM).")
        ] = None,
        trusted_root: Annotated[
            Path | None, typer.Option("--trusted-root", help="Sigstore trusted_root.json.")
        ] = None,
        rekor_key: Annotated[
            list[Path] | None,
            typer.Option("--rekor-key", help="Rekor public key; a SET is then required."),
        ] = None,
        attestation_type: Annotated[
            str | None,
            typer.Option("--attestation-type", help="cosign --type name or predicate URI."),
        ] = None,
        git_sha: Annotated[str | None, typer.Option("--git-sha")] = None,
        container_digest: Annotated[str | None, typer.Option("--container-digest")] = None,
        dataset_snapshot: Annotated[str | None, typer.Option("--dataset-snapshot")] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="TOML with [[oci.registries]].")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Verify an image's cosign signature (and attestation); exit 0 permit, 1 deny."""
        from trustload.checks.image import predicate_uri
        from trustload.cli.verify import summary
        from trustload.errors import UsageError
        from trustload.facts import Expectations
        from trustload.image import AttestationRequest, build_anchors
        from trustload.image import verify_image as run
        from trustload.oci.reference import parse_reference

        parse_reference(ref)  # a tag-only reference is a usage error before anything else
        anchors = build_anchors(
            keys=key or (),
            certificate_identity=certificate_identity,
            certificate_oidc_issuer=certificate_oidc_issuer,
            ca_roots=ca_roots or (),
            ca_intermediates=ca_intermediates or (),
            trusted_root=trusted_root,
            rekor_keys=rekor_key or (),
        )
        request: AttestationRequest | None = None
        expected = (git_sha, container_digest, dataset_snapshot)
        if attestation_type is None and any(v is not None for v in expected):
            raise UsageError(
                "--git-sha/--container-digest/--dataset-snapshot need --attestation-type"
            )
        if attestation_type is not None:
            uri = predicate_uri(attestation_type)
            if uri is None:
                raise UsageError(f"--attestation-type {attestation_type!r}: unknown type")
            request = AttestationRequest(
                uri, Expectations(git_sha, container_digest, dataset_snapshot)
            )
        decision = run(ref, anchors, attestation=request, config=config)
        doc = decision.to_json()
        if as_json:
            from trustload.cli.jsonout import emit_json

            emit_json(doc)
        else:
            for line in summary(doc):
                typer.echo(line, err=True)
        if not decision.permitted:
            raise SystemExit(1)
