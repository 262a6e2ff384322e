"""Attested TLS, client side (issue 15, docs/attested-tls.md): check that an enclave's TLS key is
held by an attested enclave, then pin that key for ordinary HTTPS clients.

    from shield_nitro import Policy, TrustRoot, attested_tls
    ctx = attested_tls.connect("https://10.0.0.5:8443", Policy(pcrs={0: pcr0}))
    conn = http.client.HTTPSConnection("10.0.0.5", 8443, context=ctx)       # pinned
    urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))   # pinned
    session.mount("https://10.0.0.5:8443", attested_tls.RequestsAdapter(ctx))  # requests, if installed

The procedure (the contract every side implements): TLS without CA verification; the first
request on that very connection is ``GET /.well-known/shield-nitro/attestation?nonce=HEX`` with a
fresh random nonce; the answer's body is the raw document, which must verify (chain to the one
root, ES384, the caller's policy plus that nonce) and carry ``user_data = b"sn-tls/1" ||
SHA-256(SPKI DER of the certificate this connection saw) || the app's own user_data``.

Python's ``ssl`` cannot pin a key during the handshake, so :class:`PinnedSSLContext` checks the
peer's SPKI right after it, before a single byte of the request is sent, and closes the socket
on a mismatch. When the key changed (rotation), it attests the endpoint again and accepts the
connection only if the new document names the key just presented. Refusals raise the SDK's
errors: VerificationError (binding, pin, document), FormatError (malformed answer), RemoteError
(a non-200 answer), IoError (network), UsageError (bad arguments).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .attestation import Claims, Policy, verify
from .errors import ShieldNitroError
from .roots import TrustRoot

PATH = "/.well-known/shield-nitro/attestation"
TAG = b"sn-tls/1"
BINDING_SIZE = len(TAG) + 32
MAX_APP_USER_DATA = 472
MAX_RESPONSE = 32 * 1024  # headers + a document of at most 16384 + 1024 bytes


@dataclass(frozen=True)
class AttestedKey:
    """A verified attested-TLS endpoint: the key to pin and the document that vouches for it."""
    host: str
    port: int
    spki_sha256: bytes        # SHA-256 of the certificate's SubjectPublicKeyInfo DER
    certificate: bytes        # the DER certificate the attested connection saw
    app_user_data: bytes      # user_data after the 40-byte binding
    document: bytes           # the verified document, as received
    claims: Claims

    @property
    def spki_sha256_hex(self) -> str:
        return self.spki_sha256.hex()

    @property
    def spki_sha256_base64(self) -> str:
        return base64.b64encode(self.spki_sha256).decode()

    @property
    def curl_pin(self) -> str:
        """For ``curl --pinnedpubkey``."""
        return "sha256//" + self.spki_sha256_base64


# -- the pieces (untrusted input: each refuses with a ShieldNitroError, never another exception) --

def parse_target(url: str) -> Tuple[str, int]:
    """(host, port) of ``https://HOST:PORT[/...]`` or ``HOST:PORT`` (IPv6 in brackets); the port is
    required. UsageError otherwise."""
    if not isinstance(url, str) or not url:
        raise ShieldNitroError("usage", f"attested TLS: a URL https://HOST:PORT is required, got {url!r}")
    text = url if "://" in url else "https://" + url
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise ShieldNitroError("usage", f"attested TLS: bad URL {url!r} ({e})") from None
    if parts.scheme.lower() != "https":
        raise ShieldNitroError("usage", f"attested TLS needs an https:// URL or HOST:PORT, got {url!r}")
    if parts.username is not None or not parts.hostname:
        raise ShieldNitroError("usage", f"attested TLS: {url!r} needs a host and no user name")
    if not port:
        raise ShieldNitroError("usage", f"attested TLS: {url!r} has no port (an attested-TLS ingress has no default)")
    return parts.hostname, port


def spki_sha256(certificate_der: bytes) -> bytes:
    """SHA-256 of the SubjectPublicKeyInfo DER of a DER certificate (FormatError if it is not one)."""
    try:
        cert = x509.load_der_x509_certificate(bytes(certificate_der))
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError) as e:
        raise ShieldNitroError("format", f"attested TLS: the peer's certificate is not usable ({e})") from None
    return hashlib.sha256(spki).digest()


def parse_response(raw: bytes) -> bytes:
    """The body of the answer to the attestation request. RemoteError for a non-200 status;
    FormatError for anything malformed (no status line, bad Content-Length, chunked, short body,
    more than MAX_RESPONSE bytes, empty)."""
    raw = bytes(raw)
    if len(raw) > MAX_RESPONSE:
        raise ShieldNitroError("format", f"attested TLS: answer larger than {MAX_RESPONSE} bytes")
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ShieldNitroError("format", "attested TLS: answer has no complete HTTP header")
    lines = head.split(b"\r\n")
    status = lines[0]
    if (len(status) < 12 or status[:9] not in (b"HTTP/1.1 ", b"HTTP/1.0 ") or not status[9:12].isdigit()
            or (len(status) > 12 and status[12:13] != b" ")):
        raise ShieldNitroError("format", "attested TLS: answer is not an HTTP/1.x status line")
    if status[9:12] != b"200":
        shown = status[:80].decode("ascii", "replace")
        shown = "".join(c if " " <= c <= "~" else "?" for c in shown)
        raise ShieldNitroError("remote", f"attested TLS: the attestation endpoint answered {shown!r}")
    length: Optional[int] = None
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name:
            raise ShieldNitroError("format", "attested TLS: malformed header line in the answer")
        name, value = name.strip().lower(), value.strip(b" \t")
        if name == b"transfer-encoding":
            raise ShieldNitroError("format", "attested TLS: Transfer-Encoding is not accepted")
        if name == b"content-length":
            if not value.isdigit() or len(value) > 6:
                raise ShieldNitroError("format", "attested TLS: bad Content-Length")
            if length is not None and length != int(value):
                raise ShieldNitroError("format", "attested TLS: conflicting Content-Length headers")
            length = int(value)
    if length is not None and len(body) != length:
        raise ShieldNitroError("format", f"attested TLS: body of {len(body)} bytes, Content-Length {length}")
    if not body:
        raise ShieldNitroError("format", "attested TLS: empty body")
    return body


def check_binding(user_data: Optional[bytes], key_sha256: bytes) -> bytes:
    """Checks user_data = "sn-tls/1" || key_sha256 || app bytes; returns the app bytes.
    VerificationError when it is absent, the wrong size, untagged, or names another key."""
    if user_data is None:
        raise ShieldNitroError("verify", "attested TLS: the document has no user_data, not the sn-tls/1 key binding")
    if not BINDING_SIZE <= len(user_data) <= BINDING_SIZE + MAX_APP_USER_DATA:
        raise ShieldNitroError("verify", f"attested TLS: user_data of {len(user_data)} bytes is not an sn-tls/1 key binding")
    if user_data[:len(TAG)] != TAG:
        raise ShieldNitroError("verify", 'attested TLS: user_data does not start with "sn-tls/1"')
    bound = user_data[len(TAG):BINDING_SIZE]
    if len(key_sha256) != 32 or not hmac.compare_digest(bound, bytes(key_sha256)):
        raise ShieldNitroError("verify", f"attested TLS: the document binds key {bound.hex()}, not the key of this "
                                         f"TLS connection {bytes(key_sha256).hex()} (a relay with its own certificate?)")
    return bytes(user_data[BINDING_SIZE:])


def _unverified_context() -> ssl.SSLContext:
    # No CA and no name: the certificate means nothing until the document vouches for its key.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _io(what: str, e: Exception) -> ShieldNitroError:
    code = "timeout" if isinstance(e, socket.timeout) else "io"
    return ShieldNitroError(code, f"attested TLS: {what}: {e}")


def attest(url: str, policy: Policy, root: Optional[TrustRoot] = None, *, timeout: float = 10.0,
           nonce_size: int = 32) -> AttestedKey:
    """Runs the client procedure once against ``url`` and returns the verified key.

    ``policy`` is the caller's (PCRs, max age...); the nonce is added here (fresh, random).
    ``root`` defaults to the AWS Nitro root; pass the simulator's to accept simulator documents."""
    if not isinstance(policy, Policy):
        raise ShieldNitroError("usage", f"attested TLS: policy must be a Policy, got {type(policy).__name__}")
    if not isinstance(nonce_size, int) or not 1 <= nonce_size <= 512:
        raise ShieldNitroError("usage", "attested TLS: the nonce is 1..512 bytes")
    host, port = parse_target(url)
    nonce = os.urandom(nonce_size)
    request = (f"GET {PATH}?nonce={nonce.hex()} HTTP/1.1\r\nHost: {_authority(host, port)}\r\n"
               f"Accept: application/cbor\r\nConnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with _unverified_context().wrap_socket(raw, server_hostname=_sni(host)) as tls:
                certificate = tls.getpeercert(binary_form=True)
                if not certificate:
                    raise ShieldNitroError("verify", f"attested TLS: {_authority(host, port)} sent no certificate")
                tls.sendall(request)
                answer = _read_to_end(tls, MAX_RESPONSE + 1)
    except ShieldNitroError:
        raise
    except (OSError, ssl.SSLError) as e:
        raise _io(f"{_authority(host, port)}", e) from None
    key = spki_sha256(certificate)
    document = parse_response(answer)
    claims = verify(document, policy.with_nonce(nonce), root=root)
    app = check_binding(claims.user_data, key)
    return AttestedKey(host=host, port=port, spki_sha256=key, certificate=certificate, app_user_data=app,
                       document=document, claims=claims)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sni(host: str) -> Optional[str]:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return None
    except OSError:
        return host


def _read_to_end(tls: ssl.SSLSocket, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        try:
            chunk = tls.recv(16384)
        except ssl.SSLEOFError:  # closed without close_notify: the length checks decide
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


# -- pinning --

class PinnedSSLContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` whose client connections are accepted only when the server's key is
    the attested one. Use it with ``http.client``, ``urllib`` or :class:`RequestsAdapter`.

    After each handshake the peer's SPKI SHA-256 is compared with the pin; on a mismatch the
    endpoint is attested again (the key may have rotated) and the connection is kept only if the
    fresh document names the key the server presented; otherwise the socket is closed and
    VerificationError raised. ``wrap_bio`` (asyncio) is refused: it could not be checked here.
    Thread-safe."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "PinnedSSLContext":
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, attested: AttestedKey, reattest: Callable[[], AttestedKey]) -> None:
        self.check_hostname = False
        self.verify_mode = ssl.CERT_NONE
        self.minimum_version = ssl.TLSVersion.TLSv1_2
        self._lock = threading.Lock()
        self._attested = attested
        self._reattest = reattest
        self.verifications = 1

    @property
    def attested(self) -> AttestedKey:
        """The verification currently pinned."""
        with self._lock:
            return self._attested

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        if kwargs.get("server_side") or (args and args[0]):
            raise ShieldNitroError("usage", "attested TLS: a pinned context is for clients only")
        if kwargs.get("do_handshake_on_connect") is False or (len(args) > 1 and args[1] is False):
            raise ShieldNitroError("usage", "attested TLS: a pinned context needs do_handshake_on_connect")
        if self.verify_mode != ssl.CERT_NONE or self.check_hostname:
            # Someone turned CA checks on (e.g. an HTTP library): the enclave's self-signed
            # certificate would fail them; the pin is what verifies it.
            self.check_hostname = False
            self.verify_mode = ssl.CERT_NONE
        tls = super().wrap_socket(sock, *args, **kwargs)
        try:
            self._check(tls)
        except BaseException:
            tls.close()
            raise
        return tls

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        raise ShieldNitroError("usage", "attested TLS: a pinned context does not wrap BIOs (asyncio); use sockets")

    def _check(self, tls: ssl.SSLSocket) -> None:
        certificate = tls.getpeercert(binary_form=True)
        presented = spki_sha256(certificate) if certificate else b""
        with self._lock:
            if hmac.compare_digest(presented, self._attested.spki_sha256):
                return
            fresh = self._reattest()
            self.verifications += 1
            if not hmac.compare_digest(presented, fresh.spki_sha256):
                raise ShieldNitroError("verify", f"attested TLS: {_authority(fresh.host, fresh.port)} presented key "
                                                 f"{presented.hex() or '(none)'}, not the attested key "
                                                 f"{fresh.spki_sha256.hex()}")
            self._attested = fresh


def connect(url: str, policy: Policy, root: Optional[TrustRoot] = None, *, timeout: float = 10.0) -> PinnedSSLContext:
    """Attests ``url`` (see :func:`attest`) and returns a context pinned to its verified key,
    re-verifying with the same policy and root whenever the server's key changes."""
    attested = attest(url, policy, root, timeout=timeout)
    return PinnedSSLContext(attested, lambda: attest(url, policy, root, timeout=timeout))


# -- requests --

try:  # requests is optional
    import requests.adapters as _requests_adapters
    from urllib3.connection import HTTPSConnection as _U3Connection
    from urllib3.connectionpool import HTTPSConnectionPool as _U3Pool
except ImportError:  # pragma: no cover - exercised only without requests
    _requests_adapters = None  # type: ignore[assignment]

if _requests_adapters is not None:
    class _PinnedConnection(_U3Connection):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            # The pinned context verified the peer: urllib3 need not warn about an unverified request.
            self.is_verified = True

    class _PinnedPool(_U3Pool):  # type: ignore[misc, valid-type]
        ConnectionCls = _PinnedConnection

    class RequestsAdapter(_requests_adapters.HTTPAdapter):  # type: ignore[misc, name-defined]
        """A ``requests`` transport adapter that connects only through a :class:`PinnedSSLContext`:

            session.mount("https://10.0.0.5:8443", RequestsAdapter(connect(url, policy, root)))
        """

        def __init__(self, context: PinnedSSLContext, **kwargs: Any) -> None:
            if not isinstance(context, PinnedSSLContext):
                raise ShieldNitroError("usage", "attested TLS: RequestsAdapter needs a PinnedSSLContext from connect()")
            self._context = context
            super().__init__(**kwargs)

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = self._context
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = dict(self.poolmanager.pool_classes_by_scheme, https=_PinnedPool)

        def cert_verify(self, conn: Any, url: str, verify: Union[bool, str], cert: Any) -> None:
            # CA and name checks are replaced by the pin (the certificate is self-signed).
            super().cert_verify(conn, url, False, cert)
            conn.cert_reqs = "CERT_NONE"
            conn.ca_certs = None
            conn.ca_cert_dir = None
            conn.assert_hostname = False
else:  # pragma: no cover
    RequestsAdapter = None  # type: ignore[assignment, misc]

__all__ = ["AttestedKey", "PinnedSSLContext", "RequestsAdapter", "attest", "check_binding", "connect",
           "parse_response", "parse_target", "spki_sha256"]
