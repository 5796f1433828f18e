"""in-toto Statements (v1, and v0.1 as older producers such as cosign emit).

The statement is parsed from the exact DSSE payload bytes that were verified, with the
strict JSON loader (duplicate keys refused). Digests are lower-case hex, keyed by
algorithm name as in the in-toto ResourceDescriptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trustload.decision import ReasonCode
from trustload.errors import FormatError
from trustload.formats.jsonstrict import loads_strict, require_object
from trustload.identifiers import Kind, is_valid

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_TYPES = (STATEMENT_V1, STATEMENT_V01)
MAX_SUBJECTS = 4096
DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40, "gitCommit": 40}


@dataclass(frozen=True)
class Subject:
    name: str
    digest: tuple[tuple[str, str], ...]  # (algorithm, lower-case hex)

    def get(self, algorithm: str) -> str | None:
        for alg, value in self.digest:
            if alg == algorithm:
                return value
        return None


@dataclass(frozen=True)
class Statement:
    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]


def parse_statement_obj(obj: Any, *, code: ReasonCode) -> Statement:
    st = require_object(obj, code=code, what="in-toto statement")
    stype = st.get("_type")
    if stype not in STATEMENT_TYPES:
        raise FormatError(code, f"in-toto statement: unknown _type {stype!r:.80}")
    ptype = st.get("predicateType")
    if not isinstance(ptype, str) or not ptype or len(ptype) > 1024:
        raise FormatError(code, "in-toto statement: missing predicateType")
    predicate = st.get("predicate", {})
    if predicate is None:
        predicate = {}
    if not isinstance(predicate, dict):
        raise FormatError(code, "in-toto statement: predicate must be an object")
    raw_subjects = st.get("subject")
    if not isinstance(raw_subjects, list):
        raise FormatError(code, "in-toto statement: subject must be a list")
    if len(raw_subjects) > MAX_SUBJECTS:
        raise FormatError(code, "in-toto statement: too many subjects")
    subjects: list[Subject] = []
    for item in raw_subjects:
        s = require_object(item, code=code, what="in-toto subject")
        name = s.get("name", "")
        if not isinstance(name, str) or len(name) > 4096:
            raise FormatError(code, "in-toto subject: bad name")
        digest = s.get("digest", {})
        if not isinstance(digest, dict):
            raise FormatError(code, "in-toto subject: digest must be an object")
        pairs: list[tuple[str, str]] = []
        for alg, value in digest.items():
            if not isinstance(value, str) or len(value) > 1024:
                raise FormatError(code, "in-toto subject: digest values must be strings")
            value_l = value.lower()
            if alg in DIGEST_HEX_LEN and (
                len(value_l) != DIGEST_HEX_LEN[alg] or not is_valid(Kind.HEX, value_l)
            ):
                raise FormatError(code, f"in-toto subject: malformed {alg} digest")
            pairs.append((alg, value_l))
        subjects.append(Subject(name, tuple(sorted(pairs))))
    return Statement(stype, tuple(subjects), ptype, predicate)


def parse_statement(payload: bytes, *, code: ReasonCode) -> Statement:
    return parse_statement_obj(
        loads_strict(payload, code=code, what="in-toto statement"), code=code
    )


def subject_matches(statement: Statement, artifact_digest: str) -> bool:
    """True when some subject carries ``artifact_digest`` (``alg:hex``); constant-time compare."""
    from trustload.digests import digests_equal

    alg, sep, hexpart = artifact_digest.partition(":")
    if not sep or not hexpart:
        return False
    want = hexpart.lower()
    found = False
    for subject in statement.subjects:
        value = subject.get(alg)
        if value is not None and digests_equal(value, want):
            found = True
    return found
