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

if TYPE_CHECKING:
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
        parse_digest,
    )
    from trustload.signing import attest_bytes, sign_layout_bundle

    if not key.is_file():
        raise UsageError(f"no such signing key: {key}")
    if policy_digest is not None:
        parse_digest(policy_digest)
    else:
        from trustload.policy import policy_digest as digest_of

        policy_digest = digest_of(cfg.gate.policy_dir)

    layout = ModelLayout.from_path(path)
    measured = measure_layout(layout)
    files = [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in measured.files]
    fmt = guess_format([f.path for f in measured.files])
    bundle = sign_layout_bundle(layout, key, password=password)
    with RegistryClient(cfg.registry) as client:
        if isinstance(card, dict):
            card_doc = card
        elif card is not None:
            card_doc = load_card(card)
        else:
            who = client.requester()
            card_doc = default_card(who.tenant_id, who.domain, who.purposes, fmt)
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


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(
        path: Annotated[Path, typer.Argument(help="Model file or directory.")],
        name: Annotated[str, typer.Option("--name", help="Model name.")],
        version: Annotated[str, typer.Option("--version", help="Immutable version.")],
        config: Annotated[Path, typer.Option("--config", help="admin.toml")],
        key: Annotated[Path, typer.Option("--key", help="Signing key (PKCS#8 PEM).")],
        git_sha: Annotated[str, typer.Option("--git-sha")],
        container_digest: Annotated[str, typer.Option("--container-digest")],
        dataset_snapshot: Annotated[str, typer.Option("--dataset-snapshot")],
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
        """Sign, attest and upload a model version to the Registry (stage Staging)."""
        from trustload.config import load_client_config

        cfg = load_client_config(config)
        password_env = os.environ.get("TRUSTLOAD_KEY_PASSWORD")
        record = publish_model(
            cfg,
            path,
            name=name,
            version=version,
            key=key,
            git_sha=git_sha,
            container_digest=container_digest,
            dataset_snapshot=dataset_snapshot,
            card=card,
            policy_digest=policy_digest,
            not_after=parse_time(not_after, "--not-after") if not_after else None,
            password=password_env.encode() if password_env else None,
        )
        if as_json:
            from dataclasses import asdict

            from trustload.cli.jsonout import emit_json

            emit_json(asdict(record))
        else:
            typer.echo(
                f"published {record.name}@{record.version} {record.artifact_digest} "
                f"(stage {record.stage}, tenant {record.card.tenant_id})",
                err=True,
            )
