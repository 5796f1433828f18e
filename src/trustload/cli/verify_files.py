"""``trustload verify-files``: the gate's signature and attestation checks on local
files, with no Registry (for CI pipelines).

Exit 0 permit, 1 deny (the decision says why), 2 usage. With ``--json`` exactly one
decision document goes to stdout; otherwise one line per check goes to stderr.
Everything heavy is imported inside the command (start-up time is benchmarked).
"""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

# No ``from __future__ import annotations`` here: typer is imported inside
# :func:`register`, so its ``Annotated`` metadata must be evaluated there, eagerly.
# That keeps ``python -m trustload.cli.verify_files`` (:func:`fast_main`) free of
# typer and pydantic.


def _echo(line: str) -> None:
    sys.stderr.write(line + "\n")


def _human(decision_doc: dict[str, object]) -> None:
    checks = decision_doc.get("checks")
    for check in checks if isinstance(checks, list) else []:
        mark = "ok  " if check["ok"] else "FAIL"
        code = f" {check['code']}" if check["code"] else ""
        _echo(f"{mark} {check['name']}{code}: {check['detail']} ({check['ms']} ms)")
    reasons = decision_doc.get("reasons") or []
    verdict = str(decision_doc.get("decision", "deny")).upper()
    suffix = (
        f": {', '.join(str(r) for r in reasons)}" if isinstance(reasons, list) and reasons else ""
    )
    _echo(f"{verdict} {decision_doc.get('requested')}{suffix}")


def register(app: "typer.Typer") -> None:
    import typer  # the runtime import; the one above is for type checkers

    @app.command("verify-files")
    def verify_files(
        path: Annotated[
            str,
            typer.Argument(
                help="Model file or directory, or sha256:<hex> to verify a digest "
                "(no file needed; ./sha256:... names a file)."
            ),
        ],
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
            typer.Option(
                "--trusted-root",
                help="Sigstore trusted_root.json (offline). With --key: its logs, and a "
                "log entry is required.",
            ),
        ] = None,
        rekor_key: Annotated[
            list[Path] | None,
            typer.Option(
                "--rekor-key",
                help="Rekor public key (PEM); repeatable. A log entry is then required.",
            ),
        ] = None,
        ca_roots: Annotated[
            list[Path] | None,
            typer.Option("--ca-roots", help="Fulcio or private-CA root certificates (PEM)."),
        ] = None,
        ca_intermediates: Annotated[
            list[Path] | None,
            typer.Option("--ca-intermediates", help="Intermediate certificates (PEM)."),
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
            rekor_keys=tuple(rekor_key or ()),
            ca_roots=tuple(ca_roots or ()),
            ca_intermediates=tuple(ca_intermediates or ()),
        )
        doc = decision.to_json()
        if as_json:
            from trustload.cli.jsonout import emit_json

            emit_json(doc)
        else:
            _human(doc)
        if not decision.permitted:
            raise SystemExit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustload verify-files",
        description="Verify a model's signature (and attestation) locally; "
        "exit 0 permit, 1 deny, 2 usage.",
    )
    parser.add_argument("path", help="Model file or directory, or sha256:<hex>.")
    parser.add_argument("--signature", type=Path, required=True)
    parser.add_argument("--key", type=Path, action="append", default=[])
    parser.add_argument("--certificate-identity")
    parser.add_argument("--certificate-oidc-issuer")
    parser.add_argument("--trusted-root", type=Path)
    parser.add_argument("--rekor-key", type=Path, action="append", default=[])
    parser.add_argument("--ca-roots", type=Path, action="append", default=[])
    parser.add_argument("--ca-intermediates", type=Path, action="append", default=[])
    parser.add_argument("--attestation", type=Path)
    parser.add_argument("--git-sha")
    parser.add_argument("--container-digest")
    parser.add_argument("--dataset-snapshot")
    parser.add_argument("--policy", type=Path)
    parser.add_argument("--json", dest="as_json", action="store_true")
    return parser


class _UsageExit(Exception):
    pass


def fast_main(argv: list[str] | None = None) -> int:
    """``verify-files`` without typer (whose pydantic-based coercion costs ~0.25 s of
    start-up): same options, output and exit status as the typer command."""
    from trustload.errors import TrustloadError, UsageError

    parser = _parser()

    def usage_error(message: str) -> None:
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        raise _UsageExit

    parser.error = usage_error  # type: ignore[method-assign,assignment]
    try:
        ns = parser.parse_args(argv)
        from trustload.engine import verify_files as run

        decision = run(
            ns.path,
            signature=ns.signature,
            public_keys=tuple(ns.key),
            certificate_identity=ns.certificate_identity,
            certificate_oidc_issuer=ns.certificate_oidc_issuer,
            trusted_root=ns.trusted_root,
            attestation=ns.attestation,
            git_sha=ns.git_sha,
            container_digest=ns.container_digest,
            dataset_snapshot=ns.dataset_snapshot,
            policy_dir=ns.policy,
            rekor_keys=tuple(ns.rekor_key),
            ca_roots=tuple(ns.ca_roots),
            ca_intermediates=tuple(ns.ca_intermediates),
        )
    except _UsageExit:
        return 2
    except UsageError as exc:
        sys.stderr.write(f"trustload: error: {exc}\n")
        return 2
    except TrustloadError as exc:
        sys.stderr.write(f"trustload: denied: {exc}\n")
        return 1
    except Exception as exc:  # fail closed: never a traceback, never a permit
        sys.stderr.write(f"trustload: internal error ({type(exc).__name__}): {exc}\n")
        return 1
    doc = decision.to_json()
    if ns.as_json:
        from trustload.cli.jsonout import emit_json

        emit_json(doc)
    else:
        _human(doc)
    return 0 if decision.permitted else 1


if __name__ == "__main__":  # python -m trustload.cli.verify_files ...
    raise SystemExit(fast_main())
