"""EnclaveClient: the parent's handle on one enclave service (docs/enclave-api.md).

    client = EnclaveClient.connect("vsock://16:5000", credentials=default_provider())
    chan = client.open_channel(Policy(pcrs={0: pcr0}))      # attest -> verify -> channel-open
    client.push_credentials()
    key = client.load_key(blob, key_id="arn:aws:kms:...", encryption_context={"app": "demo"})
    model = client.load_artifact(key["handle"], "model.snst", kind="model", name="model")
    code = client.load_artifact(key["handle"], "plugin.snst", kind="code", name="plugin",
                                models=[model["handle"]])
    output = client.invoke(code["handle"], b"input")        # sealed: the parent sees ciphertext only

Plain operations go over the framed connection; ``invoke`` and ``decrypt`` (which return
plaintext) go only through the attested channel. When any response carries
``"refresh_credentials": true`` the client pushes fresh credentials from its provider.
"""

import dataclasses
import hmac
import io
import os
import stat
import threading

import cbor2

from . import attestation
from .channel import ClientHandshake, SealedBox
from .credentials import Credentials, CredentialsProvider, static_provider
from .errors import CODES, ShieldNitroError
from .transport import Connection

DEFAULT_CHUNK = 1 << 20
KINDS = ("model", "code")


class Channel:
    """An open attested session: every request and response body is sealed end to end."""

    def __init__(self, client, box, claims, document):
        self._client = client
        self._box = box
        self.claims = claims
        self.document = document

    @property
    def session_id(self):
        return self._box.session_id

    def call(self, op, body=None, timeout=None):
        """Runs ``op`` inside the channel and returns its body (ShieldNitroError on failure)."""
        inner = cbor2.dumps({"op": op, "body": body if body is not None else {}})
        outer = self._client._call_plain("sealed", {"session": self._box.session_id, "data": self._box.seal(inner)},
                                         timeout)
        sealed = outer.get("data")
        if not isinstance(sealed, bytes):
            raise ShieldNitroError("format", "sealed: response lacks data")
        result = _decode_sealed_result(self._box.open(sealed), op)
        self._client._maybe_refresh(result)
        return result


def _decode_sealed_result(payload, op):
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
    raise ShieldNitroError(code, f"{op}: {err.get('message', '')}")


class EnclaveClient:
    def __init__(self, connection, *, credentials=None, chunk_size=DEFAULT_CHUNK):
        self.connection = connection
        self.chunk_size = chunk_size
        self.channel = None
        self._provider = None
        self._refreshing = threading.Lock()
        if credentials is not None:
            self.set_credentials_source(credentials)

    @classmethod
    def connect(cls, endpoint, *, credentials=None, chunk_size=DEFAULT_CHUNK, connect_timeout=5.0,
                call_timeout=60.0, **options):
        conn = Connection.open(endpoint, connect_timeout=connect_timeout, call_timeout=call_timeout, **options)
        return cls(conn, credentials=credentials, chunk_size=chunk_size)

    def set_credentials_source(self, credentials):
        """A Credentials value or a CredentialsProvider used for pushes and refreshes."""
        self._provider = static_provider(credentials) if isinstance(credentials, Credentials) else credentials
        if not isinstance(self._provider, CredentialsProvider):
            raise ShieldNitroError("usage", "credentials must be Credentials or a CredentialsProvider")

    def close(self):
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing --------------------------------------------------------------------------
    def _call_plain(self, op, body=None, timeout=None):
        result = self.connection.call(op, body if body is not None else {}, timeout)
        if op != "sealed":
            self._maybe_refresh(result)
        return result

    def _call(self, op, body=None, timeout=None):
        """Through the channel when one is open, else plain."""
        if self.channel is not None:
            return self.channel.call(op, body, timeout)
        return self._call_plain(op, body, timeout)

    def _maybe_refresh(self, body):
        if body.get("refresh_credentials") is True and self._provider is not None:
            if self._refreshing.acquire(blocking=False):  # one push at a time is enough
                try:
                    self._push(self._provider.get(force=True))
                finally:
                    self._refreshing.release()

    def _push(self, creds):
        return self.connection.call("set-credentials", creds.to_body()).get("expires_at")

    # -- operations ------------------------------------------------------------------------
    def describe(self):
        return self._call_plain("describe")

    def stats(self):
        return self._call_plain("stats")

    def attest(self, nonce=None, user_data=None):
        """The raw attestation document (bytes), for a fresh random nonce unless given."""
        body = {"nonce": bytes(nonce) if nonce is not None else os.urandom(32)}
        if user_data is not None:
            body["user_data"] = bytes(user_data)
        document = self._call_plain("attest", body).get("document")
        if not isinstance(document, bytes):
            raise ShieldNitroError("format", "attest: response lacks the document")
        return document

    def attest_and_verify(self, policy=None, *, root=None, user_data=None, at_time=None):
        """(document, claims): attests with a fresh nonce and verifies it with ``policy``."""
        nonce = os.urandom(32)
        document = self.attest(nonce, user_data)
        return document, attestation.verify(document, _with_nonce(policy, nonce), root=root, at_time=at_time)

    def open_channel(self, policy=None, *, root=None, at_time=None):
        """attest -> verify (nonce, PCR policy, trust root) -> X25519 -> channel-open.

        Afterwards invoke/decrypt (and every other op sent with ``channel.call``) are sealed.
        """
        hs = ClientHandshake()
        document = self.attest(hs.nonce)
        policy = dataclasses.replace(_with_nonce(policy, hs.nonce), require_public_key=True)
        claims = attestation.verify(document, policy, root=root, at_time=at_time)
        keys, client_public = hs.finish(document, claims.public_key)
        session = self._call_plain("channel-open", {"nonce": hs.nonce, "client_public": client_public}).get("session")
        if not isinstance(session, bytes) or not hmac.compare_digest(session, keys.session_id):
            raise ShieldNitroError("verify", "channel-open: the enclave derived a different session")
        self.channel = Channel(self, SealedBox(keys), claims, document)
        return self.channel

    def push_credentials(self, creds=None):
        """Sends AWS credentials (given, or from the provider); returns the enclave's expires_at."""
        if creds is None:
            if self._provider is None:
                raise ShieldNitroError("usage", "push_credentials: no credentials given and no provider set")
            creds = self._provider.get()
        elif self._provider is None:
            self.set_credentials_source(creds)
        return self._push(creds)

    def load_key(self, ciphertext_blob, key_id=None, encryption_context=None):
        """KMS Decrypt (with Recipient) inside the enclave; returns {"handle", "key_id"}."""
        body = {"ciphertext_blob": bytes(ciphertext_blob)}
        if key_id is not None:
            body["key_id"] = key_id
        if encryption_context:
            body["encryption_context"] = {str(k): str(v) for k, v in encryption_context.items()}
        try:
            return self._call_plain("load-key", body)
        except ShieldNitroError as e:
            if e.code != "environment" or self._provider is None:
                raise
        self._push(self._provider.get(force=True))   # credentials missing or expired: push, retry once
        return self._call_plain("load-key", body)

    def load_artifact(self, key_handle, source, kind="model", name=None, models=()):
        """Streams a Shield container / v4 message (path or binary file object) in chunks."""
        if kind not in KINDS:
            raise ShieldNitroError("usage", f"load_artifact: kind must be one of {KINDS}")
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return self.load_artifact(key_handle, f, kind, name or os.path.basename(os.fspath(source)), models)
        header = {"key": key_handle, "kind": kind, "name": name or "artifact"}
        if models:
            header["models"] = list(models)
        size = _remaining_size(source)
        if size is not None:
            header["size"] = size   # the enclave then allocates the plaintext once
        upload = self.connection.stream("load-artifact", header)
        while not upload.answered_early:
            chunk = source.read(self.chunk_size)
            if not chunk:
                break
            upload.send({"data": bytes(chunk)})
        result = upload.finish()
        self._maybe_refresh(result)
        return result

    def encrypt(self, key_handle, plaintext):
        """Shield v4 ciphertext under a loaded key (the parent may see the plaintext it sends)."""
        return self._call("encrypt", {"key": key_handle, "plaintext": bytes(plaintext)})["ciphertext"]

    def decrypt(self, key_handle, ciphertext):
        return self._require_channel("decrypt").call("decrypt", {"key": key_handle,
                                                                 "ciphertext": bytes(ciphertext)})["plaintext"]

    def invoke(self, artifact, input_bytes):
        return self._require_channel("invoke").call("invoke", {"artifact": artifact,
                                                               "input": bytes(input_bytes)})["output"]

    def unload(self, handle):
        self._call("unload", {"handle": handle})

    def _require_channel(self, op):
        if self.channel is None:
            raise ShieldNitroError("usage", f"{op} returns plaintext: open_channel() first")
        return self.channel


def _remaining_size(source):
    """Bytes left in a regular file object (its sealed size for load-artifact), else None."""
    try:
        st = os.fstat(source.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - source.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _with_nonce(policy, nonce):
    return dataclasses.replace(policy if policy is not None else attestation.Policy(), nonce=nonce)
