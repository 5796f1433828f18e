"""``WWW-Authenticate`` parsing: strict, bounded, AUTH_FAILED on anything odd."""

from __future__ import annotations

import pytest

from trustload.decision import ReasonCode
from trustload.errors import RegistryError
from trustload.oci.auth import parse_challenge, token_from_answer


def test_bearer_challenge_params() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }


def test_escaped_quote_and_second_challenge() -> None:
    c = parse_challenge('Basic realm="say \\"hi\\"", Bearer realm="x"')
    assert c.scheme == "basic" and c.params["realm"] == 'say "hi"'


@pytest.mark.parametrize(
    "header",
    [None, "", "Negotiate abc", "Bearer realm=unquoted", "Bearer " + "a" * 5000, "Digest x="],
)
def test_odd_challenges_are_auth_failed(header: str | None) -> None:
    with pytest.raises(RegistryError) as info:
        parse_challenge(header)
    assert info.value.code is ReasonCode.AUTH_FAILED


@pytest.mark.parametrize(
    "doc", [[], {}, {"token": ""}, {"token": 5}, {"token": "a b"}, {"token": "x" * 20000}]
)
def test_unusable_token_answers(doc: object) -> None:
    with pytest.raises(RegistryError) as info:
        token_from_answer(doc)
    assert info.value.code is ReasonCode.AUTH_FAILED


def test_token_or_access_token() -> None:
    assert token_from_answer({"token": "a.b.c"}) == "a.b.c"
    assert token_from_answer({"access_token": "x-y_z"}) == "x-y_z"
