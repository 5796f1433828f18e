"""``trustload verify-image REF TRUST ...``: ``cosign verify`` (and ``verify-attestation``
with the seed's checks) for one image or artifact by digest, offline, no cosign binary.

Same decision JSON and exit status as ``verify``: 0 permit, 1 deny, 2 usage (a tag-only
reference, contradictory trust flags, unreadable keys). An admission path runs it on
every image, so it is a typer-free fast command (:mod:`trustload.cli.fast`): start-up
imports only what the verification needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.cli.fast import register_passthrough, run_fast

if TYPE_CHECKING:
    import typer

HELP = "Verify an image's cosign signature (and attestation); exit 0 permit, 1 deny."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustload verify-image", description=HELP.replace("deny.", "deny, 2 usage.")
    )
    parser.add_argument("ref", help="HOST[:PORT]/REPO@sha256:<hex> or oci-layout:DIR@sha256:<hex>")

    def many(flag: str, help_text: str) -> None:
        parser.add_argument(flag, type=Path, action="append", default=[], help=help_text)

    many("--key", "Trusted public key (PEM); repeatable.")
    parser.add_argument("--certificate-identity", help="Exact SAN e-mail or URI.")
    parser.add_argument("--certificate-oidc-issuer", help="Exact OIDC issuer.")
    many("--ca-roots", "Fulcio / private-CA roots (PEM).")
    many("--ca-intermediates", "Intermediates (PEM).")
    parser.add_argument("--trusted-root", type=Path, help="Sigstore trusted_root.json.")
    many("--rekor-key", "Rekor public key; a SET is then required.")
    parser.add_argument("--attestation-type", help="cosign --type name or predicate URI.")
    parser.add_argument("--git-sha")
    parser.add_argument("--container-digest")
    parser.add_argument("--dataset-snapshot")
    parser.add_argument("--config", type=Path, help="TOML with [[oci.registries]].")
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="Print one JSON document."
    )
    return parser


def _verify(ns: argparse.Namespace) -> int:
    from trustload.checks.image import predicate_uri
    from trustload.cli.jsonout import emit_decision
    from trustload.errors import UsageError
    from trustload.facts import Expectations
    from trustload.image import AttestationRequest, build_anchors
    from trustload.image import verify_image as run
    from trustload.oci.reference import parse_reference

    parse_reference(ns.ref)  # a tag-only reference is a usage error before anything else
    anchors = build_anchors(
        keys=ns.key,
        certificate_identity=ns.certificate_identity,
        certificate_oidc_issuer=ns.certificate_oidc_issuer,
        ca_roots=ns.ca_roots,
        ca_intermediates=ns.ca_intermediates,
        trusted_root=ns.trusted_root,
        rekor_keys=ns.rekor_key,
    )
    request: AttestationRequest | None = None
    expected = (ns.git_sha, ns.container_digest, ns.dataset_snapshot)
    if ns.attestation_type is None and any(v is not None for v in expected):
        raise UsageError("--git-sha/--container-digest/--dataset-snapshot need --attestation-type")
    if ns.attestation_type is not None:
        uri = predicate_uri(ns.attestation_type)
        if uri is None:
            raise UsageError(f"--attestation-type {ns.attestation_type!r}: unknown type")
        request = AttestationRequest(uri, Expectations(*expected))
    decision = run(ns.ref, anchors, attestation=request, config=ns.config)
    emit_decision(decision.to_json(), as_json=ns.as_json)
    return 0 if decision.permitted else 1


def fast_main(argv: list[str] | None = None) -> int:
    """``verify-image`` as :mod:`trustload.cli.entry` runs it, before typer is imported."""
    return run_fast(_parser(), _verify, argv)


def register(app: typer.Typer) -> None:
    register_passthrough(app, "verify-image", HELP, fast_main)


if __name__ == "__main__":  # python -m trustload.cli.verify_image ...
    raise SystemExit(fast_main())
