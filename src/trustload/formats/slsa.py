"""SLSA provenance predicates: the one trustload writes, and the facts the gate reads.

trustload writes SLSA provenance v1 (``https://slsa.dev/provenance/v1``)::

    predicate.buildDefinition.buildType          = "https://trustload.dev/model-build/v1"
    predicate.buildDefinition.externalParameters = {"model": <subject name>}
    predicate.buildDefinition.internalParameters.validity = {
        "notBefore": RFC 3339 UTC,   # optional
        "notAfter":  RFC 3339 UTC,   # optional
    }
    predicate.buildDefinition.resolvedDependencies = [
        {"name": "source", "uri": "git+commit:<git_sha>", "digest": {"gitCommit": <git_sha>}},
        {"name": "serving-container", "uri": <container_digest>, "digest": {"sha256": <hex>}},
        {"name": "dataset-snapshot", "uri": <dataset_snapshot>, "digest": {"sha256": <hex>}?},
    ]
    predicate.runDetails.builder.id = "https://trustload.dev/attestor/v1"

The validity window lives inside the signed payload (``internalParameters.validity``),
so it cannot be stretched without breaking the DSSE signature.

The reader also accepts SLSA v0.2 (``https://slsa.dev/provenance/v0.2``) shaped as
``predicate.invocation.configSource.digest.gitSha`` (or ``sha1`` / ``gitCommit``) and
``predicate.materials[].digest.sha256`` (the container and the dataset are materials).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.identifiers import Kind, is_valid

SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
BUILD_TYPE = "https://trustload.dev/model-build/v1"
BUILDER_ID = "https://trustload.dev/attestor/v1"
DEP_SOURCE = "source"
DEP_CONTAINER = "serving-container"
DEP_DATASET = "dataset-snapshot"


def rfc3339_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: Any, *, code: ReasonCode, what: str) -> datetime:
    if not isinstance(text, str) or len(text) > 64:
        raise FormatError(code, f"{what}: not an RFC 3339 timestamp")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FormatError(code, f"{what}: not an RFC 3339 timestamp: {text!r:.64}") from None
    if moment.tzinfo is None:
        raise FormatError(code, f"{what}: timestamp without a time zone: {text!r:.64}")
    return moment.astimezone(UTC)


def sha256_hex_of(value: str) -> str | None:
    """The hex of ``sha256:<hex>`` / ``repo@sha256:<hex>`` / bare 64-hex values, else None."""
    v = value.strip().lower()
    if "@" in v:
        v = v.rsplit("@", 1)[1]
    if v.startswith("sha256:"):
        v = v[len("sha256:") :]
    return v if is_valid(Kind.HEX64, v) else None


def build_predicate(
    *,
    subject_name: str,
    git_sha: str,
    container_digest: str,
    dataset_snapshot: str,
    not_before: datetime | None,
    not_after: datetime | None,
    invocation_id: str,
    started_on: datetime,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": DEP_CONTAINER, "uri": container_digest}
    chex = sha256_hex_of(container_digest)
    if chex:
        container["digest"] = {"sha256": chex}
    dataset: dict[str, Any] = {"name": DEP_DATASET, "uri": dataset_snapshot}
    dhex = sha256_hex_of(dataset_snapshot)
    if dhex:
        dataset["digest"] = {"sha256": dhex}
    validity: dict[str, str] = {}
    if not_before is not None:
        validity["notBefore"] = rfc3339_utc(not_before)
    if not_after is not None:
        validity["notAfter"] = rfc3339_utc(not_after)
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"model": subject_name},
            "internalParameters": {"validity": validity},
            "resolvedDependencies": [
                {
                    "name": DEP_SOURCE,
                    "uri": f"git+commit:{git_sha}",
                    "digest": {"gitCommit": git_sha},
                },
                container,
                dataset,
            ],
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID},
            "metadata": {"invocationId": invocation_id, "startedOn": rfc3339_utc(started_on)},
        },
    }


@dataclass(frozen=True)
class ProvenanceFacts:
    """Facts read from a provenance predicate; candidate lists feed coherence checks."""

    git_sha: str | None
    container_digest: str | None
    dataset_snapshot: str | None
    not_before: datetime | None
    not_after: datetime | None
    builder_id: str | None
    git_candidates: tuple[str, ...]
    container_candidates: tuple[str, ...]
    dataset_candidates: tuple[str, ...]
    source_uris: tuple[str, ...]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dep_values(dep: dict[str, Any]) -> list[str]:
    out: list[str] = []
    uri = _str(dep.get("uri"))
    if uri:
        out.append(uri)
    for alg, val in _obj(dep.get("digest")).items():
        if isinstance(val, str) and val:
            out.append(f"{alg}:{val}" if alg != "gitCommit" else val)
    return out


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def extract_facts(
    predicate_type: str, predicate: dict[str, Any], *, code: ReasonCode
) -> ProvenanceFacts:
    """Read git / container / dataset / validity facts; unknown predicates give Nones."""
    git: list[str] = []
    container: list[str] = []
    dataset: list[str] = []
    sources: list[str] = []
    not_before = not_after = None
    builder_id: str | None = None
    if predicate_type == SLSA_V1:
        bdef = _obj(predicate.get("buildDefinition"))
        deps = _dicts(bdef.get("resolvedDependencies"))
        validity = _obj(_obj(bdef.get("internalParameters")).get("validity"))
        if "notBefore" in validity:
            not_before = parse_rfc3339(validity["notBefore"], code=code, what="notBefore")
        if "notAfter" in validity:
            not_after = parse_rfc3339(validity["notAfter"], code=code, what="notAfter")
        named = {d.get("name"): d for d in deps if isinstance(d.get("name"), str)}
        if DEP_SOURCE in named:
            g = _obj(named[DEP_SOURCE].get("digest")).get("gitCommit")
            if isinstance(g, str):
                git.append(g)
        for d in deps:
            g = _obj(d.get("digest")).get("gitCommit")
            if isinstance(g, str) and g not in git:
                git.append(g)
            uri = _str(d.get("uri"))
            if uri and uri.startswith("git+"):
                sources.append(uri)
        if DEP_CONTAINER in named:
            container.extend(_dep_values(named[DEP_CONTAINER]))
        if DEP_DATASET in named:
            dataset.extend(_dep_values(named[DEP_DATASET]))
        workflow = _obj(_obj(bdef.get("externalParameters")).get("workflow"))
        repo = _str(workflow.get("repository"))
        if repo:
            sources.append(repo)
        builder_id = _str(_obj(_obj(predicate.get("runDetails")).get("builder")).get("id"))
    elif predicate_type == SLSA_V02:
        inv = _obj(predicate.get("invocation"))
        cfg = _obj(inv.get("configSource"))
        cdig = _obj(cfg.get("digest"))
        for key in ("gitSha", "gitCommit", "sha1"):
            v = cdig.get(key)
            if isinstance(v, str) and v not in git:
                git.append(v)
        uri = _str(cfg.get("uri"))
        if uri:
            sources.append(uri)
        for m in _dicts(predicate.get("materials")):
            values = _dep_values(m)
            muri = (_str(m.get("uri")) or "").lower()
            if any(k in muri for k in ("dataset", "data/", "snapshot")):
                dataset.extend(values)
            elif any(k in muri for k in ("docker", "oci", "image", "container", "pkg:")):
                container.extend(values)
            else:
                # Unlabelled materials may be either; coherence checks look for the
                # expected value among them.
                container.extend(values)
                dataset.extend(values)
            if muri.startswith("git+"):
                sources.append(_str(m.get("uri")) or "")
        meta = _obj(predicate.get("metadata"))
        validity = _obj(meta.get("validity"))
        if "notBefore" in validity:
            not_before = parse_rfc3339(validity["notBefore"], code=code, what="notBefore")
        if "notAfter" in validity:
            not_after = parse_rfc3339(validity["notAfter"], code=code, what="notAfter")
        builder_id = _str(_obj(predicate.get("builder")).get("id"))
    if not_before and not_after and not_after < not_before:
        raise FormatError(code, "validity window: notAfter precedes notBefore")

    def first_container() -> str | None:
        for v in container:
            h = sha256_hex_of(v)
            if h:
                return f"sha256:{h}" if not v.lower().startswith("sha256:") and "@" not in v else v
        return _first(container)

    return ProvenanceFacts(
        git_sha=_first(git),
        container_digest=first_container(),
        dataset_snapshot=_first(dataset),
        not_before=not_before,
        not_after=not_after,
        builder_id=builder_id,
        git_candidates=tuple(git),
        container_candidates=tuple(container),
        dataset_candidates=tuple(dataset),
        source_uris=tuple(s for s in sources if s),
    )


def value_matches(expected: str, candidates: tuple[str, ...]) -> bool:
    """Expected value equals a candidate exactly, or both name the same sha256 digest."""
    import hmac

    exp_hex = sha256_hex_of(expected)
    ok = False
    for c in candidates:
        if hmac.compare_digest(c.encode(), expected.encode()):
            ok = True
        c_hex = sha256_hex_of(c)
        if exp_hex and c_hex and hmac.compare_digest(exp_hex, c_hex):
            ok = True
    return ok


def git_matches(expected: str, candidates: tuple[str, ...]) -> bool:
    import hmac

    want = expected.strip().lower()
    return any(hmac.compare_digest(c.strip().lower().encode(), want.encode()) for c in candidates)


def normalise_source(uri: str) -> str:
    """``git+https://github.com/o/r@refs/x`` / ``https://github.com/o/r`` -> ``github.com/o/r``."""
    u = uri.strip()
    if u.startswith("git+"):
        u = u[4:]
    for scheme in ("https://", "http://", "ssh://", "git://"):
        if u.startswith(scheme):
            u = u[len(scheme) :]
    u = u.split("@", 1)[0]
    if u.endswith(".git"):
        u = u[:-4]
    return u.rstrip("/")


def check_slsa_policy(
    facts: ProvenanceFacts, *, source_uri: str | None, builder_id: str | None
) -> list[str]:
    """slsa-verifier style checks: exact source repository, builder id ignoring its ``@ref``.

    Returns the list of problems (empty when the policy holds).
    """
    problems: list[str] = []
    if source_uri is not None:
        want = normalise_source(source_uri)
        have = {normalise_source(s) for s in facts.source_uris}
        if not have or have != {want}:
            problems.append(f"source mismatch: {sorted(have)} vs {want}")
    if builder_id is not None:
        got = facts.builder_id or ""
        if got.split("@", 1)[0] != builder_id.split("@", 1)[0]:
            problems.append(f"builder mismatch: {got!r} vs {builder_id!r}")
    return problems
