"""``trustload verify-files``: the gate's signature and attestation checks on local
files, with no Registry (for CI pipelines).

Exit 0 permit, 1 deny (the decision says why), 2 usage. With ``--json`` exactly one
decision document goes to stdout; otherwise one line per check goes to stderr.
Everything heavy is imported inside the command (start-up time is benchmarked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.cli.fast import register_passthrough, run_fast

if TYPE_CHECKING:
    import typer

HELP = "Verify a model's signature (and attestation) locally; exit 0 permit, 1 deny."


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustload verify-files",
        description=HELP.replace("deny.", "deny, 2 usage."),
    )
    parser.add_argument(
        "path",
        help="Model file or directory, or sha256:<hex> to verify a digest "
        "(no file needed; ./sha256:... names a file).",
    )
    parser.add_argument(
        "--signature", type=Path, required=True, help="The model's signature bundle."
    )

    def many(flag: str, help_text: str) -> None:
        parser.add_argument(flag, type=Path, action="append", default=[], help=help_text)

    many("--key", "Trusted public key (PEM); repeatable.")
    parser.add_argument("--certificate-identity", help="Keyless: the signer's identity.")
    parser.add_argument("--certificate-oidc-issuer", help="Keyless: the identity's issuer.")
    parser.add_argument(
        "--trusted-root",
        type=Path,
        help="Sigstore trusted_root.json (offline). With --key: its logs, and a "
        "log entry is required.",
    )
    many("--rekor-key", "Rekor public key (PEM); repeatable. A log entry is then required.")
    many("--ca-roots", "Fulcio or private-CA root certificates (PEM).")
    many("--ca-intermediates", "Intermediate certificates (PEM).")
    parser.add_argument("--attestation", type=Path, help="DSSE in-toto attestation.")
    parser.add_argument("--git-sha")
    parser.add_argument("--container-digest")
    parser.add_argument("--dataset-snapshot")
    parser.add_argument(
        "--policy", type=Path, help="Policy bundle directory (default: the shipped one)."
    )
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="Print one JSON document."
    )
    return parser


def _verify(ns: argparse.Namespace) -> int:
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
    doc = decision.to_json()
    if ns.as_json:
        from trustload.cli.jsonout import emit_json

        emit_json(doc)
    else:
        _human(doc)
    return 0 if decision.permitted else 1


def fast_main(argv: list[str] | None = None) -> int:
    """``verify-files`` without typer (whose pydantic-based coercion costs ~0.25 s of
    start-up): the only definition of the command, typer forwards to it."""
    return run_fast(_parser(), _verify, argv)


def register(app: typer.Typer) -> None:
    register_passthrough(app, "verify-files", HELP, fast_main)


if __name__ == "__main__":  # python -m trustload.cli.verify_files ...
    raise SystemExit(fast_main())
