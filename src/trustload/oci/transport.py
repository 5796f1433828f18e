"""The wire to OCI registries: allowlist, per-host TLS, auth challenges, redirects, retries.

Built on the Registry client's pieces (:mod:`trustload.client.transport`: the SSL context
that trusts only the configured CA and refuses TLS < 1.2, the error translation, the
slow-retrieval floor), with what the distribution spec adds:

* **Allowlist.** Only hosts listed in ``[[oci.registries]]`` are ever contacted, over
  https, each with its own CA and optional client certificate. A reference, a redirect or
  a token realm naming any other host is ``REGISTRY_NOT_ALLOWED`` before a byte is sent.
* **Authentication.** A 401 is answered once per request: with Basic credentials, or with
  a token fetched from the challenge's ``realm`` (which must itself be an allowlisted https
  host). A second 401 for the same request is ``AUTH_FAILED``: a 401 loop always ends.
* **Redirect policy** (blob storage): only GET and HEAD follow redirects, at most
  :data:`MAX_REDIRECTS` hops, only to https URLs on allowlisted hosts (with that host's own
  CA); credentials are sent to the registry that asked for them only, never across hosts.
* **Bounds.** Connect and read timeouts on every call; GET/HEAD retried at most
  ``retries`` times with jittered backoff on unavailability; every body read through a
  size cap and the slow-retrieval floor.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Union
from urllib.parse import urlencode, urljoin, urlsplit

from trustload.client.transport import (
    REDIRECT_STATUSES,
    RETRY_STATUSES,
    RateFloor,
    build_ssl_context,
    status_error,
    translate,
)
from trustload.config import OciConfig, OciRegistryConfig
from trustload.decision import ReasonCode
from trustload.errors import RegistryError
from trustload.identifiers import parse_decimal
from trustload.oci.auth import MAX_TOKEN_ANSWER, Credentials, parse_challenge, token_from_answer
from trustload.oci.deadline import HEAD_DEADLINE

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 3
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
IDEMPOTENT = frozenset({"GET", "HEAD"})

Body = Union[bytes, Callable[[], Iterable[bytes]], None]  # noqa: UP007
"""A request body: bytes, or a factory of a fresh chunk iterator (re-sent after a 401)."""


def host_key(hostname: str, port: int | None) -> str:
    """``host[:port]`` as ``[[oci.registries]].host`` spells it (443 implied)."""
    name = hostname.lower()
    if ":" in name:  # IPv6 literal
        name = f"[{name}]"
    return name if port in (None, 443) else f"{name}:{port}"


def normalise_host(host: str) -> str:
    try:
        parts = urlsplit(f"https://{host}")
        return host_key(parts.hostname or "", parts.port)
    except ValueError:
        return host.lower()


class OciTransport:
    """Pooled, policy-enforcing HTTPS to the registries of one ``[oci]`` configuration."""

    def __init__(self, cfg: OciConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.entries: dict[str, OciRegistryConfig] = {
            normalise_host(r.host): r for r in cfg.registries
        }
        self._sleep = sleep
        self._clients: dict[str, httpx.Client] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._authorization: dict[tuple[str, str], str] = {}
        self._answered: set[str] = set()  # hosts that answered: their TLS accepted us
        self.requests_sent = 0
        # Hosts that answered the referrers API with 404/405/400: use the tag schema.
        self.no_referrers_api: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    def entry(self, host: str) -> OciRegistryConfig:
        found = self.entries.get(normalise_host(host))
        if found is None:
            raise RegistryError(
                ReasonCode.REGISTRY_NOT_ALLOWED,
                f"OCI registry {host[:200]} is not listed in [[oci.registries]]",
            )
        return found

    def base_url(self, host: str) -> str:
        return f"https://{normalise_host(host)}"

    def ssl_context(self, host: str) -> ssl.SSLContext:
        key = normalise_host(host)
        if key not in self._contexts:
            e = self.entry(key)
            self._contexts[key] = build_ssl_context(e.ca, e.client_cert, e.client_key)
        return self._contexts[key]

    def _client(self, host: str) -> httpx.Client:
        key = normalise_host(host)
        if key not in self._clients:
            import httpcore
            import httpx

            from trustload.oci.deadline import DeadlineBackend

            e = self.entry(key)
            transport = httpx.HTTPTransport(verify=self.ssl_context(key), trust_env=False)
            # httpx exposes no network backend: the pool it would build, with ours.
            transport._pool = httpcore.ConnectionPool(
                ssl_context=self.ssl_context(key),
                max_connections=8,
                max_keepalive_connections=4,
                keepalive_expiry=5.0,
                network_backend=DeadlineBackend(),
            )
            self._clients[key] = httpx.Client(
                transport=transport,
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(e.read_timeout, connect=e.connect_timeout),
            )
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> OciTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backoff(self, attempt: int) -> None:
        """Jittered exponential backoff before retry ``attempt + 1`` (the blob cache's)."""
        self._backoff(attempt)

    def _backoff(self, attempt: int) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
        self._sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto

    def _target(self, url: str) -> str:
        """The allowlisted host key of an absolute URL; anything else is refused."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise RegistryError(
                ReasonCode.REGISTRY_NOT_ALLOWED, f"malformed URL {url[:200]!r}"
            ) from exc
        if parts.scheme.lower() != "https":
            raise RegistryError(
                ReasonCode.REGISTRY_NOT_ALLOWED,
                f"only https is allowed, refused {parts.scheme or 'no'}-scheme URL",
            )
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, "URL without host, or userinfo")
        key = host_key(parts.hostname, port)
        self.entry(key)
        return key

    # ------------------------------------------------------------------ requests
    @contextmanager
    def open(
        self,
        method: str,
        host: str,
        path_or_url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        tolerate: frozenset[int] = frozenset(),
    ) -> Iterator[httpx.Response]:
        """One request; yields the response (2xx, or a status in ``tolerate``) unread.

        Any other status raises the RegistryError its code maps to (401/403
        AUTH_FAILED, 404 NOT_FOUND, else REGISTRY_UNAVAILABLE).
        """
        method = method.upper()
        url = path_or_url if "://" in path_or_url else self.base_url(host) + path_or_url
        entry = self.entry(host)
        attempts = 1 + (max(0, entry.retries) if method in IDEMPOTENT else 0)
        last: RegistryError | None = None
        for attempt in range(attempts):
            if attempt:
                self._backoff(attempt - 1)
            try:
                response = self._authorized(method, host, url, scope, headers, body)
            except RegistryError as exc:
                if exc.code is ReasonCode.REGISTRY_UNAVAILABLE and attempt + 1 < attempts:
                    last = exc
                    continue
                raise
            try:
                status = response.status_code
                if status in RETRY_STATUSES and attempt + 1 < attempts:
                    last = status_error(status, b"", str(response.url))
                    continue
                if not (200 <= status < 300 or status in tolerate):
                    raise status_error(status, self._peek(response), str(response.url))
                yield response
                return
            finally:
                response.close()
        assert last is not None
        raise last

    def _peek(self, response: httpx.Response) -> bytes:
        try:
            return self.read(response, 65536, str(response.url), strict=False)
        except Exception:  # the status is what matters
            return b""

    def _authorized(
        self,
        method: str,
        host: str,
        url: str,
        scope: str,
        headers: Mapping[str, str] | None,
        body: Body,
    ) -> httpx.Response:
        """Send, answering at most one authentication challenge (a loop is AUTH_FAILED)."""
        key = (normalise_host(host), scope)
        basic = (key[0], "*")  # Basic credentials hold for every scope of the host
        for round_ in range(2):
            hdrs = dict(headers or {})
            known = self._authorization.get(key) or self._authorization.get(basic)
            if known is not None:
                hdrs["Authorization"] = known
            response = self._send_following(method, host, url, hdrs, body)
            if response.status_code != 401:
                return response
            challenge = response.headers.get("www-authenticate")
            response.close()
            if round_:
                self._authorization.pop(key, None)
                self._authorization.pop(basic, None)
                raise RegistryError(
                    ReasonCode.AUTH_FAILED,
                    f"registry {key[0]} refused our credentials for {scope or 'the API'}",
                )
            answer = self._answer(host, challenge, scope)
            self._authorization[basic if answer.startswith("Basic ") else key] = answer
        raise AssertionError("unreachable")

    def _credentials(self, host: str) -> Credentials | None:
        e = self.entry(host)
        if e.username is None or e.password_file is None:
            return None
        return Credentials(e.username, e.password_file)

    def _answer(self, host: str, header: str | None, scope: str) -> str:
        challenge = parse_challenge(header)
        creds = self._credentials(host)
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryError(
                    ReasonCode.AUTH_FAILED,
                    f"registry {host} asks for Basic credentials; none configured",
                )
            return creds.basic()
        realm = challenge.params.get("realm", "")
        realm_host = self._target(realm)
        query = {k: v for k in ("service",) if (v := challenge.params.get(k))}
        wanted = challenge.params.get("scope") or scope
        if wanted:
            query["scope"] = wanted
        url = realm + (("&" if "?" in realm else "?") + urlencode(query) if query else "")
        hdrs = {"Accept": "application/json"}
        # The realm's own entry's credentials if it has some, else this registry's (as
        # docker sends Hub credentials to auth.docker.io): the realm is allowlisted https.
        own = self._credentials(realm_host) if realm_host != normalise_host(host) else None
        if (own or creds) is not None:
            hdrs["Authorization"] = (own or creds).basic()  # type: ignore[union-attr]
        response = self._send_following("GET", realm_host, url, hdrs, None)
        try:
            if response.status_code in (401, 403):
                raise RegistryError(
                    ReasonCode.AUTH_FAILED,
                    f"token server {realm_host} refused our credentials",
                )
            if not 200 <= response.status_code < 300:
                raise status_error(response.status_code, b"", url)
            raw = self.read(response, MAX_TOKEN_ANSWER, url)
        finally:
            response.close()
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(ReasonCode.AUTH_FAILED, "token server answered non-JSON") from exc
        return f"Bearer {token_from_answer(doc)}"

    def _send_following(
        self,
        method: str,
        host: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
    ) -> httpx.Response:
        origin = normalise_host(host)
        for _hop in range(MAX_REDIRECTS + 1):
            target = self._target(url)
            hdrs = dict(headers)
            if target != origin:
                hdrs.pop("Authorization", None)  # never hand one host's credentials to another
            client = self._client(target)
            content = body() if callable(body) else body
            e = self.entry(target)
            # The whole head (connect, TLS, request, status and headers) within this; a
            # request body may take longer, a drip-fed head may not.
            deadline = HEAD_DEADLINE.set(
                None if content is not None and not isinstance(content, bytes)
                else time.monotonic() + e.connect_timeout + e.read_timeout
            )  # fmt: skip
            try:
                request = client.build_request(method, url, headers=hdrs, content=content)
                self.requests_sent += 1
                response = client.send(request, stream=True)
            except Exception as exc:  # every library error is translated
                raise translate(exc, url, certificate_accepted=target in self._answered) from exc
            finally:
                HEAD_DEADLINE.reset(deadline)
            self._answered.add(target)
            if response.status_code not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("location", "")
            response.close()
            if method not in IDEMPOTENT:
                raise RegistryError(
                    ReasonCode.REGISTRY_NOT_ALLOWED, f"registry {target} redirected a {method}"
                )
            if not location:
                raise RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, "redirect without Location")
            url = urljoin(url, location)
        raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, f"more than {MAX_REDIRECTS} redirects")

    # --------------------------------------------------------------------- bodies
    def chunks(self, response: httpx.Response, limit: int, url: str) -> Iterator[bytes]:
        """The body, refused once it passes ``limit`` bytes or drops below the rate floor.

        Raises ``RegistryError(DIGEST_MISMATCH)`` past ``limit``: every limit here is a
        descriptor's size or a format bound, so more bytes cannot be the bytes asked for.
        """
        host = urlsplit(str(response.url)).netloc
        e = self.entries.get(normalise_host(host))
        floor = RateFloor(e.min_download_rate if e else 16 * 1024, e.slow_grace if e else 10.0, url)
        declared = parse_decimal(response.headers.get("content-length"))
        if declared is not None and declared > limit:
            raise RegistryError(
                ReasonCode.DIGEST_MISMATCH,
                f"registry {host} announced {declared} bytes where at most {limit} may be",
            )
        received = 0
        try:
            for chunk in response.iter_bytes():
                received += len(chunk)
                floor.update(len(chunk))
                if received > limit:
                    raise RegistryError(
                        ReasonCode.DIGEST_MISMATCH,
                        f"registry {host} sent more than the {limit} bytes expected",
                    )
                yield chunk
        except RegistryError:
            raise
        except Exception as exc:  # an answer had begun: never AUTH_FAILED
            raise translate(exc, url, certificate_accepted=True) from exc

    def read(self, response: httpx.Response, limit: int, url: str, strict: bool = True) -> bytes:
        if not strict:
            buf = bytearray()
            for chunk in response.iter_bytes():
                buf += chunk
                if len(buf) >= limit:
                    break
            return bytes(buf[:limit])
        return b"".join(self.chunks(response, limit, url))
