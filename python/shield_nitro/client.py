"""EnclaveClient: the parent's handle on one enclave service (docs/enclave-api.md).

    client = EnclaveClient.connect("vsock://16:5000", credentials=default_provider())
    chan = client.open_channel(Policy(pcrs={0: pcr0}))      # attest -> verify -> channel-open
    client.push_credentials()
    key = client.load_key(blob, key_id="arn:aws:kms:...", encryption_context={"app": "demo"})
    model = client.load_artifact(key.handle, "model.snst", kind="model", name="model")
    code = client.load_artifact(key.handle, "plugin.snst", kind="code", name="plugin",
                                models=[model.handle])
    output = client.invoke(code.handle, b"input")           # sealed: the parent sees ciphertext only

Plain operations go over the framed connection; ``invoke`` and ``decrypt`` (which return
plaintext) go only through the attested channel, and a channel opens only to an enclave the
policy names (PCR0 or PCR8 pinned; ``Policy.accept_any_enclave()`` for experiments). When any
response carries ``"refresh_credentials": true`` the client pushes fresh credentials from its
provider. Handles may be given as the strings or as the KeyHandle / ArtifactInfo results.
"""
from __future__ import annotations

import dataclasses
import hmac
import io
import os
import stat
import threading
from typing import Any, BinaryIO, Dict, Iterable, Mapping, Optional, Tuple, Union

import cbor2

from . import attestation
from .attestation import Claims, Policy
from .channel import MAX_PAD_BUCKET, VERSION as CHANNEL_VERSION, ClientHandshake, SealedBox
from .credentials import Credentials, CredentialsProvider, static_provider
from .errors import CODES, ShieldNitroError, io_error, prefixed
from .results import ArtifactInfo, Description, KeyHandle, Stats
from .roots import TrustRoot
from .transport import Connection, Endpoint, Upload, encode_request_body

DEFAULT_CHUNK = 1 << 20
KINDS = ("model", "code")
NONCE_MIN, NONCE_MAX = 1, 512   # what the NSM accepts; 32 random bytes by default
DEFAULT_NONCE_SIZE = 32

Handle = Union[str, KeyHandle, ArtifactInfo]
Source = Union[str, "os.PathLike[str]", BinaryIO]
Timestamp = Union[None, float, "attestation._dt.datetime"]


class Channel:
    """An open attested session: every request and response body is sealed end to end."""

    def __init__(self, client: "EnclaveClient", box: SealedBox, claims: Claims, document: bytes) -> None:
        self._client = client
        self._box = box
        self.claims = claims
        self.document = document
        self._send_lock = threading.Lock()  # the enclave accepts requests in seq order: seal+send atomically

    @property
    def session_id(self) -> bytes:
        """The 16-byte session id (public: it names the session on the wire)."""
        return self._box.session_id

    def call(self, op: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Runs ``op`` inside the channel and returns its body (ShieldNitroError on failure)."""
        inner = encode_request_body(op, body)
        conn = self._client.connection
        with self._send_lock:
            record, seq = self._box.seal_request(inner)
            pending = conn.request_async("sealed", {"session": self._box.session_id, "data": record})
        outer = conn._wait(pending, "sealed", timeout).value("sealed")
        sealed = outer.get("data")
        if not isinstance(sealed, bytes):
            raise ShieldNitroError("format", f"{op}: the sealed response lacks data")
        result = _decode_sealed_result(self._box.open_reply(sealed, seq), op)
        self._client._maybe_refresh(result)
        return result


def _decode_sealed_result(payload: bytes, op: str) -> Dict[str, Any]:
    try:
        msg = cbor2.loads(payload)
    except Exception as e:  # authenticated but malformed: a bug on the other side
        raise ShieldNitroError("format", f"{op}: sealed response is not CBOR ({type(e).__name__})") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("ok"), bool):
        raise ShieldNitroError("format", f"{op}: sealed response must be a map with ok")
    if msg["ok"]:
        body = msg.get("body", {})
        if not isinstance(body, dict):
            raise ShieldNitroError("format", f"{op}: sealed response body must be a map")
        return body
    err = msg.get("error")
    if not isinstance(err, dict):
        raise ShieldNitroError("format", f"{op}: sealed error lacks its error map")
    code = err.get("code") if err.get("code") in CODES else "remote"
    raise ShieldNitroError(code, prefixed(op, str(err.get("message", ""))))


def _bytes_arg(value: Any, op: str, name: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ShieldNitroError("usage", f"{op}: {name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _handle(value: Handle, op: str) -> str:
    if isinstance(value, (KeyHandle, ArtifactInfo)):
        return value.handle
    if not isinstance(value, str) or not value:
        raise ShieldNitroError("usage", f"{op}: a handle must be a non-empty string, KeyHandle or ArtifactInfo")
    return value


def _nonce(nonce: Optional[bytes], op: str) -> bytes:
    if nonce is None:
        return os.urandom(DEFAULT_NONCE_SIZE)
    nonce = _bytes_arg(nonce, op, "the nonce")
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise ShieldNitroError("usage", f"{op}: the nonce must be {NONCE_MIN}..{NONCE_MAX} bytes, got {len(nonce)}")
    return nonce


def _channel_policy(policy: Optional[Policy], nonce: bytes) -> Policy:
    """The caller's policy with the handshake nonce, refused unless it names the enclave."""
    if policy is None:
        policy = Policy()
    if not isinstance(policy, Policy):
        raise ShieldNitroError("usage", f"open_channel: policy must be a Policy, got {type(policy).__name__}")
    if not policy.pinned and not policy.any_enclave:
        raise ShieldNitroError("usage", "open_channel: the policy pins neither PCR0 nor PCR8, so any enclave would "
                                        "get the plaintext: pin one (Policy(pcrs={0: pcr0})) or, for experiments "
                                        "only, use Policy.accept_any_enclave()")
    return policy.with_nonce(nonce)


class EnclaveClient:
    """The parent's handle on one enclave service (see the module docstring). Thread-safe."""

    def __init__(self, connection: Connection, *,
                 credentials: Union[None, Credentials, CredentialsProvider] = None,
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size <= 0:
            raise ShieldNitroError("usage", f"chunk_size must be a positive number of bytes, got {chunk_size!r}")
        self.connection = connection
        self.chunk_size = chunk_size
        self.channel: Optional[Channel] = None
        self._provider: Optional[CredentialsProvider] = None
        self._refreshing = threading.Lock()
        if credentials is not None:
            self.set_credentials_source(credentials)

    @classmethod
    def connect(cls, endpoint: Union[str, Endpoint], *,
                credentials: Union[None, Credentials, CredentialsProvider] = None,
                chunk_size: int = DEFAULT_CHUNK, connect_timeout: float = 5.0, call_timeout: float = 60.0,
                **options: Any) -> "EnclaveClient":
        """Connects to ``vsock://CID:PORT``, ``unix:PATH`` or ``tcp://HOST:PORT``."""
        conn = Connection.open(endpoint, connect_timeout=connect_timeout, call_timeout=call_timeout, **options)
        return cls(conn, credentials=credentials, chunk_size=chunk_size)

    def set_credentials_source(self, credentials: Union[Credentials, CredentialsProvider]) -> None:
        """A Credentials value or a CredentialsProvider used for pushes and refreshes."""
        provider = static_provider(credentials) if isinstance(credentials, Credentials) else credentials
        if not isinstance(provider, CredentialsProvider):
            raise ShieldNitroError("usage", "credentials must be Credentials or a CredentialsProvider")
        self._provider = provider

    def close(self) -> None:
        """Closes the connection; the enclave keeps its keys and artifacts."""
        self.connection.close()

    def __enter__(self) -> "EnclaveClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _call_plain(self, op: str, body: Optional[Dict[str, Any]] = None,
                    timeout: Optional[float] = None) -> Dict[str, Any]:
        result = self.connection.call(op, body if body is not None else {}, timeout)
        if op != "sealed":
            self._maybe_refresh(result)
        return result

    def _call(self, op: str, body: Optional[Dict[str, Any]] = None,
              timeout: Optional[float] = None) -> Dict[str, Any]:
        """Through the channel when one is open, else plain."""
        if self.channel is not None:
            return self.channel.call(op, body, timeout)
        return self._call_plain(op, body, timeout)

    def _maybe_refresh(self, body: Mapping[str, Any]) -> None:
        if body.get("refresh_credentials") is True and self._provider is not None:
            if self._refreshing.acquire(blocking=False):  # one push at a time is enough
                try:
                    self._push(self._provider.get(force=True))
                finally:
                    self._refreshing.release()

    def _push(self, creds: Credentials) -> Optional[int]:
        # Sealed once a channel is open (as the C++ SDK does): the network layers on both sides
        # then carry only ciphertext, and the enclave takes the secret straight into wiped memory.
        if self.channel is not None:
            return self.channel.call("set-credentials", creds.to_body()).get("expires_at")
        return self.connection.call("set-credentials", creds.to_body()).get("expires_at")

    # -- operations ------------------------------------------------------------------------
    def describe(self) -> Description:
        """Version, module id, PCRs, loaded key and artifact handles, credential state."""
        return Description.from_body(self._call_plain("describe"))

    def stats(self) -> Stats:
        """The service's request, error and latency counters."""
        return Stats.from_body(self._call_plain("stats"))

    def attest(self, nonce: Optional[bytes] = None, user_data: Optional[bytes] = None) -> bytes:
        """The raw attestation document (bytes) for ``nonce`` (1..512 bytes; default 32 random)."""
        body: Dict[str, Any] = {"nonce": _nonce(nonce, "attest")}
        if user_data is not None:
            body["user_data"] = _bytes_arg(user_data, "attest", "user_data")
        document = self._call_plain("attest", body).get("document")
        if not isinstance(document, bytes):
            raise ShieldNitroError("format", "attest: response lacks the document")
        return document

    def attest_and_verify(self, policy: Optional[Policy] = None, *, root: Optional[TrustRoot] = None,
                          user_data: Optional[bytes] = None, at_time: Timestamp = None,
                          nonce: Optional[bytes] = None) -> Tuple[bytes, Claims]:
        """(document, claims): attests with ``nonce`` (default: 32 fresh random bytes) and
        verifies the document with ``policy``, which must then carry that nonce."""
        nonce = _nonce(nonce, "attest")
        policy = policy if policy is not None else Policy()
        if not isinstance(policy, Policy):
            raise ShieldNitroError("usage", f"attest_and_verify: policy must be a Policy, got {type(policy).__name__}")
        document = self.attest(nonce, user_data)
        return document, attestation.verify(document, policy.with_nonce(nonce), root=root, at_time=at_time)

    def open_channel(self, policy: Optional[Policy] = None, *, root: Optional[TrustRoot] = None,
                     at_time: Timestamp = None, pad: int = 0) -> Channel:
        """attest -> verify (nonce, PCR policy, trust root) -> X25519 -> channel-open.

        The policy must pin PCR0 or PCR8 (UsageError otherwise): the channel carries plaintext
        to whichever enclave passes it. Afterwards invoke/decrypt (and every other op sent
        with ``channel.call``) are sealed. ``pad`` > 0 asks that every record's plaintext be
        padded to a multiple of it (hides sizes from the parent; at most 65536).
        """
        if not isinstance(pad, int) or not 0 <= pad <= MAX_PAD_BUCKET:
            raise ShieldNitroError("usage", f"open_channel: pad must be 0..{MAX_PAD_BUCKET}, got {pad!r}")
        hs = ClientHandshake()
        policy = _channel_policy(policy, hs.nonce)
        document = self.attest(hs.nonce)
        claims = attestation.verify(document, _require_key(policy), root=root, at_time=at_time)
        keys, client_public = hs.finish(document, claims.public_key, pad=pad)
        # The keys bind version 2 and pad, so a relay that changes either gets another session.
        session = self._call_plain("channel-open", {"nonce": hs.nonce, "client_public": client_public,
                                                    "versions": [CHANNEL_VERSION], "pad": pad}).get("session")
        if not isinstance(session, bytes) or not hmac.compare_digest(session, keys.session_id):
            raise ShieldNitroError("verify", "channel-open: the enclave derived a different session")
        self.channel = Channel(self, SealedBox(keys), claims, document)
        return self.channel

    def push_credentials(self, creds: Optional[Credentials] = None) -> Optional[int]:
        """Sends AWS credentials (given, or from the provider); returns the enclave's expires_at."""
        if creds is None:
            if self._provider is None:
                raise ShieldNitroError("usage", "push_credentials: no credentials given and no provider set")
            creds = self._provider.get()
        elif not isinstance(creds, Credentials):
            raise ShieldNitroError("usage", f"push_credentials: expected Credentials, got {type(creds).__name__}")
        elif self._provider is None:
            self.set_credentials_source(creds)
        return self._push(creds)

    def load_key(self, ciphertext_blob: bytes, key_id: Optional[str] = None,
                 encryption_context: Optional[Mapping[str, str]] = None) -> KeyHandle:
        """KMS Decrypt (with Recipient) inside the enclave; the released key's handle."""
        body: Dict[str, Any] = {"ciphertext_blob": _bytes_arg(ciphertext_blob, "load_key", "ciphertext_blob")}
        if key_id is not None:
            if not isinstance(key_id, str):
                raise ShieldNitroError("usage", "load_key: key_id must be a string")
            body["key_id"] = key_id
        if encryption_context:
            if not isinstance(encryption_context, Mapping):
                raise ShieldNitroError("usage", "load_key: encryption_context must be a mapping of strings")
            body["encryption_context"] = {str(k): str(v) for k, v in encryption_context.items()}
        try:
            return KeyHandle.from_body(self._call_plain("load-key", body))
        except ShieldNitroError as e:
            if e.code != "environment" or self._provider is None:
                raise
        self._push(self._provider.get(force=True))   # credentials missing or expired: push, retry once
        return KeyHandle.from_body(self._call_plain("load-key", body))

    def load_artifact(self, key_handle: Optional[Handle], source: Source, kind: str = "model", name: Optional[str] = None,
                      models: Iterable[Handle] = ()) -> ArtifactInfo:
        """Streams an artifact (path or binary file object) in parts: a Shield container / v4 message
        under ``key_handle``, or, with ``key_handle=None``, a sealed file, whose KMS key the enclave
        releases from the file's own header with the credentials it was pushed."""
        key = None if key_handle is None else _handle(key_handle, "load_artifact")
        if kind not in KINDS:
            raise ShieldNitroError("usage", f"load_artifact: kind must be one of {KINDS}")
        model_handles = [_handle(m, "load_artifact") for m in models]
        if isinstance(source, (str, os.PathLike)):
            try:
                f = open(source, "rb")
            except OSError as e:
                raise io_error(source, e) from None
            with f:
                return self.load_artifact(key, f, kind, name or os.path.basename(os.fspath(source)), model_handles)
        if not hasattr(source, "read"):
            raise ShieldNitroError("usage", f"load_artifact: source must be a path or a binary file object, "
                                            f"got {type(source).__name__}")
        header: Dict[str, Any] = {"kind": kind, "name": name or "artifact"}
        if key is not None:
            header["key"] = key
        if model_handles:
            header["models"] = model_handles
        size = _remaining_size(source)
        if size is not None:
            header["size"] = size   # the enclave then allocates the plaintext once
        upload = self.connection.stream("load-artifact", header)
        if size is not None and upload.can_send_file:
            _upload_file(upload, source, size, self.chunk_size)
        else:
            _upload_reads(upload, source, self.chunk_size)
        result = upload.finish()
        self._maybe_refresh(result)
        return ArtifactInfo.from_body(result)

    def encrypt(self, key_handle: Handle, plaintext: bytes) -> bytes:
        """Shield v4 ciphertext under a loaded key (the parent may see the plaintext it sends)."""
        out = self._call("encrypt", {"key": _handle(key_handle, "encrypt"),
                                     "plaintext": _bytes_arg(plaintext, "encrypt", "plaintext")})
        return _result_bytes(out, "encrypt", "ciphertext")

    def decrypt(self, key_handle: Handle, ciphertext: bytes) -> bytes:
        """Plaintext of Shield v4 ciphertext under a loaded key; only inside the channel."""
        body = {"key": _handle(key_handle, "decrypt"), "ciphertext": _bytes_arg(ciphertext, "decrypt", "ciphertext")}
        return _result_bytes(self._require_channel("decrypt").call("decrypt", body), "decrypt", "plaintext")

    def invoke(self, artifact: Handle, input_bytes: bytes) -> bytes:
        """Runs a loaded code artifact on ``input_bytes``; only inside the channel."""
        body = {"artifact": _handle(artifact, "invoke"), "input": _bytes_arg(input_bytes, "invoke", "input")}
        return _result_bytes(self._require_channel("invoke").call("invoke", body), "invoke", "output")

    def unload(self, handle: Handle) -> None:
        """Wipes a loaded key or artifact inside the enclave."""
        self._call("unload", {"handle": _handle(handle, "unload")})

    def _require_channel(self, op: str) -> Channel:
        if self.channel is None:
            raise ShieldNitroError("usage", f"{op} returns plaintext: open_channel() first")
        return self.channel


def _require_key(policy: Policy) -> Policy:
    return dataclasses.replace(policy, require_public_key=True)


def _result_bytes(body: Mapping[str, Any], op: str, name: str) -> bytes:
    value = body.get(name)
    if not isinstance(value, bytes):
        raise ShieldNitroError("format", f"{op}: response lacks {name}")
    return value


# A stream container (docs/stream-format.md) is sent one record per part, as the C++ SDK does, so
# the enclave decrypts each part where it lies; anything else in chunk_size parts.
# A sealed file (docs/stream-format.md §8) is its header ("SNSL", version, u32 size), then a stream.
_STREAM_MAGIC = b"SNST"
_SEALED_MAGIC = b"SNSL"
_MAX_SEALED_HEADER = 16384
_LONGEST_HEAD = _MAX_SEALED_HEADER + 66
_MAX_ALIGNED_PART = (16 << 20) + 16


def _cut(head: bytes, chunk_size: int) -> Tuple[int, int]:
    """(first part, later parts) in bytes for an artifact starting with ``head``."""
    skip = 0
    if len(head) >= 9 and head[:4] == _SEALED_MAGIC:
        skip = int.from_bytes(head[5:9], "big")
        if not 9 <= skip <= min(_MAX_SEALED_HEADER, len(head)):
            return chunk_size, chunk_size
    stream = head[skip:]
    if len(stream) >= 11 and stream[:4] == _STREAM_MAGIC and stream[6] in (0x03, 0x13):
        record = int.from_bytes(stream[7:11], "big") + 16
        if record <= _MAX_ALIGNED_PART:
            return min(skip + (50 if stream[6] == 0x13 else 66), len(head)), record
    return chunk_size, chunk_size


def _read(source: Any, n: int) -> bytes:
    """Up to n bytes (fewer only at the end)."""
    out = bytearray()
    while len(out) < n:
        try:
            chunk = source.read(n - len(out))
        except OSError as e:
            raise io_error(getattr(source, "name", "load_artifact source"), e) from None
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise ShieldNitroError("usage", "load_artifact: the source must be opened in binary mode")
        if not out and len(chunk) == n:
            return bytes(chunk)
        out += chunk
    return bytes(out)


def _upload_reads(upload: Upload, source: Any, chunk_size: int) -> None:
    head = _read(source, _LONGEST_HEAD)
    first, part = _cut(head, chunk_size)
    pending, want = head, first
    while not upload.answered_early:
        data = pending[:want] + (_read(source, want - len(pending)) if len(pending) < want else b"")
        pending = pending[want:]
        if not data:
            break
        upload.send({"data": data})
        want = part


def _upload_file(upload: Upload, source: Any, size: int, chunk_size: int) -> None:
    """A regular file: its bytes go from the page cache to the socket (sendfile), never through
    this process; the file object is left after what was sent."""
    fd, start = source.fileno(), source.tell()
    try:
        head = os.pread(fd, min(size, _LONGEST_HEAD), start)
    except OSError as e:
        raise io_error(getattr(source, "name", "load_artifact source"), e) from None
    first, part = _cut(head, chunk_size)
    off, want = 0, first
    while off < size and not upload.answered_early:
        n = min(want, size - off)
        upload.send_file_bytes("data", fd, start + off, n)
        off += n
        want = part
    source.seek(start + off)


def _remaining_size(source: Any) -> Optional[int]:
    """Bytes left in a regular file object (its sealed size for load-artifact), else None."""
    try:
        st = os.fstat(source.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - source.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
