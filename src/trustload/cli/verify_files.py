"""``trustload verify-files``: the gate's signature and attestation checks on local
files, with no Registry (for CI pipelines).

Exit 0 permit, 1 deny (the decision says why), 2 usage. With ``--json`` exactly one
decision document goes to stdout; otherwise one line per check goes to stderr.
Everything heavy is imported inside the command (start-up time is benchmarked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _human(decision_doc: dict[str, object]) -> None:
    checks = decision_doc.get("checks")
    for check in checks if isinstance(checks, list) else []:
        mark = "ok  " if check["ok"] else "FAIL"
        code = f" {check['code']}" if check["code"] else ""
        typer.echo(f"{mark} {check['name']}{code}: {check['detail']} ({check['ms']} ms)", err=True)
    reasons = decision_doc.get("reasons") or []
    verdict = str(decision_doc.get("decision", "deny")).upper()
    suffix = (
        f": {', '.join(str(r) for r in reasons)}" if isinstance(reasons, list) and reasons else ""
    )
    typer.echo(f"{verdict} {decision_doc.get('requested')}{suffix}", err=True)


def register(app: typer.Typer) -> None:
    @app.command("verify-files")
    def verify_files(
        path: Annotated[Path, typer.Argument(help="Model file or directory.")],
        signature: Annotated[
            Path, typer.Option("--signature", help="The model's signature bundle.")
        ],
        key: Annotated[
            list[Path] | None,
            typer.Option("--key", help="Trusted public key (PEM); repeatable."),
        ] = None,
        certificate_identity: Annotated[
            str | None,
            typer.Option("--certificate-identity", help="Keyless: the signer's identity."),
        ] = None,
        certificate_oidc_issuer: Annotated[
            str | None,
            typer.Option("--certificate-oidc-issuer", help="Keyless: the identity's issuer."),
        ] = None,
        trusted_root: Annotated[
            Path | None,
            typer.Option("--trusted-root", help="Sigstore trusted_root.json (offline)."),
        ] = None,
        attestation: Annotated[
            Path | None, typer.Option("--attestation", help="DSSE in-toto attestation.")
        ] = None,
        git_sha: Annotated[str | None, typer.Option("--git-sha")] = None,
        container_digest: Annotated[str | None, typer.Option("--container-digest")] = None,
        dataset_snapshot: Annotated[str | None, typer.Option("--dataset-snapshot")] = None,
        policy: Annotated[
            Path | None,
            typer.Option("--policy", help="Policy bundle directory (default: the shipped one)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    ) -> None:
        """Verify a model's signature (and attestation) locally; exit 0 permit, 1 deny."""
        from trustload.engine import verify_files as run

        decision = run(
            path,
            signature=signature,
            public_keys=tuple(key or ()),
            certificate_identity=certificate_identity,
            certificate_oidc_issuer=certificate_oidc_issuer,
            trusted_root=trusted_root,
            attestation=attestation,
            git_sha=git_sha,
            container_digest=container_digest,
            dataset_snapshot=dataset_snapshot,
            policy_dir=policy,
        )
        doc = decision.to_json()
        if as_json:
            from trustload.cli.jsonout import emit_json

            emit_json(doc)
        else:
            _human(doc)
        if not decision.permitted:
            raise SystemExit(1)
