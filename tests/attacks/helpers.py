"""The attack arena: one real Registry per test module, real signing, and the checks every
attack test ends with.

Naming scheme (read by ``scripts/gen_security_doc.py``): ``test_<class>_<scenario>`` with a
docstring whose first line describes the attack and which holds a line
``Attack: <class>``; the expected reason codes are the arguments of the test's
``assert_denied(result, ReasonCode.X, ...)`` (or ``assert_load_refused``) call.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.support.registry import DevEnv, RunningRegistry
from trustload.cache import BlobCache
from trustload.client.api import RegistryClient
from trustload.config import ClientFileConfig, load_client_config
from trustload.decision import Decision, Event, ReasonCode
from trustload.digests import (
    MeasuredArtifact,
    ModelLayout,
    format_digest,
    manifest_bytes,
    measure_layout,
)
from trustload.errors import TrustloadError
from trustload.facts import VersionRecord
from trustload.gate import GateResult, run_gate
from trustload.signing import attest_bytes, sign_layout_bundle

GIT_SHA = "1" * 40
CONTAINER = "sha256:" + "c" * 64
DATASET = "ds-2026-11"
REVALIDATE_BY = datetime(2099, 1, 1, tzinfo=UTC)  # the cards' revalidate_by


def with_registry(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"registry": cfg.registry.model_copy(update=update)})


def with_gate(cfg: ClientFileConfig, **update: Any) -> ClientFileConfig:
    return cfg.model_copy(update={"gate": cfg.gate.model_copy(update=update)})


def card(
    tenant: str = "A", purposes: tuple[str, ...] = ("credit_scoring",), **over: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "tenant_id": tenant,
        "domain": "credit",
        "purpose": {"allowed": list(purposes)},
        "revalidate_by": "2099-01-01T00:00:00Z",
        "format": "onnx",
    }
    doc.update(over)
    return doc


@dataclass
class Signed:
    """A model ready to publish: bytes on disk plus its evidence."""

    layout: ModelLayout
    signature: bytes
    attestation: bytes


@dataclass
class Arena:
    reg: RunningRegistry
    env: DevEnv
    root: Path
    policy_digest: str = ""
    _admin: RegistryClient | None = field(default=None, repr=False)

    @property
    def admin_cfg(self) -> ClientFileConfig:
        return load_client_config(self.env.admin_config)

    def admin(self) -> RegistryClient:
        if self._admin is None:
            self._admin = RegistryClient(self.admin_cfg.registry)
        return self._admin

    def name(self, hint: str = "m") -> str:
        return f"{hint}-{uuid.uuid4().hex[:10]}"

    def workdir(self) -> Path:
        d = self.root / f"w-{uuid.uuid4().hex[:10]}"
        d.mkdir(parents=True)
        return d

    # ----------------------------------------------------------- models and evidence
    def model_file(self, data: bytes | None = None, name: str = "model.onnx") -> Path:
        path = self.workdir() / name
        path.write_bytes(os.urandom(32 * 1024) if data is None else data)
        return path

    def model_dir(self, files: dict[str, bytes] | None = None) -> Path:
        root = self.workdir() / "dirmodel"
        for rel, data in (files or {"model.onnx": os.urandom(8192), "cfg/tok.json": b"{}"}).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    def sign(
        self,
        path: Path,
        *,
        sig_key: Path | None = None,
        att_key: Path | None = None,
        subject: str | None = None,
        **att: Any,
    ) -> Signed:
        layout = ModelLayout.from_path(path)
        measured = measure_layout(layout)
        bundle = sign_layout_bundle(layout, sig_key or self.env.signing_key)
        attestation = attest_bytes(
            subject_name=layout.name,
            artifact_digest=subject or measured.digest,
            key_path=att_key or self.env.signing_key,
            git_sha=att.pop("git_sha", GIT_SHA),
            container_digest=att.pop("container_digest", CONTAINER),
            dataset_snapshot=att.pop("dataset_snapshot", DATASET),
            not_after=att.pop("not_after", REVALIDATE_BY),  # as `trustload publish` does
            **att,
        )
        return Signed(layout, bundle, attestation)

    def request(
        self,
        version: str,
        measured: MeasuredArtifact,
        signature_digest: str | None,
        attestation_digest: str | None,
        card_doc: dict[str, Any],
    ) -> dict[str, Any]:
        """The publish request for ``measured`` with the arena's provenance."""
        return {
            "version": version,
            "artifact_digest": measured.digest,
            "artifact_size": measured.size,
            "kind": measured.kind,
            "format": "onnx",
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in measured.files],
            "policy_digest": self.policy_digest,
            "git_sha": GIT_SHA,
            "container_digest": CONTAINER,
            "dataset_snapshot": DATASET,
            "signature_digest": signature_digest,
            "attestation_digest": attestation_digest,
            "card": card_doc,
        }

    def publish(
        self,
        name: str,
        version: str,
        path: Path,
        *,
        signed: Signed | None = None,
        signature: bytes | None | str = "keep",
        attestation: bytes | None | str = "keep",
        card_doc: dict[str, Any] | None = None,
        stage: str | None = "Approved",
        alias: str | None = "production",
        **record: Any,
    ) -> VersionRecord:
        """Upload ``path`` (the bytes the Registry will serve) and register a version.

        ``signed`` is the evidence (default: sign ``path`` honestly); ``signature`` /
        ``attestation`` replace its bytes (None: no such evidence).
        """
        admin = self.admin()
        ev = signed or self.sign(path)
        layout = ModelLayout.from_path(path)
        measured = measure_layout(layout)
        paths = layout.paths()
        for entry in measured.files:
            admin.upload_blob(paths[entry.path], format_digest(entry.sha256))
        if measured.kind == "directory":
            admin.upload_blob(manifest_bytes(measured.files), measured.digest)
        sig = ev.signature if signature == "keep" else signature
        att = ev.attestation if attestation == "keep" else attestation
        request = self.request(
            version,
            measured,
            admin.upload_blob(sig) if isinstance(sig, bytes) else None,
            admin.upload_blob(att) if isinstance(att, bytes) else None,
            card_doc or card(),
        )
        request.update(record)
        rec = admin.publish(name, request)
        if stage:
            admin.set_stage(name, version, stage)
        if alias:
            admin.set_alias(name, alias, version)
        return rec

    # ----------------------------------------------------- raw HTTP, any tenant
    def http(self, tenant: str, role: str = "admin") -> httpx.Client:
        """A raw mTLS client of ``tenant`` (to assert exact statuses and bodies)."""
        return self.reg.client(role=role, tenant=tenant)

    def raw_publish(
        self,
        client: httpx.Client,
        name: str,
        version: str,
        path: Path,
        *,
        tenant: str,
        upload_model: bool = True,
        upload_evidence: bool = True,
        **record: Any,
    ) -> httpx.Response:
        """Publish ``path`` honestly signed through ``client`` (uploading the model's and
        the evidence's blobs unless told not to); ``record`` overrides request fields."""
        ev = self.sign(path)
        layout = ModelLayout.from_path(path)
        measured = measure_layout(layout)
        sig = hashlib.sha256(ev.signature).hexdigest()
        att = hashlib.sha256(ev.attestation).hexdigest()
        if upload_model:
            paths = layout.paths()
            for entry in measured.files:
                put_blob(client, paths[entry.path].read_bytes(), entry.sha256)
        if measured.kind == "directory":  # the manifest: anyone can compute it
            put_blob(client, manifest_bytes(measured.files))
        if upload_evidence:
            put_blob(client, ev.signature)
            put_blob(client, ev.attestation)
        request = self.request(version, measured, f"sha256:{sig}", f"sha256:{att}", card(tenant))
        request.update(record)
        return client.post(f"/v1/models/{name}/versions", json=request)

    def good(self, name: str | None = None, version: str = "1", **kw: Any) -> str:
        """Publish an honest, approved model under alias ``production``; return its name."""
        name = name or self.name()
        self.publish(name, version, self.model_file(), **kw)
        return name


@dataclass
class Gate:
    """One serving identity with a private cache, state and audit log (per test)."""

    arena: Arena
    root: Path

    @property
    def cfg(self) -> ClientFileConfig:
        base = load_client_config(self.arena.env.gate_config)
        return with_gate(
            base,
            cache_dir=self.root / "cache",
            state_dir=self.root / "state",
            audit_log=self.root / "audit.jsonl",
        )

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def run(self, ref: str, cfg: ClientFileConfig | None = None, **kw: Any) -> GateResult:
        return run_gate(cfg or self.cfg, ref, **kw)

    def via(self, url: str, **registry: Any) -> ClientFileConfig:
        return with_registry(self.cfg, url=url, allowlist=[url], **registry)

    def token_cfg(self, token: str) -> ClientFileConfig:
        path = self.root / f"token-{uuid.uuid4().hex[:6]}"
        path.write_text(token)
        return with_registry(self.cfg, token_file=path, dev_token=None)


def put_blob(client: httpx.Client, data: bytes, hexdigest: str | None = None) -> httpx.Response:
    """Upload ``data`` under ``hexdigest`` (default: its own digest); 200 or 201."""
    hexdigest = hexdigest or hashlib.sha256(data).hexdigest()
    resp = client.post(f"/v1/blobs/sha256/{hexdigest}", content=data)
    assert resp.status_code in (200, 201), resp.text
    return resp


# ------------------------------------------------------------------ final assertions


def cache_entries(cache_dir: Path) -> list[Path]:
    blobs = cache_dir / "blobs" / "sha256"
    return sorted(blobs.iterdir()) if blobs.is_dir() else []


def assert_cache_verified(cache_dir: Path) -> None:
    """Everything under its final name in ``<cache>/blobs/sha256/`` is a regular file
    whose bytes hash to that name (partials live under other names)."""
    for entry in cache_entries(cache_dir):
        if re.fullmatch(r"\.[0-9a-f]{64}\.partial", entry.name):
            continue  # a resumable download under a temporary name, never loaded
        assert re.fullmatch(r"[0-9a-f]{64}", entry.name), f"unexpected cache entry {entry}"
        assert not entry.is_symlink() and entry.is_file(), f"{entry} is not a regular file"
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == entry.name, (
            f"unverified bytes under final name {entry}"
        )


def assert_denied(result: GateResult, *codes: ReasonCode, cache_dir: Path) -> GateResult:
    """Denied with exactly ``codes``, nothing to load, and a cache holding only verified blobs."""
    decision = result.decision
    assert not decision.permitted, decision.to_json()
    assert decision.event is Event.STARTUP_DENY
    assert set(decision.reasons) == set(codes), decision.to_json()["reasons"]
    assert result.layout is None and result.files is None
    assert_cache_verified(cache_dir)
    return result


def assert_load_refused(exc: TrustloadError, code: ReasonCode) -> None:
    """The verified-bytes loader refused with exactly ``code`` (nothing was loaded)."""
    assert exc.code is code, (exc.code, exc.message)


def hours_ago(hours: float) -> str:
    from datetime import UTC, timedelta

    moment = datetime.now(UTC) - timedelta(hours=hours)
    return moment.isoformat().replace("+00:00", "Z")


def cache_path(gate: Gate, digest: str) -> Path:
    return BlobCache(gate.cache_dir).path_for(digest)


def assert_http_refused(response: Any, status: int, *, log: str) -> None:
    """An inference request refused with exactly ``status`` and an ``{"error": ...}`` body,
    and nothing in the server's log that shows an exception escaped (no traceback)."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "Traceback" not in log, log[-4000:]


def assert_decision_denied(decision: Decision, *codes: ReasonCode) -> Decision:
    """A decision without a Registry (``verify-files``) denied with exactly ``codes``."""
    assert not decision.permitted, decision.to_json()
    assert set(decision.reasons) == set(codes), decision.to_json()["reasons"]
    return decision
