"""The wire to the Registry: mTLS, allowlist, redirects, timeouts, retries (R2.1, R5).

Why it is built by hand rather than with ``httpx.Client(verify=..., cert=...)``:

* httpx 0.28 silently sends **no** client certificate when given ``cert=``; we build
  one :class:`ssl.SSLContext` that trusts only the configured CA, carries the client
  certificate, and refuses anything below TLS 1.2, and pass it as ``verify=ctx``.
* Redirects are never followed by httpx: each hop is checked against the allowlist
  here, so a Registry (or anything in the path) cannot send the gate elsewhere.
* Proxies and ``SSL_CERT_FILE`` from the environment are ignored (``trust_env=False``):
  the channel is exactly what the configuration says.
* Every httpx / ssl / OS error is translated into :class:`RegistryError` with a
  deliberate reason code, so the gate turns channel failures into decisions, never
  tracebacks.

Tokens are read from ``token_file`` on **every** request (Kubernetes rotates projected
tokens) or minted fresh by the dev issuer.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from trustload.config import DevTokenConfig, RegistryClientConfig
from trustload.decision import ReasonCode
from trustload.errors import RegistryError
from trustload.identifiers import parse_decimal

if TYPE_CHECKING:
    import httpx

MAX_TOKEN_BYTES = 64 * 1024
MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_REDIRECTS = 3
BACKOFF_BASE = 0.1
BACKOFF_CAP = 2.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD"})

# OpenSSL reasons meaning "the server refused who we are" versus "the channel does not
# meet our TLS policy". Anything unlisted is treated as a TLS policy failure.
_AUTH_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
        "TLSV1_ALERT_DECRYPT_ERROR",
        # TLS 1.2 servers answer a missing client certificate with a bare
        # handshake_failure alert (a cipher mismatch would too; either way: deny).
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
    }
)


class RegistryHTTPError(RegistryError):
    """The Registry answered with a non-2xx status; keeps its status and error code."""

    def __init__(self, code: ReasonCode, message: str, status: int, registry_code: str) -> None:
        super().__init__(code, message)
        self.status = status
        self.registry_code = registry_code

    def __str__(self) -> str:
        # A refused write (409 CONFLICT, 400 BAD_REQUEST) is not an availability
        # problem: name the Registry's own code to the operator.
        if 400 <= self.status < 500 and self.status not in (401, 403, 404) and self.registry_code:
            return f"{self.registry_code}: {self.message}"
        return super().__str__()


# --------------------------------------------------------------------------- tokens


class TokenSource(Protocol):
    """Where bearer tokens come from. ``token()`` is called once per request."""

    def token(self) -> str: ...


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, *not* verified: only for describing ourselves (requester).

    The Registry verifies the token; the gate only reads which tenant, domain and
    purposes it asks as. A token that does not even parse is an AUTH_FAILED.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise RegistryError(ReasonCode.AUTH_FAILED, "token is not a compact JWT")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        doc = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise RegistryError(ReasonCode.AUTH_FAILED, "token payload is not JSON") from exc
    if not isinstance(doc, dict):
        raise RegistryError(ReasonCode.AUTH_FAILED, "token payload is not a JSON object")
    return doc


class FileTokenSource:
    """Re-reads the token file on every call (projected service-account tokens rotate)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def token(self) -> str:
        try:
            with self.path.open("rb") as fh:
                raw = fh.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise RegistryError(
                ReasonCode.AUTH_FAILED, f"cannot read token file {self.path}: {exc.strerror}"
            ) from exc
        if len(raw) > MAX_TOKEN_BYTES:
            raise RegistryError(ReasonCode.AUTH_FAILED, f"token file {self.path} is too large")
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise RegistryError(ReasonCode.AUTH_FAILED, "token file is not ASCII") from exc
        if not text:
            raise RegistryError(ReasonCode.AUTH_FAILED, f"token file {self.path} is empty")
        return text


class DevTokenSource:
    """Mints a fresh short-lived token from the dev issuer for every request (dev-env)."""

    def __init__(self, dev: DevTokenConfig) -> None:
        self.dev = dev
        self._issuer: Any = None
        self._bind: str | None = None

    def token(self) -> str:
        from trustload.oidc import mint_token, thumbprint_of_file

        if self._issuer is None:
            from trustload.config import load_registry_config

            issuer = load_registry_config(self.dev.issuer_config).dev_issuer
            if issuer is None:
                raise RegistryError(
                    ReasonCode.AUTH_FAILED,
                    f"{self.dev.issuer_config} has no [dev_issuer] to mint tokens with",
                )
            self._issuer = issuer
            if self.dev.bind_cert is not None:  # RFC 8705: bound to our client cert
                self._bind = thumbprint_of_file(self.dev.bind_cert)
        return mint_token(
            self._issuer,
            sub=self.dev.sub,
            tenant=self.dev.tenant,
            purposes=list(self.dev.purpose),
            domain=self.dev.domain,
            role=self.dev.role,
            ttl=self.dev.ttl,
            bind_x5t=self._bind,
        )


class StaticTokenSource:
    """A fixed token (tests, one-shot tools)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token


def token_source_for(cfg: RegistryClientConfig) -> TokenSource:
    if cfg.token_file is not None:
        return FileTokenSource(cfg.token_file)
    if cfg.dev_token is not None:
        return DevTokenSource(cfg.dev_token)
    raise RegistryError(
        ReasonCode.AUTH_FAILED, "no token source: set [registry].token_file or [registry.dev_token]"
    )


# ------------------------------------------------------------------------ allowlist


@dataclass(frozen=True)
class Origin:
    """An https base URL reduced to what the allowlist compares."""

    host: str
    port: int
    path: str  # always ends with "/"

    def covers(self, other: Origin) -> bool:
        return (
            self.host == other.host
            and self.port == other.port
            and (other.path + "/").startswith(self.path)
        )


def parse_https(url: str) -> Origin:
    """Parse an ``https://host[:port][/path]`` URL; anything else is REGISTRY_NOT_ALLOWED."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, f"malformed URL {url!r:.200}") from exc
    if parts.scheme.lower() != "https":
        raise RegistryError(
            ReasonCode.REGISTRY_NOT_ALLOWED,
            f"only https is allowed, got {parts.scheme or 'no'} scheme",
        )
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise RegistryError(
            ReasonCode.REGISTRY_NOT_ALLOWED, f"URL has no host or has userinfo: {url!r:.200}"
        )
    path = parts.path or "/"
    if any(seg in (".", "..") for seg in path.split("/")):
        raise RegistryError(
            ReasonCode.REGISTRY_NOT_ALLOWED, f"URL path is not normalised: {url!r:.200}"
        )
    path = posixpath.normpath(path)
    if not path.endswith("/"):
        path += "/"
    return Origin(parts.hostname.lower(), port if port is not None else 443, path)


class Allowlist:
    """Base URLs the client may talk to. Empty means nothing is allowed (fail closed)."""

    def __init__(self, entries: list[str]) -> None:
        self.entries: list[Origin] = []
        for entry in entries:
            try:
                self.entries.append(parse_https(entry))
            except RegistryError:
                continue  # a non-https entry can never be used; it just matches nothing

    def check(self, url: str) -> None:
        target = parse_https(url)
        if not self.entries:
            raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, "registry.allowlist is empty")
        if not any(entry.covers(target) for entry in self.entries):
            raise RegistryError(
                ReasonCode.REGISTRY_NOT_ALLOWED,
                f"{target.host}:{target.port}{target.path} is not in the registry allowlist",
            )


# ----------------------------------------------------------------------------- TLS


def build_ssl_context(
    ca: Path, client_cert: Path | None, client_key: Path | None
) -> ssl.SSLContext:
    """Trust exactly ``ca``, present the client certificate, refuse TLS < 1.2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise RegistryError(ReasonCode.TLS_POLICY, f"cannot load registry CA {ca}: {exc}") from exc
    if client_cert is not None:
        try:
            ctx.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(
                ReasonCode.AUTH_FAILED, f"cannot load client certificate {client_cert}: {exc}"
            ) from exc
    return ctx


def certificate_caller(cert_path: Path) -> str:
    """The caller identity a client certificate carries: its SPIFFE URI SAN, or subject."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise RegistryError(
            ReasonCode.AUTH_FAILED, f"cannot read client certificate: {exc}"
        ) from exc
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    for uri in uris:
        if uri.startswith("spiffe://"):
            return uri
    return cert.subject.rfc4514_string()


# -------------------------------------------------------------------- error mapping


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError)


def translate(
    exc: BaseException,
    url: str,
    *,
    after_handshake: bool | None = None,
    certificate_accepted: bool = False,
) -> RegistryError:
    """Map an httpx / http.client / ssl / OS error to a RegistryError, deliberately.

    ``after_handshake``: the TLS handshake had completed (None: infer it from the
    httpx error class; httpcore raises ConnectError for anything up to the end of
    the handshake). Under TLS 1.3 the server checks our certificate *after* our side
    of the handshake is done, so a refused certificate shows up as the server
    closing (EOF, reset, or an alert) before it answers: AUTH_FAILED. During the
    handshake, the same symptoms are a TLS policy failure.

    ``certificate_accepted``: this Registry has already answered a request made with
    this very certificate, so a close before answering is the Registry (or the
    network) failing, not a refusal: REGISTRY_UNAVAILABLE.
    """
    error = _translate(exc, url, after_handshake)
    if certificate_accepted and error.code is ReasonCode.AUTH_FAILED and _closed_unanswered(error):
        return RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"{_describe(url)} closed the connection before answering, after accepting "
            f"this client certificate earlier: {error.message}",
        )
    return error


_CLOSED_UNANSWERED = "closed the connection"


def _closed_unanswered(error: RegistryError) -> bool:
    return _CLOSED_UNANSWERED in error.message


def _translate(exc: BaseException, url: str, after_handshake: bool | None) -> RegistryError:
    import httpx

    if isinstance(exc, RegistryError):
        return exc
    if after_handshake is None:
        after_handshake = isinstance(
            exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError
        )
    where = _describe(url)
    for cause in _causes(exc):
        if after_handshake and isinstance(cause, _CLOSED):
            return RegistryError(
                ReasonCode.AUTH_FAILED,
                f"{where} closed the connection after the handshake, before answering "
                f"(client certificate refused?): {type(cause).__name__}",
            )
        if isinstance(cause, ssl.SSLCertVerificationError):
            return RegistryError(
                ReasonCode.TLS_POLICY,
                f"server certificate of {where} not trusted: "
                f"{cause.verify_message or cause.reason}",
            )
        if isinstance(cause, ssl.SSLError):
            reason = str(cause.reason or "")
            if reason in _AUTH_ALERTS:
                return RegistryError(
                    ReasonCode.AUTH_FAILED, f"{where} refused our client certificate ({reason})"
                )
            return RegistryError(
                ReasonCode.TLS_POLICY, f"TLS with {where} failed ({reason or cause})"
            )
    import http.client

    if isinstance(exc, http.client.RemoteDisconnected):
        return RegistryError(
            ReasonCode.AUTH_FAILED,
            f"{where} closed the connection before answering (client certificate refused?)",
        )
    if isinstance(exc, http.client.IncompleteRead):
        return RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"{where} closed the connection mid-body ({len(exc.partial)} bytes of the last read)",
        )
    if isinstance(exc, http.client.HTTPException):
        return RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE, f"{where} answered garbage: {type(exc).__name__}"
        )
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE, f"{where} timed out ({type(exc).__name__})"
        )
    if (
        isinstance(exc, httpx.RemoteProtocolError)
        and "without sending a response" in str(exc).lower()
    ):
        # Under TLS 1.3 the client certificate is checked after our handshake
        # completes: a server that refuses it just closes the connection before
        # answering. A live Registry never closes an mTLS request unanswered otherwise.
        return RegistryError(
            ReasonCode.AUTH_FAILED,
            f"{where} closed the connection before answering (client certificate refused?)",
        )
    if isinstance(exc, httpx.TransportError | OSError):
        return RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, f"{where} unreachable: {exc}")
    return RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, f"{where}: {type(exc).__name__}: {exc}")


def _describe(url: str) -> str:
    parts = urlsplit(url)
    return f"registry {parts.hostname}:{parts.port or 443}"


def status_error(status: int, body: bytes, url: str) -> RegistryHTTPError:
    """Turn a non-2xx answer into a RegistryHTTPError (code per docs/registry-api.md)."""
    registry_code, message = "", ""
    with suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
        doc = json.loads(body[:65536])
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            registry_code = str(err.get("code", ""))[:64]
            message = str(err.get("message", ""))[:500]
    if status in (401, 403):  # refused token, or a role that may not do this
        code = ReasonCode.AUTH_FAILED
    elif status == 404:
        code = ReasonCode.NOT_FOUND
    else:
        code = ReasonCode.REGISTRY_UNAVAILABLE
    text = f"{_describe(url)} answered {status} {registry_code or ''}".rstrip()
    if message:
        text += f": {message}"
    return RegistryHTTPError(code, text, status, registry_code)


class RateFloor:
    """TUF slow retrieval: a server that drip-feeds an answer never trips the per-read
    timeout, so the average rate since the first byte is checked after a grace period."""

    def __init__(self, min_rate: int, grace: float, url: str) -> None:
        self.min_rate = min_rate
        self.grace = grace
        self.url = url
        self.started = time.monotonic()
        self.received = 0

    def starved(self, in_flight: int = 0) -> bool:
        """Below the floor even if ``in_flight`` more bytes had already arrived."""
        elapsed = time.monotonic() - self.started
        return elapsed > self.grace and self.received + in_flight < self.min_rate * elapsed

    def error(self) -> RegistryError:
        elapsed = time.monotonic() - self.started
        return RegistryError(
            ReasonCode.REGISTRY_UNAVAILABLE,
            f"{_describe(self.url)} too slow: {self.received} bytes in {elapsed:.1f}s "
            f"(floor {self.min_rate} B/s after {self.grace:.0f}s): slow-retrieval attack?",
        )

    def update(self, n: int) -> None:
        self.received += n
        if self.starved():
            raise self.error()


# ------------------------------------------------------------------------ transport


class Transport:
    """One pooled, policy-enforcing HTTPS client for one Registry configuration."""

    def __init__(
        self,
        cfg: RegistryClientConfig,
        *,
        token_source: TokenSource | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.allowlist = Allowlist(list(cfg.allowlist))
        self._tokens = token_source
        self._ssl = ssl_context
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self.requests_sent = 0
        # Set once the Registry has answered any request: our certificate was accepted.
        self.certificate_accepted = False

    # -- plumbing
    @property
    def tokens(self) -> TokenSource:
        if self._tokens is None:
            self._tokens = token_source_for(self.cfg)
        return self._tokens

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = build_ssl_context(self.cfg.ca, self.cfg.client_cert, self.cfg.client_key)
        return self._ssl

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            if self._ssl is None:
                self._ssl = build_ssl_context(
                    self.cfg.ca, self.cfg.client_cert, self.cfg.client_key
                )
            self._client = httpx.Client(
                verify=self._ssl,
                trust_env=False,
                follow_redirects=False,
                http2=False,
                timeout=httpx.Timeout(
                    self.cfg.read_timeout,
                    connect=self.cfg.connect_timeout,
                    pool=self.cfg.read_timeout,
                ),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, path: str) -> str:
        return self.cfg.url.rstrip("/") + path

    def backoff(self, attempt: int) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
        self._sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto

    # -- requests
    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: Any = None,
        authenticate: bool = True,
        retry: bool | None = None,
    ) -> Iterator[httpx.Response]:
        """Send one request; yield the 2xx response with its body still unread.

        Redirects are followed by hand, only to allowlisted https URLs and only for
        GET/HEAD. Idempotent requests are retried with bounded, jittered backoff on
        connection failures, timeouts and 502/503/504 before any body is yielded.
        Non-2xx answers raise :class:`RegistryHTTPError`.
        """
        method = method.upper()
        may_retry = (method in IDEMPOTENT) if retry is None else retry
        attempts = 1 + (max(0, self.cfg.retries) if may_retry else 0)
        last: RegistryError | None = None
        for attempt in range(attempts):
            if attempt:
                self.backoff(attempt - 1)
            try:
                response = self._send_following(
                    method, self.url_for(path), headers, json_body, content, authenticate
                )
            except RegistryError as exc:
                if exc.code is ReasonCode.REGISTRY_UNAVAILABLE and may_retry:
                    last = exc
                    continue
                raise
            try:
                if response.status_code in RETRY_STATUSES and may_retry and attempt + 1 < attempts:
                    last = status_error(response.status_code, b"", str(response.url))
                    continue
                if not 200 <= response.status_code < 300:
                    body = self.read_capped(response, 65536, str(response.url), strict=False)
                    raise status_error(response.status_code, body, str(response.url))
                yield response
                return
            finally:
                response.close()
        assert last is not None
        raise last

    def _send_following(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json_body: Any,
        content: Any,
        authenticate: bool,
    ) -> httpx.Response:
        for _hop in range(MAX_REDIRECTS + 1):
            self.allowlist.check(url)
            hdrs = dict(headers or {})
            if authenticate:
                hdrs["Authorization"] = f"Bearer {self.tokens.token()}"
            client = self._http()
            try:
                request = client.build_request(
                    method, url, headers=hdrs, json=json_body, content=content
                )
                self.requests_sent += 1
                response = client.send(request, stream=True)
            except Exception as exc:
                raise translate(exc, url, certificate_accepted=self.certificate_accepted) from exc
            self.certificate_accepted = True
            if response.status_code not in REDIRECT_STATUSES:
                return response
            location = response.headers.get("location", "")
            response.close()
            if method not in IDEMPOTENT:
                raise RegistryError(
                    ReasonCode.REGISTRY_NOT_ALLOWED,
                    f"{_describe(url)} redirected a {method}: refused",
                )
            if not location:
                raise RegistryError(ReasonCode.REGISTRY_UNAVAILABLE, "redirect without Location")
            url = urljoin(url, location)
        raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, f"more than {MAX_REDIRECTS} redirects")

    def read_capped(
        self, response: httpx.Response, limit: int, url: str, strict: bool = True
    ) -> bytes:
        declared = parse_decimal(response.headers.get("content-length"))
        if strict and declared is not None and declared > limit:
            raise RegistryError(
                ReasonCode.REGISTRY_UNAVAILABLE, f"{_describe(url)} answer too large"
            )
        buf = bytearray()
        floor = RateFloor(self.cfg.min_download_rate, self.cfg.slow_grace, url)
        try:
            for chunk in response.iter_bytes():
                buf += chunk
                floor.update(len(chunk))
                if len(buf) > limit:
                    if strict:
                        raise RegistryError(
                            ReasonCode.REGISTRY_UNAVAILABLE, f"{_describe(url)} answer too large"
                        )
                    return bytes(buf[:limit])
        except RegistryError:
            raise
        except Exception as exc:  # an answer was already received: never AUTH_FAILED
            raise translate(exc, url, certificate_accepted=True) from exc
        return bytes(buf)

    @contextmanager
    def stream_blob(self, path: str, headers: Mapping[str, str]) -> Iterator[BlobResponse]:
        """GET a large body over a lean HTTP/1.1 connection (``http.client``).

        Same channel policy as :meth:`stream` (this context, allowlist on every hop,
        manual redirects, fresh token, error translation), but the body is read with
        ``readinto`` into one reused 1 MiB buffer: about half the CPU per byte of the
        h11 path, which is what a cold pull of a large model is bound by. No retry
        here: the cache resumes an interrupted body with ``Range``.
        """
        import http.client

        url = self.url_for(path)
        for _hop in range(MAX_REDIRECTS + 1):
            self.allowlist.check(url)
            parts = urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            hdrs = {**headers, "Authorization": f"Bearer {self.tokens.token()}"}
            conn = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port or 443,
                context=self.ssl_context(),
                timeout=self.cfg.connect_timeout,
            )
            try:
                conn.connect()  # TCP + TLS handshake
                assert conn.sock is not None
                conn.sock.settimeout(self.cfg.read_timeout)
            except Exception as exc:  # every library error is translated
                conn.close()
                raise translate(exc, url, after_handshake=False) from exc
            try:
                self.requests_sent += 1
                conn.request("GET", target, headers=hdrs)
                response = conn.getresponse()
            except Exception as exc:
                conn.close()
                raise translate(
                    exc,
                    url,
                    after_handshake=True,
                    certificate_accepted=self.certificate_accepted,
                ) from exc
            self.certificate_accepted = True
            try:
                if response.status in REDIRECT_STATUSES:
                    location = response.getheader("location") or ""
                    if not location:
                        raise RegistryError(
                            ReasonCode.REGISTRY_UNAVAILABLE, "redirect without Location"
                        )
                    url = urljoin(url, location)
                    continue
                if not 200 <= response.status < 300:
                    try:
                        body = response.read(65536)
                    except Exception:  # the status is what matters
                        body = b""
                    raise status_error(response.status, body, url)
                yield BlobResponse(response, url, conn.sock)
                return
            finally:
                conn.close()
        raise RegistryError(ReasonCode.REGISTRY_NOT_ALLOWED, f"more than {MAX_REDIRECTS} redirects")

    def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        authenticate: bool = True,
        limit: int = MAX_JSON_BYTES,
    ) -> Any:
        """A JSON request/answer; the answer is size-bounded and must parse."""
        with self.stream(
            method,
            path,
            headers={"Accept": "application/json"},
            json_body=json_body,
            authenticate=authenticate,
        ) as response:
            body = self.read_capped(response, limit, str(response.url))
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RegistryError(
                ReasonCode.REGISTRY_UNAVAILABLE, f"{_describe(self.cfg.url)} answered non-JSON"
            ) from exc


class BlobResponse:
    """A 2xx blob answer: status, headers, and the body as reused-buffer chunks."""

    BUFFER = 1024 * 1024

    def __init__(self, response: Any, url: str, sock: Any = None) -> None:
        self._response = response
        self._sock = sock
        self.url = url
        self.status_code: int = response.status

    def abort(self) -> None:
        """Cut the connection from another thread: a blocked ``readinto`` returns at once
        (the cache's slow-retrieval watchdog uses it against drip-feeding servers)."""
        import socket

        if self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    @property
    def headers(self) -> _Headers:
        return _Headers(self._response)

    def iter_raw(self, buffers: int = 1) -> Iterator[memoryview]:
        """Yield views into ``buffers`` reused buffers, in turn: a chunk stays valid until
        ``buffers - 1`` more chunks have been asked for (so another thread may still be
        hashing it while the next ones are read). Buffers are allocated as they are first
        needed, no larger than the announced body: a small evidence blob costs one small
        buffer, not ``buffers`` zero-filled MiB."""
        left = getattr(self._response, "length", None)
        size = self.BUFFER if not left else max(1, min(self.BUFFER, left))
        views: list[memoryview] = []
        readinto = self._response.readinto
        turn = 0
        while True:
            if turn == len(views):
                views.append(memoryview(bytearray(size)))
            view = views[turn]
            turn = (turn + 1) % max(1, buffers)
            n = readinto(view)
            if not n:
                left = getattr(self._response, "length", None)
                if left:  # http.client's readinto reports a cut-off body as a clean EOF
                    import http.client

                    raise http.client.IncompleteRead(b"", left)
                return
            yield view[:n]


class _Headers:
    def __init__(self, response: Any) -> None:
        self._response = response

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._response.getheader(name)
        return default if value is None else str(value)
