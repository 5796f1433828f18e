"""R9 pre-production conformance: prove, on *this* deployment, that the gate denies.

``run_conformance`` publishes a throw-away canary model (``trustload-canary-<random>``)
to the live Registry with the operator's admin identity and signing key, then drives
the real start-up gate (:func:`trustload.gate.run_gate`) with the operator's gate
configuration through the four R9 scenarios:

* **chaos** - the canary's new version is revoked *during warm-up* (the gate's
  warm-up hook): the candidate must be denied with ``REVOKED`` and the previous
  version must still be admitted (the runtime returns to / stays on it);
* **negative** - a version whose artifact differs by one byte from the signed bytes:
  denied with ``SIGNATURE_INVALID``;
* **policy drift** - a private copy of the runtime policy bundle with one edit, the
  Registry not updated: denied with ``POLICY_DIGEST_MISMATCH``;
* **tenant cross** - a token of another tenant asking for the canary: denied
  (``NOT_FOUND`` from the Registry's tenancy or ``TENANT_MISMATCH`` from the gate);
* **image** (only with ``[gate.image]``) - the serving image checked against a key that
  never signed it: denied with ``IMAGE_SIGNATURE_INVALID``.

A **baseline** row comes first: the untouched canary must be *permitted*. A gate that
denies everything (a wrong trusted key, an unreachable Registry) would "pass" every
negative test and prove nothing, so every scenario fails when the baseline does.

Why it never touches the operator's models or trusted state: the canary has its own
name, the gate runs against a private cache and state directory, and the policy edit
happens in a temporary copy. Decisions still go to the configured audit log (they are
evidence that the conformance ran). Afterwards every canary version is revoked and
archived, so it can never be served; a failed clean-up is reported, and the name
itself says what it is.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustload.decision import ReasonCode, rfc3339
from trustload.errors import TrustloadError, UsageError

if TYPE_CHECKING:
    from trustload.client.api import RegistryClient
    from trustload.config import ClientFileConfig
    from trustload.gate import GateResult

CANARY_PREFIX = "trustload-canary-"
CANARY_GIT_SHA = "c" * 40
CANARY_DATASET = "trustload-canary"
CANARY_CONTAINER = "sha256:" + "0" * 64
CANARY_BYTES = 4096
MAX_TOKEN_BYTES = 64 * 1024


@dataclass(frozen=True)
class ScenarioResult:
    """One row of the conformance table."""

    scenario: str
    expected: str
    observed: str
    passed: bool
    detail: str = ""


@dataclass
class ConformanceReport:
    canary: str
    registry: str
    environment: str
    started_at: str
    results: list[ScenarioResult] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "canary": self.canary,
            "registry": self.registry,
            "environment": self.environment,
            "started_at": self.started_at,
            "results": [asdict(r) for r in self.results],
            "cleanup": list(self.cleanup),
        }


# ------------------------------------------------------------------ pure judgements


def observed_of(result: GateResult) -> str:
    """``permit`` or ``deny: CODE, CODE`` - what the table shows as observed."""
    decision = result.decision
    if decision.permitted:
        return "permit"
    return "deny: " + ", ".join(str(r) for r in decision.reasons)


def judge_denial(
    scenario: str, result: GateResult, accepted: tuple[ReasonCode, ...], expected: str
) -> ScenarioResult:
    """Pass iff the gate denied, loaded nothing, and named one of ``accepted``."""
    decision = result.decision
    codes = set(decision.reasons)
    ok = (not decision.permitted) and result.layout is None and bool(codes & set(accepted))
    return ScenarioResult(scenario, expected, observed_of(result), ok)


def judge_baseline(result: GateResult) -> ScenarioResult:
    ok = result.decision.permitted and result.layout is not None
    detail = "" if ok else "the deployment does not admit a correctly signed canary"
    return ScenarioResult("baseline", "permit", observed_of(result), ok, detail)


def not_meaningful(rows: list[ScenarioResult]) -> list[ScenarioResult]:
    """Without a permitting baseline a denial proves nothing: fail every scenario."""
    return [
        ScenarioResult(
            r.scenario,
            r.expected,
            r.observed,
            False,
            "not meaningful: the baseline canary was not permitted",
        )
        for r in rows
    ]


# ----------------------------------------------------------------------- adapters


def _with_gate(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"gate": cfg.gate.model_copy(update=update)})


def _with_registry(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"registry": cfg.registry.model_copy(update=update)})


@dataclass
class _Canary:
    """Publishes canary versions with the operator's identity and signing key."""

    admin: RegistryClient
    name: str
    key: Path
    password: bytes | None
    policy_digest: str
    card: dict[str, Any]
    container_digest: str
    work: Path
    versions: list[str] = field(default_factory=list)

    def publish(self, version: str, data: bytes, *, flip_one_byte: bool = False) -> None:
        """Sign and attest ``data``; with ``flip_one_byte`` upload bytes that differ by
        one byte from what was signed and attested (the R9 negative test)."""
        from trustload.cli.publish import revalidation_deadline
        from trustload.digests import ModelLayout, format_digest, sha256_file
        from trustload.signing import attest_bytes, sign_layout_bundle

        model = self.work / f"model-{version}" / "canary.bin"
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(data)
        bundle = sign_layout_bundle(ModelLayout.from_path(model), self.key, password=self.password)
        signed_digest = format_digest(sha256_file(model))
        attestation = attest_bytes(
            subject_name=model.name,
            artifact_digest=signed_digest,
            key_path=self.key,
            git_sha=CANARY_GIT_SHA,
            container_digest=self.container_digest,
            dataset_snapshot=CANARY_DATASET,
            not_after=revalidation_deadline(self.card),
            password=self.password,
        )
        served = bytearray(data)
        if flip_one_byte:
            served[len(served) // 2] ^= 0x01
        digest = self.admin.upload_blob(bytes(served))
        request = {
            "version": version,
            "artifact_digest": digest,
            "artifact_size": len(served),
            "kind": "file",
            "format": self.card.get("format"),
            "files": [{"path": model.name, "sha256": digest[7:], "size": len(served)}],
            "policy_digest": self.policy_digest,
            "git_sha": CANARY_GIT_SHA,
            "container_digest": self.container_digest,
            "dataset_snapshot": CANARY_DATASET,
            "signature_digest": self.admin.upload_blob(bundle),
            "attestation_digest": self.admin.upload_blob(attestation),
            "card": self.card,
        }
        self.admin.publish(self.name, request)
        self.versions.append(version)
        self.admin.set_stage(self.name, version, "Approved")

    def cleanup(self) -> list[str]:
        """Revoke and archive every canary version; report what could not be done."""
        problems: list[str] = []
        for version in self.versions:
            try:
                record = self.admin.get_version(self.name, version)
                if not record.revoked:
                    self.admin.revoke(self.name, version, "trustload conformance canary")
                if record.stage != "Archived":
                    self.admin.set_stage(self.name, version, "Archived")
            except TrustloadError as exc:
                problems.append(f"{self.name}@{version}: {exc.message}")
        return problems


def _read_token(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read --cross-tenant-token-file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_TOKEN_BYTES:
        raise UsageError(f"--cross-tenant-token-file {path} is too large")
    return raw.decode("utf-8", "replace").strip()


def _cross_tenant_config(
    cfg: ClientFileConfig, tenant: str, token_file: Path | None, work: Path
) -> tuple[ClientFileConfig | None, str]:
    """A gate config whose token belongs to another tenant, and a note on where it came from."""
    from trustload.client.transport import unverified_claims

    if token_file is not None:
        token = _read_token(token_file)
        try:
            other = unverified_claims(token).get("tenant_id")
        except TrustloadError as exc:
            raise UsageError(f"--cross-tenant-token-file is not a JWT: {exc.message}") from exc
        if other == tenant:
            raise UsageError(
                f"--cross-tenant-token-file holds a token of tenant {tenant!r}, the gate's own"
            )
        copy = work / "cross-tenant.token"
        copy.write_text(token)
        copy.chmod(0o600)
        return _with_registry(cfg, token_file=copy, dev_token=None), f"token file (tenant {other})"
    if cfg.registry.dev_token is not None:
        other = f"{tenant}-conformance-other"
        dev = cfg.registry.dev_token.model_copy(update={"tenant": other})
        return _with_registry(cfg, dev_token=dev, token_file=None), f"dev issuer (tenant {other})"
    return None, "no dev issuer in the gate config and no --cross-tenant-token-file"


def _drifted_policy(policy_dir: Path, work: Path) -> Path:
    """A private copy of the runtime policy bundle with one comment appended."""
    target = work / "policy-drift"
    shutil.copytree(policy_dir, target, symlinks=False)
    regos = sorted(p for p in target.rglob("*.rego") if p.is_file())
    victim = regos[0] if regos else target / "drift.rego"
    with victim.open("a", encoding="utf-8") as fh:
        fh.write("\n# trustload conformance: policy drift (edited in the pod)\n")
    return target


def run_conformance(
    gate_cfg: ClientFileConfig,
    admin_cfg: ClientFileConfig,
    *,
    key: Path,
    password: bytes | None = None,
    cross_tenant_token_file: Path | None = None,
    canary: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ConformanceReport:
    """Run baseline + the four R9 scenarios against the live deployment."""
    from trustload.client.api import RegistryClient
    from trustload.policy import policy_digest

    if not key.is_file():
        raise UsageError(f"no such signing key: {key}")
    say = progress or (lambda _msg: None)
    name = canary or f"{CANARY_PREFIX}{secrets.token_hex(4)}"
    report = ConformanceReport(
        canary=name,
        registry=gate_cfg.registry.url,
        environment=gate_cfg.gate.environment,
        started_at=rfc3339(datetime.now(UTC)),
    )
    work = Path(tempfile.mkdtemp(prefix="trustload-conformance-"))
    try:
        cfg = _with_gate(gate_cfg, cache_dir=work / "cache", state_dir=work / "state")
        runtime_digest = policy_digest(cfg.gate.policy_dir)
        with RegistryClient(cfg.registry) as probe:
            try:
                requester = probe.requester()
            except TrustloadError as exc:
                raise UsageError(f"the gate config has no usable token: {exc.message}") from exc
        card = {
            "tenant_id": requester.tenant_id,
            "domain": requester.domain or "",
            "purpose": {"allowed": list(requester.purposes)},
            "revalidate_by": rfc3339(datetime.now(UTC) + timedelta(days=30)),
            "format": "canary",
            "canary": True,
        }
        admin = RegistryClient(admin_cfg.registry)
        pub = _Canary(
            admin=admin,
            name=name,
            key=key,
            password=password,
            policy_digest=runtime_digest,
            card=card,
            container_digest=_serving_image_digest(cfg) or CANARY_CONTAINER,
            work=work,
        )
        try:
            _scenarios(report, pub, cfg, cross_tenant_token_file, work, say)
        finally:
            say("cleaning up the canary")
            report.cleanup = pub.cleanup()
            admin.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _scenarios(
    report: ConformanceReport,
    pub: _Canary,
    cfg: ClientFileConfig,
    token_file: Path | None,
    work: Path,
    say: Callable[[str], None],
) -> None:
    import os

    from trustload.decision import Event
    from trustload.gate import run_gate
    from trustload.state import load_state

    name = pub.name
    say(f"publishing canary {name}")
    try:
        pub.publish("1", os.urandom(CANARY_BYTES))
        pub.publish("2", os.urandom(CANARY_BYTES))
        pub.publish("3", os.urandom(CANARY_BYTES), flip_one_byte=True)
        pub.admin.set_alias(name, "canary", "1")
    except TrustloadError as exc:
        raise TrustloadError(exc.code, f"cannot publish the canary: {exc.message}") from exc

    say("baseline: the untouched canary must be permitted")
    baseline = judge_baseline(run_gate(cfg, f"{name}@canary"))
    rows: list[ScenarioResult] = []

    # Chaos: alias moves to v2, v2 is revoked while it warms up.
    say("chaos: revoke during warm-up")
    pub.admin.set_alias(name, "canary", "2")

    def revoke_during_warmup(_result: GateResult) -> None:
        pub.admin.revoke(name, "2", "trustload conformance: chaos during warm-up")

    chaos = run_gate(cfg, f"{name}@canary", warmup_hook=revoke_during_warmup)
    row = judge_denial("chaos", chaos, (ReasonCode.REVOKED,), "deny REVOKED, stay on v1")
    state = load_state(cfg.gate.state_dir, name, cfg.gate.environment)
    back = run_gate(cfg, f"{name}@1", event=Event.ROLLBACK_EXECUTE)
    stayed = state is not None and state.version == "1" and back.decision.permitted
    rows.append(
        ScenarioResult(
            row.scenario,
            row.expected,
            f"{row.observed}; previous v1 {observed_of(back)}",
            row.passed and stayed,
            "" if stayed else "the runtime could not return to the previous version",
        )
    )

    say("negative: one byte changed")
    rows.append(
        judge_denial(
            "negative",
            run_gate(cfg, f"{name}@3"),
            (ReasonCode.SIGNATURE_INVALID,),
            "deny SIGNATURE_INVALID",
        )
    )

    say("policy drift: runtime policy edited, Registry not updated")
    drift_cfg = _with_gate(cfg, policy_dir=_drifted_policy(cfg.gate.policy_dir, work))
    rows.append(
        judge_denial(
            "policy drift",
            run_gate(drift_cfg, f"{name}@1"),
            (ReasonCode.POLICY_DIGEST_MISMATCH,),
            "deny POLICY_DIGEST_MISMATCH",
        )
    )

    say("tenant cross: another tenant's token")
    tenant = str(pub.card["tenant_id"])
    cross_cfg, source = _cross_tenant_config(cfg, tenant, token_file, work)
    expected = "deny NOT_FOUND or TENANT_MISMATCH"
    if cross_cfg is None:
        rows.append(ScenarioResult("tenant cross", expected, "not run", False, source))
    else:
        row = judge_denial(
            "tenant cross",
            run_gate(cross_cfg, f"{name}@1"),
            (ReasonCode.NOT_FOUND, ReasonCode.TENANT_MISMATCH),
            expected,
        )
        rows.append(ScenarioResult(row.scenario, row.expected, row.observed, row.passed, source))

    if cfg.gate.image is not None:
        say("image: the serving image checked against a key that never signed it")
        rows.append(
            judge_denial(
                "image",
                run_gate(_with_wrong_image_key(cfg, work), f"{name}@1"),
                (ReasonCode.IMAGE_SIGNATURE_INVALID,),
                "deny IMAGE_SIGNATURE_INVALID",
            )
        )

    report.results.append(baseline)
    report.results.extend(rows if baseline.passed else not_meaningful(rows))


def _serving_image_digest(cfg: ClientFileConfig) -> str | None:
    """The canary is attested for the serving image the gate verifies, if it verifies one."""
    if cfg.gate.image is not None:
        from trustload.oci.reference import parse_reference

        return parse_reference(cfg.gate.image.reference).digest
    return cfg.gate.runtime_container_digest


def _with_wrong_image_key(cfg: ClientFileConfig, work: Path) -> ClientFileConfig:
    """``[gate.image]`` trusting only a fresh key: a gate that still admits the image does
    not check its signature at all."""
    from trustload.crypto.keys import generate_keypair

    _key, pub = generate_keypair(work / f"wrong-image-key-{secrets.token_hex(4)}")
    assert cfg.gate.image is not None
    image = cfg.gate.image.model_copy(
        update={
            "keys": [pub],
            "certificate_identity": None,
            "certificate_oidc_issuer": None,
            "ca_roots": [],
            "ca_intermediates": [],
            "trusted_root": None,
            "rekor_keys": [],
        }
    )
    return _with_gate(cfg, image=image)
