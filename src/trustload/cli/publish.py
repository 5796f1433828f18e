"""``trustload publish PATH --name N --version V --config admin.toml --key KEY ...``

Signs the model (file or directory), writes its in-toto / SLSA provenance attestation,
uploads every file blob (and, for a directory, the canonical manifest), the signature
bundle and the attestation to the Registry by digest, then registers the version
(new versions start in ``Staging``). Without ``--card`` the card is the publisher's
own tenant with ``revalidate_by`` one year ahead; without ``--policy-digest`` the
digest of the configured ``[gate].policy_dir`` is recorded. The attestation's
validity window ends (``notAfter``) at the card's ``revalidate_by`` unless
``--not-after`` says otherwise.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustload.errors import UsageError
from trustload.publish_oci import Provenance

if TYPE_CHECKING:
    from trustload.client.api import RegistryClient
    from trustload.config import ClientFileConfig
    from trustload.facts import VersionRecord

MAX_CARD_BYTES = 256 * 1024
FORMATS = {
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".gguf": "gguf",
}


def guess_format(rel_paths: list[str]) -> str | None:
    for rel in rel_paths:
        fmt = FORMATS.get(Path(rel).suffix.lower())
        if fmt is not None:
            return fmt
    return None


def parse_time(text: str, flag: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{flag} must be an RFC 3339 timestamp, got {text!r}") from exc
    if moment.tzinfo is None:
        raise UsageError(f"{flag} must carry a time zone (e.g. ...Z)")
    return moment


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def load_card(path: Path) -> dict[str, Any]:
    """Read a model card (YAML) strictly enough that the Registry will accept it."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read card {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CARD_BYTES:
        raise UsageError(f"card {path} is larger than {MAX_CARD_BYTES} bytes")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise UsageError(f"card {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"card {path} is not a mapping")
    if not isinstance(doc.get("tenant_id"), str) or not doc["tenant_id"]:
        raise UsageError(f"card {path}: tenant_id (string) is required")
    purpose = doc.get("purpose")
    allowed = purpose.get("allowed") if isinstance(purpose, dict) else None
    if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
        raise UsageError(f"card {path}: purpose.allowed must be a list of strings")
    card = {str(k): _rfc3339(v) for k, v in doc.items()}
    if card.get("revalidate_by") is not None:
        parse_time(str(card["revalidate_by"]), "card revalidate_by")
    return card


def default_card(
    tenant: str, domain: str | None, purposes: tuple[str, ...], fmt: str | None
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "tenant_id": tenant,
        "domain": domain or "",
        "purpose": {"allowed": list(purposes)},
        "revalidate_by": _rfc3339(datetime.now(UTC) + timedelta(days=365)),
    }
    if fmt:
        card["format"] = fmt
    return card


def resolve_card(
    card: Path | dict[str, Any] | None, client: RegistryClient, fmt: str | None
) -> dict[str, Any]:
    """The card as given, read from YAML, or the publisher's own default card."""
    if isinstance(card, dict):
        return card
    if card is not None:
        return load_card(card)
    who = client.requester()
    return default_card(who.tenant_id, who.domain, who.purposes, fmt)


def revalidation_deadline(card: dict[str, Any]) -> datetime | None:
    """The card's ``revalidate_by``: the default end of the attestation's validity window."""
    value = card.get("revalidate_by")
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_time(str(value), "card revalidate_by")


def publish_model(
    cfg: ClientFileConfig,
    path: Path,
    *,
    name: str,
    version: str,
    key: Path,
    git_sha: str,
    container_digest: str,
    dataset_snapshot: str,
    card: Path | dict[str, Any] | None = None,
    policy_digest: str | None = None,
    not_after: datetime | None = None,
    password: bytes | None = None,
) -> VersionRecord:
    """Sign, attest, upload by digest and register one version; return its record."""
    from trustload.client.api import RegistryClient
    from trustload.digests import (
        ModelLayout,
        format_digest,
        manifest_bytes,
        measure_layout,
    )
    from trustload.signing import attest_bytes, sign_layout_bundle

    if not key.is_file():
        raise UsageError(f"no such signing key: {key}")
    policy_digest = _policy_digest(cfg, policy_digest)
    layout = ModelLayout.from_path(path)
    measured = measure_layout(layout)
    files = [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in measured.files]
    fmt = guess_format([f.path for f in measured.files])
    bundle = sign_layout_bundle(layout, key, password=password)
    with RegistryClient(cfg.registry) as client:
        card_doc = resolve_card(card, client, fmt)
        # The attestation is valid until the model must be revalidated, not forever.
        attestation = attest_bytes(
            subject_name=layout.name,
            artifact_digest=measured.digest,
            key_path=key,
            git_sha=git_sha,
            container_digest=container_digest,
            dataset_snapshot=dataset_snapshot,
            not_after=not_after if not_after is not None else revalidation_deadline(card_doc),
            password=password,
        )
        paths = layout.paths()
        for entry in measured.files:
            client.upload_blob(paths[entry.path], format_digest(entry.sha256))
        if measured.kind == "directory":
            client.upload_blob(manifest_bytes(measured.files), measured.digest)
        request = {
            "version": version,
            "artifact_digest": measured.digest,
            "artifact_size": measured.size,  # a directory's is the sum of its files
            "kind": measured.kind,
            "format": card_doc.get("format") or fmt,
            "files": files,
            "policy_digest": policy_digest,
            "git_sha": git_sha,
            "container_digest": container_digest,
            "dataset_snapshot": dataset_snapshot,
            "signature_digest": client.upload_blob(bundle),
            "attestation_digest": client.upload_blob(attestation),
            "card": card_doc,
        }
        return client.publish(name, request)


def _policy_digest(cfg: ClientFileConfig, given: str | None) -> str:
    if given is not None:
        from trustload.digests import parse_digest

        parse_digest(given)
        return given
    from trustload.policy import policy_digest as digest_of

    return digest_of(cfg.gate.policy_dir)


def publish_oci_model(
    cfg: ClientFileConfig,
    path: Path,
    target: str,
    *,
    name: str,
    version: str,
    key: Path,
    provenance: Provenance,
    card: Path | dict[str, Any] | None = None,
    policy_digest: str | None = None,
    not_after: datetime | None = None,
    password: bytes | None = None,
) -> VersionRecord:
    """``publish PATH --oci HOST/REPO``: push a ModelPack artifact, sign and attest it
    cosign-style, record it with ``artifact_uri`` (trustload.publish_oci)."""
    from trustload.client.api import RegistryClient
    from trustload.digests import ModelLayout
    from trustload.publish_oci import Signing, publish_to_oci

    if not key.is_file():
        raise UsageError(f"no such signing key: {key}")
    digest = _policy_digest(cfg, policy_digest)
    fmt = guess_format([rel for rel, _ in ModelLayout.from_path(path).files])
    with RegistryClient(cfg.registry) as client:
        card_doc = resolve_card(card, client, fmt)
    deadline = not_after if not_after is not None else revalidation_deadline(card_doc)
    return publish_to_oci(
        cfg,
        path,
        target,
        name=name,
        version=version,
        signing=Signing(key, password, deadline),
        provenance=provenance,
        policy_digest=digest,
        card=card_doc,
        fmt=fmt,
    )


def _run_publish(opts: dict[str, Any]) -> VersionRecord:
    """The CLI's three shapes: PATH to the Registry, PATH --oci, and oci:// import."""
    from trustload.config import load_client_config
    from trustload.publish_oci import import_from_oci

    cfg = load_client_config(opts["config"])
    password_env = os.environ.get("TRUSTLOAD_KEY_PASSWORD")
    password = password_env.encode() if password_env else None
    not_after = parse_time(opts["not_after"], "--not-after") if opts["not_after"] else None
    provenance = Provenance(opts["git_sha"], opts["container_digest"], opts["dataset_snapshot"])
    source: str = opts["path"]
    if source.startswith("oci://"):
        if opts["oci"] is not None or opts["key"] is not None:
            raise UsageError("an oci:// artifact is recorded as pushed: no --oci, no --key")
        return import_from_oci(
            cfg,
            source,
            name=opts["name"],
            version=opts["version"],
            provenance=provenance,
            policy_digest=_policy_digest(cfg, opts["policy_digest"]),
            card=load_card(opts["card"]) if opts["card"] is not None else None,
        )
    if opts["key"] is None:
        raise UsageError("--key is required to publish a model file or directory")
    common: dict[str, Any] = {
        "name": opts["name"],
        "version": opts["version"],
        "key": opts["key"],
        "card": opts["card"],
        "policy_digest": opts["policy_digest"],
        "not_after": not_after,
        "password": password,
    }
    if opts["oci"] is not None:
        return publish_oci_model(cfg, Path(source), opts["oci"], provenance=provenance, **common)
    return publish_model(
        cfg,
        Path(source),
        git_sha=provenance.git_sha,
        container_digest=provenance.container_digest,
        dataset_snapshot=provenance.dataset_snapshot,
        **common,
    )


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(
        path: Annotated[
            str, typer.Argument(help="Model file or directory, or oci://HOST/REPO@sha256:...")
        ],
        name: Annotated[str, typer.Option("--name", help="Model name.")],
        version: Annotated[str, typer.Option("--version", help="Immutable version.")],
        config: Annotated[Path, typer.Option("--config", help="admin.toml")],
        git_sha: Annotated[str, typer.Option("--git-sha")],
        container_digest: Annotated[str, typer.Option("--container-digest")],
        dataset_snapshot: Annotated[str, typer.Option("--dataset-snapshot")],
        key: Annotated[Path | None, typer.Option("--key", help="Signing key (PKCS#8 PEM).")] = None,
        oci: Annotated[
            str | None,
            typer.Option("--oci", help="Push to this OCI registry repository (HOST/REPO)."),
        ] = None,
        card: Annotated[Path | None, typer.Option("--card", help="Model card YAML.")] = None,
        policy_digest: Annotated[
            str | None, typer.Option("--policy-digest", help="Default: [gate].policy_dir's.")
        ] = None,
        not_after: Annotated[
            str | None,
            typer.Option(
                "--not-after",
                help="Attestation validity end (RFC 3339; default: the card's revalidate_by).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    ) -> None:
        """Sign, attest and upload a model version (stage Staging): to the Registry, or
        with --oci to an OCI registry; or record an oci:// artifact signed elsewhere."""
        record = _run_publish(dict(locals()))
        if as_json:
            from dataclasses import asdict

            from trustload.cli.jsonout import emit_json

            emit_json(asdict(record))
        else:
            where = f" at {record.artifact_uri}" if record.artifact_uri else ""
            typer.echo(
                f"published {record.name}@{record.version} {record.artifact_digest}{where} "
                f"(stage {record.stage}, tenant {record.card.tenant_id})",
                err=True,
            )
