"""``cosign verify`` / ``cosign verify-attestation`` for one image by digest, offline.

The thin adapter around the pure image checks: open the OCI source the reference names
(an ``oci-layout:`` directory here, a registry through :mod:`trustload.oci.registry`),
gather the evidence, run :mod:`trustload.checks.image`, and build the same
:class:`~trustload.decision.Decision` the gate and ``verify-files`` produce.
Referrers are looked up only when no legacy ``.sig`` signature verifies (and for
attestations), so a signed image costs exactly its manifest and ``.sig`` round trips.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from trustload.decision import CheckResult, Decision, deny_event, utc_now
from trustload.errors import UsageError
from trustload.facts import Expectations, TrustAnchors
from trustload.oci.reader import OciReader
from trustload.oci.reference import LayoutRef, Reference, RegistryRef, parse_reference

if TYPE_CHECKING:
    from trustload.config import GateImageConfig

DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
MAX_TRUST_FILE = 1024 * 1024


@dataclass(frozen=True)
class AttestationRequest:
    """``--attestation-type T`` and the seed's jq expectations."""

    predicate_type: str
    expect: Expectations


@contextmanager
def open_reader(ref: Reference, config: object | None = None) -> Iterator[OciReader]:
    """The reader for ``ref``; registry access is the OCI client's (imported lazily).

    ``config`` is handed to ``trustload.oci.registry.open_reader`` as is: a TOML path with
    ``[[oci.registries]]`` (the CLI's ``--config``) or the parsed ``[oci]`` section (the gate).
    """
    if isinstance(ref, LayoutRef):
        from trustload.oci.layout import LayoutReader

        yield LayoutReader(ref.directory)
        return
    assert isinstance(ref, RegistryRef)
    try:
        registry = import_module("trustload.oci.registry")
    except ModuleNotFoundError as exc:
        if exc.name != "trustload.oci.registry":
            raise
        registry = None
    opener = getattr(registry, "open_reader", None)
    if opener is None:
        raise UsageError(
            "registry references need the OCI registry client (trustload.oci.registry."
            "open_reader), which this installation lacks; use oci-layout:DIR@sha256:<hex>"
        )
    with opener(ref, config) as reader:
        yield reader


def read_trust_file(path: Path, what: str) -> bytes:
    """A key, certificate or trusted root the user named: unreadable or huge is usage."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TRUST_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_TRUST_FILE or not data.strip():
        raise UsageError(f"{what} {path} is empty or too large")
    return data


def build_anchors(
    *,
    keys: Sequence[Path] = (),
    certificate_identity: str | None = None,
    certificate_oidc_issuer: str | None = None,
    ca_roots: Sequence[Path] = (),
    ca_intermediates: Sequence[Path] = (),
    trusted_root: Path | None = None,
    rekor_keys: Sequence[Path] = (),
) -> TrustAnchors:
    """The TRUST flags of INTERFACE.md, checked; every mistake is a usage error (exit 2)."""
    from cryptography import x509

    from trustload.crypto.keys import load_public_key_pem

    cert_trust = bool(ca_roots) or trusted_root is not None
    if not keys and not cert_trust:
        raise UsageError("give --key, or --certificate-identity with --ca-roots / --trusted-root")
    if keys and (cert_trust or certificate_identity is not None):
        raise UsageError("give either --key or certificate trust, not both")
    if cert_trust and certificate_identity is None:
        raise UsageError("certificate trust needs a pinned --certificate-identity")
    if certificate_identity is not None and not cert_trust:
        raise UsageError("--certificate-identity needs --ca-roots or --trusted-root")
    if ca_intermediates and not ca_roots:
        raise UsageError("--ca-intermediates needs --ca-roots")
    if trusted_root is not None and certificate_oidc_issuer is None:
        raise UsageError("--trusted-root (Sigstore keyless) needs --certificate-oidc-issuer")
    if trusted_root is not None and not trusted_root.is_file():
        raise UsageError(f"no such trusted root file: {trusted_root}")

    def pems(paths: Sequence[Path], what: str, *, certs: bool) -> tuple[bytes, ...]:
        out: list[bytes] = []
        for p in paths:
            data = read_trust_file(p, what)
            try:
                if certs:
                    x509.load_pem_x509_certificates(data)
                else:
                    load_public_key_pem(data)
            except ValueError as exc:
                raise UsageError(f"{what} {p} is unusable: {exc}") from None
            out.append(data)
        return tuple(out)

    return TrustAnchors(
        public_keys=pems(keys, "public key", certs=False),
        certificate_identity=certificate_identity,
        certificate_oidc_issuer=certificate_oidc_issuer,
        trusted_root=trusted_root,
        ca_certs=pems(ca_roots, "CA root", certs=True),
        ca_intermediates=pems(ca_intermediates, "CA intermediate", certs=True),
        rekor_keys=pems(rekor_keys, "Rekor key", certs=False),
        require_key_tlog=bool(rekor_keys),
    )


def image_checks(
    reader: OciReader,
    digest: str,
    anchors: TrustAnchors,
    *,
    attestation: AttestationRequest | None,
    now: datetime,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> list[CheckResult]:
    """The image signature check, and the attestation checks when asked for."""
    from trustload.checks.image import check_image_attestation, check_image_signature
    from trustload.oci.evidence import (
        collect_attestations,
        collect_referrers,
        collect_signatures,
    )

    evidence = collect_signatures(reader, digest)
    result = check_image_signature(evidence, anchors, now=now)
    fetched_referrers = False
    if not result.ok and evidence.manifest_error is None:
        evidence = collect_referrers(reader, evidence)
        fetched_referrers = True
        result = check_image_signature(evidence, anchors, now=now)
    checks = [result]
    if attestation is not None and evidence.manifest_error is None:
        evidence = collect_attestations(reader, evidence)
        if not fetched_referrers:
            evidence = collect_referrers(reader, evidence)
        checks.extend(
            check_image_attestation(
                evidence,
                anchors,
                predicate_type=attestation.predicate_type,
                expect=attestation.expect,
                now=now,
                clock_skew=clock_skew,
            )
        )
    return checks


def verify_image(
    reference: str,
    anchors: TrustAnchors,
    *,
    attestation: AttestationRequest | None = None,
    config: object | None = None,
    now: datetime | None = None,
) -> Decision:
    """Verify one image or artifact by digest; a tag-only reference is a usage error."""
    ref = parse_reference(reference)
    started = time.perf_counter()
    with open_reader(ref, config) as reader:
        checks = image_checks(
            reader,
            ref.digest,
            anchors,
            attestation=attestation,
            now=now if now is not None else utc_now(),
        )
    decision = Decision(
        event=deny_event(checks),
        checks=checks,
        requested=reference,
        artifact_digest=ref.digest,
        environment="local",
        extra={"image_digest": ref.digest},
    )
    if attestation is not None:
        decision.git_sha = attestation.expect.git_sha
        decision.container_digest = attestation.expect.container_digest
        decision.dataset_snapshot = attestation.expect.dataset_snapshot
    decision.latency_ms = (time.perf_counter() - started) * 1000.0
    return decision


def gate_image_check(image: GateImageConfig, oci: object | None, now: datetime) -> CheckResult:
    """The gate's ``image_signature`` check (``[gate.image]``), on every decision.

    Trust that cannot be loaded is a configuration error (exit 2, never a verdict); a
    registry that cannot be reached denies like a missing signature would not: with its
    own code (REGISTRY_UNAVAILABLE, AUTH_FAILED, ...).
    """
    from trustload.checks.image import NAME
    from trustload.errors import TrustloadError

    anchors = build_anchors(
        keys=image.keys,
        certificate_identity=image.certificate_identity,
        certificate_oidc_issuer=image.certificate_oidc_issuer,
        ca_roots=image.ca_roots,
        ca_intermediates=image.ca_intermediates,
        trusted_root=image.trusted_root,
        rekor_keys=image.rekor_keys,
    )
    ref = parse_reference(image.reference)
    start = time.perf_counter()
    try:
        with open_reader(ref, oci) as reader:
            (result,) = image_checks(reader, ref.digest, anchors, attestation=None, now=now)
    except TrustloadError as exc:
        result = CheckResult.failed(NAME, exc.code, f"{ref}: {exc.message}"[:500])
    return result.with_ms((time.perf_counter() - start) * 1000.0)
