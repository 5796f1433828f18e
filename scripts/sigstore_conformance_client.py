#!/usr/bin/env python3
"""The thin adapter between sigstore-conformance's CLI protocol and ``trustload verify-files``.

The upstream harness (github.com/sigstore/sigstore-conformance, ``docs/cli_protocol.md``)
calls its client as::

    ENTRYPOINT verify-bundle [--staging] --bundle FILE
        (--certificate-identity ID --certificate-oidc-issuer URL | --key KEY)
        [--trusted-root FILE] FILE_OR_DIGEST

and judges by the exit status alone. This maps that onto ``verify-files`` one to one.
trustload never fetches trust material, so the harness's default (the production root
over TUF) must be given as a file: ``$TRUSTLOAD_CONFORMANCE_ROOT`` (for instance
sigstore-python's embedded ``production.trusted_root.json``); ``--staging`` needs
``$TRUSTLOAD_CONFORMANCE_STAGING_ROOT``. Signing is not supported (exit 2): trustload's
Sigstore side verifies, offline.

A ``FILE_OR_DIGEST`` that looks like ``sha256:<hex>`` but is a path on disk is a path, as
the protocol says; it is passed on as ``./NAME`` (verify-files reads ``sha256:<hex>`` as
a digest always).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigstore-conformance-client")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify-bundle")
    verify.add_argument("--staging", action="store_true")
    verify.add_argument("--bundle", required=True)
    verify.add_argument("--certificate-identity")
    verify.add_argument("--certificate-oidc-issuer")
    verify.add_argument("--key")
    verify.add_argument("--trusted-root")
    verify.add_argument("artifact")
    return parser


def verify_files_argv(ns: argparse.Namespace, environ: dict[str, str]) -> list[str]:
    """The ``verify-files`` arguments for one ``verify-bundle`` call (pure)."""
    root = ns.trusted_root
    if root is None:
        var = "TRUSTLOAD_CONFORMANCE_STAGING_ROOT" if ns.staging else "TRUSTLOAD_CONFORMANCE_ROOT"
        root = environ.get(var)
        if not root:
            raise SystemExit(f"no --trusted-root and ${var} is not set (trustload is offline)")
    artifact = ns.artifact
    if artifact.startswith("sha256:") and os.path.lexists(artifact):
        artifact = "./" + artifact
    argv = [artifact, "--signature", ns.bundle, "--trusted-root", root]
    if ns.key is not None:
        return [*argv, "--key", ns.key]
    return [
        *argv,
        "--certificate-identity",
        ns.certificate_identity or "",
        "--certificate-oidc-issuer",
        ns.certificate_oidc_issuer or "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["sign-bundle"]:
        sys.stderr.write("sign-bundle: not supported (trustload verifies Sigstore bundles)\n")
        return 2
    ns = _parser().parse_args(args)
    from trustload.cli.verify_files import fast_main

    return fast_main(verify_files_argv(ns, dict(os.environ)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    raise SystemExit(main())
