"""TOML configuration: ``registry.toml``, ``admin.toml`` and ``gate.toml``.

Paths inside a config file are relative to that file (INTERFACE.md). Unknown keys are
refused so a typo never silently disables a control; a bad config is a usage error
(exit 2), never a denial and never a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trustload.errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DevTokenConfig(_Strict):
    """Mint a fresh token from the dev issuer on every request (dev-env only)."""

    issuer_config: Path  # a registry.toml whose [dev_issuer] holds the signing key
    sub: str
    tenant: str
    purpose: list[str] = Field(default_factory=list)
    domain: str | None = None
    role: Literal["consumer", "publisher", "admin"] = "consumer"
    ttl: int = 300
    bind_cert: Path | None = None  # mint tokens bound to this certificate (cnf.x5t#S256)


class RegistryClientConfig(_Strict):
    """The client side of the channel to the Registry, shared by every command."""

    url: str
    allowlist: list[str] = Field(default_factory=list)
    ca: Path
    client_cert: Path
    client_key: Path
    token_file: Path | None = None
    dev_token: DevTokenConfig | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 3
    max_download_bytes: int = 64 * 1024**3
    # Slow-retrieval floor (TUF): after slow_grace seconds an answer must average at least
    # min_download_rate bytes/s, or it is dropped (a drip-feed never trips read_timeout).
    min_download_rate: int = 16 * 1024
    slow_grace: float = 30.0

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        return v.rstrip("/")


class GateImageConfig(_Strict):
    """``[gate.image]``: the serving image this runtime is, and who must have signed it."""

    reference: str  # HOST/REPO@sha256:<hex> or oci-layout:DIR@sha256:<hex>
    keys: list[Path] = Field(default_factory=list)
    certificate_identity: str | None = None
    certificate_oidc_issuer: str | None = None
    ca_roots: list[Path] = Field(default_factory=list)
    ca_intermediates: list[Path] = Field(default_factory=list)
    trusted_root: Path | None = None
    rekor_keys: list[Path] = Field(default_factory=list)

    @field_validator("reference")
    @classmethod
    def _pinned(cls, v: str) -> str:
        from trustload.oci.reference import parse_reference

        try:
            parse_reference(v)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return v


class GateConfig(_Strict):
    environment: str = "prod"
    policy_dir: Path = Path("policy")
    cache_dir: Path = Path("cache")
    state_dir: Path = Path("state")
    audit_log: Path = Path("audit.jsonl")
    trusted_keys: list[Path] = Field(default_factory=list)
    # Optional: keys that sign attestations only; then trusted_keys sign models only.
    attestation_keys: list[Path] = Field(default_factory=list)
    certificate_identity: str | None = None
    certificate_oidc_issuer: str | None = None
    trusted_root: Path | None = None
    ca_certs: list[Path] = Field(default_factory=list)
    ca_intermediates: list[Path] = Field(default_factory=list)  # PEM, chain-building help
    rekor_keys: list[Path] = Field(default_factory=list)  # a Rekor SET is then required (cosign)
    clock_skew: int = 60  # seconds of leeway on validity windows
    require_change_ticket: bool = False  # older versions need a ticket on the alias move
    offline_start: bool = False
    max_staleness: int = 300  # seconds a verified model may serve without Registry contact
    runtime_container_digest: str | None = None  # the serving image this runtime is
    image: GateImageConfig | None = None  # verify that image's cosign signature (R2.5)

    @model_validator(mode="after")
    def _one_serving_image(self) -> GateConfig:
        if self.image is not None and self.runtime_container_digest is not None:
            from trustload.oci.reference import parse_reference

            if parse_reference(self.image.reference).digest != self.runtime_container_digest:
                raise ValueError("[gate.image] reference and runtime_container_digest disagree")
        return self

    allow_pickle: bool = False
    # Stages this environment admits; required for a name outside the known table
    # (checks/stage.py), so a typo such as "prd" is a configuration error, not Staging.
    allowed_stages: list[str] | None = None

    @model_validator(mode="after")
    def _known_environment(self) -> GateConfig:
        from trustload.checks.stage import allowed_stages_for

        allowed_stages_for(self.environment, self.allowed_stages)  # raises ValueError
        return self

    def stages(self) -> tuple[str, ...]:
        """The stages this gate admits (validated at load)."""
        from trustload.checks.stage import allowed_stages_for

        return allowed_stages_for(self.environment, self.allowed_stages)

    # An attestation without notAfter is ATTESTATION_INVALID. None: true in prod/production.
    require_attestation_window: bool | None = None

    @model_validator(mode="after")
    def _pinned_ca_identity(self) -> GateConfig:
        # A private CA without a pinned leaf identity would admit any leaf it ever issued.
        if self.ca_certs and not self.certificate_identity:
            raise ValueError(
                "ca_certs needs certificate_identity: a CA without a pinned leaf identity "
                "would trust every certificate it ever issued"
            )
        return self

    def attestation_window_required(self) -> bool:
        if self.require_attestation_window is not None:
            return self.require_attestation_window
        return self.environment.strip().lower() in ("prod", "production")


class ServeConfig(_Strict):
    listen: str = "127.0.0.1:8080"
    refresh_interval: float = 30.0
    max_request_bytes: int = 16 * 1024 * 1024
    request_timeout: float = 10.0
    max_concurrency: int = 16
    model: str | None = None  # NAME@ALIAS or NAME@VERSION that `trustload serve` serves


class ServerConfig(_Strict):
    """The Registry service itself (registry.toml)."""

    listen: str = "127.0.0.1:8443"
    cert: Path
    key: Path
    client_ca: Path
    database: str = "sqlite:///registry.db"
    data_dir: Path = Path("registry-data")
    # Where blob bytes live: None is the filesystem store in data_dir (the embedded
    # default); "oci://HOST/REPO" an OCI registry listed in [[oci.registries]], so that
    # replicas on one PostgreSQL share no disk.
    blob_store: str | None = None
    max_blob_bytes: int = 64 * 1024**3
    max_json_bytes: int = 8 * 1024 * 1024


class OIDCConfig(_Strict):
    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    # The CA bundle that vouches for jwks_url's TLS certificate; never the system store.
    jwks_ca: Path | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"])
    max_token_lifetime: int = 3600
    leeway: int = 30
    # RFC 8705: refuse tokens without cnf.x5t#S256 bound to the client certificate.
    require_bound_tokens: bool = False

    @model_validator(mode="after")
    def _jwks_trust(self) -> OIDCConfig:
        # The key set decides who may call the Registry: whoever can answer for its URL
        # must be vouched for by a CA chosen for it, not any CA of the system store.
        if self.jwks_url is not None and self.jwks_ca is None:
            raise ValueError("jwks_url needs jwks_ca (the CA bundle that signs its certificate)")
        return self


class DevIssuerConfig(_Strict):
    private_key: Path
    kid: str
    issuer: str
    audience: str


class OciRegistryConfig(_Strict):
    """One OCI registry trustload may contact (``[[oci.registries]]``, INTERFACE.md)."""

    host: str  # host[:port], compared exactly (lower-cased) with a reference's host
    ca: Path  # the only CA trusted for this host; https only, TLS >= 1.2
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retries: int = 2
    min_download_rate: int = 16 * 1024
    slow_grace: float = 10.0
    # A pull-through cache or air-gap mirror: this registry holds copies of these hosts'
    # repositories under the same names. Artifacts pinned by digest on those hosts are
    # fetched here first (digest pinning makes a mirror safe: it can only deny).
    mirror_of: list[str] = Field(default_factory=list)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return _oci_host(v)

    @field_validator("mirror_of")
    @classmethod
    def _mirrored(cls, v: list[str]) -> list[str]:
        return [_oci_host(h) for h in v]


def _oci_host(v: str) -> str:
    v = v.strip().lower()
    if not v or "/" in v or "@" in v or "://" in v or any(c.isspace() for c in v):
        raise ValueError("host must be host[:port], without scheme or path")
    return v


class OciConfig(_Strict):
    registries: list[OciRegistryConfig] = Field(default_factory=list)


class RegistryServiceConfig(_Strict):
    server: ServerConfig
    oidc: OIDCConfig
    oci: OciConfig = Field(default_factory=OciConfig)  # for server.blob_store
    dev_issuer: DevIssuerConfig | None = None
    registry: RegistryClientConfig | None = None  # for `trustload token` and conformance


class ClientFileConfig(_Strict):
    """admin.toml and gate.toml."""

    registry: RegistryClientConfig
    oci: OciConfig = Field(default_factory=OciConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    publisher: dict[str, Any] = Field(default_factory=dict)


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, BaseModel):
        updates: dict[str, Any] = {}
        for name in type(value).model_fields:
            updates[name] = _resolve_paths(getattr(value, name), base)
        return value.model_copy(update=updates)
    if isinstance(value, Path):
        return value if value.is_absolute() else (base / value)
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise UsageError(f"config file not found: {path}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc


_T = TypeVar("_T", bound=BaseModel)


def _validate(model: type[_T], data: dict[str, Any], path: Path) -> _T:
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"config file {path}: {problems}") from exc
    resolved: _T = _resolve_paths(parsed, path.resolve().parent)
    return resolved


def load_client_config(path: str | Path) -> ClientFileConfig:
    p = Path(path)
    cfg = _validate(ClientFileConfig, _load_toml(p), p)
    if not cfg.registry.url.startswith("https://"):
        # Not a usage error: the gate must deny with REGISTRY_NOT_ALLOWED (INTERFACE.md).
        pass
    return cfg


def load_oci_config(path: str | Path) -> OciConfig:
    """The ``[oci]`` section of any trustload config file (or of a file holding only it).

    The rest of the file is left to the loader that owns it, but an unknown top-level
    table is still refused, so ``[[oci.registry]]`` (a typo) never means "no registries".
    """
    p = Path(path)
    data = _load_toml(p)
    known = set(ClientFileConfig.model_fields) | set(RegistryServiceConfig.model_fields)
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"config file {p}: unknown top-level keys {unknown}")
    section = data.get("oci", {})
    if not isinstance(section, dict):
        raise UsageError(f"config file {p}: [oci] must be a table")
    return _validate(OciConfig, section, p)


def load_registry_config(path: str | Path) -> RegistryServiceConfig:
    p = Path(path)
    return _validate(RegistryServiceConfig, _load_toml(p), p)
