"""The attested end-to-end channel, client side (docs/enclave-api.md, channel/session.h).

    hs = ClientHandshake()                                   # 32 random nonce bytes
    doc = attest(nonce=hs.nonce)                             # relayed by the parent
    claims = attestation.verify(doc, Policy(nonce=hs.nonce, ...))
    keys, client_public = hs.finish(doc, claims.public_key)  # X25519 + HKDF over the transcript
    channel-open {nonce, client_public}  ->  {session}
    box = SealedBox(keys, CLIENT)

Key schedule (both sides):
    T      = SHA-256(u32be(len) || "shield-nitro/channel/v1" || u32be(32) || nonce
                     || u32be(len) || document || u32be(32) || client_public)
    c2e    = HKDF-SHA256(ikm = shared, salt = T, info = "shield-nitro/channel/v1 client->enclave", 32)
    e2c    = HKDF-SHA256(ikm = shared, salt = T, info = "shield-nitro/channel/v1 enclave->client", 32)
    S      = HKDF-SHA256(ikm = shared, salt = T, info = "shield-nitro/channel/v1 session id", 16)

A sealed message is Shield v4 key mode (AES-256-GCM) under the direction's key, with plaintext
``u64be(seq) || payload``; each seq is accepted once within a window of 1024.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ShieldNitroError
from .shield import Shield

LABEL = b"shield-nitro/channel/v1"
NONCE_SIZE = 32
SESSION_ID_SIZE = 16
REPLAY_WINDOW = 1024
CLIENT = "client"
ENCLAVE = "enclave"


def transcript_hash(nonce: bytes, document: bytes, client_public: bytes) -> bytes:
    """T: SHA-256 over the length-prefixed label, nonce, document and client key (module doc)."""
    h = hashlib.sha256()
    for part in (LABEL, bytes(nonce), bytes(document), bytes(client_public)):
        h.update(struct.pack(">I", len(part)))
        h.update(part)
    return h.digest()


def _hkdf(shared, salt, purpose, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=LABEL + b" " + purpose).derive(shared)


@dataclass
class SessionKeys:
    client_to_enclave: bytes
    enclave_to_client: bytes
    session_id: bytes


def derive_session_keys(shared: bytes, transcript: bytes) -> SessionKeys:
    """Both directions' keys and the session id from the X25519 secret and T."""
    return SessionKeys(_hkdf(shared, transcript, b"client->enclave", 32),
                       _hkdf(shared, transcript, b"enclave->client", 32),
                       _hkdf(shared, transcript, b"session id", SESSION_ID_SIZE))


def x25519_raw_from_spki(spki: bytes) -> bytes:
    """The 32-byte key inside an X25519 SubjectPublicKeyInfo (an attestation's public_key)."""
    try:
        key = serialization.load_der_public_key(bytes(spki))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PublicKey):
        raise ShieldNitroError("format", "channel: public_key is not an X25519 SubjectPublicKeyInfo")
    spki_again = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki_again != bytes(spki):
        raise ShieldNitroError("format", "channel: public_key is not a canonical X25519 SubjectPublicKeyInfo")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_public(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def agree(private_key: X25519PrivateKey, peer_raw: bytes) -> bytes:
    """X25519; refuses malformed and low-order peer keys (all-zero shared secret)."""
    if len(peer_raw) != 32:
        raise ShieldNitroError("format", f"channel: peer X25519 key is {len(peer_raw)} bytes, expected 32")
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(bytes(peer_raw)))
    except ValueError:
        raise ShieldNitroError("verify", "channel: X25519 key agreement failed (low-order or invalid peer key)") from None
    if shared == bytes(32):
        raise ShieldNitroError("verify", "channel: X25519 key agreement gave the all-zero secret")
    return shared


class ClientHandshake:
    """The client's half of the handshake: a 32-byte nonce now, session keys in finish()."""

    def __init__(self, nonce: Optional[bytes] = None) -> None:
        self.nonce = bytes(nonce) if nonce is not None else os.urandom(NONCE_SIZE)
        if len(self.nonce) != NONCE_SIZE:
            raise ShieldNitroError("usage", f"channel: the nonce must be {NONCE_SIZE} bytes")

    def finish(self, document: bytes, enclave_spki: bytes, *,
               _private_key: Optional[X25519PrivateKey] = None) -> Tuple[SessionKeys, bytes]:
        """(SessionKeys, client_public raw 32 bytes) for a verified document and its public_key."""
        enclave_raw = x25519_raw_from_spki(enclave_spki)
        mine = _private_key or X25519PrivateKey.generate()
        client_public = _raw_public(mine)
        shared = agree(mine, enclave_raw)
        return derive_session_keys(shared, transcript_hash(self.nonce, document, client_public)), client_public


class _ReplayWindow:
    def __init__(self):
        self.highest = 0   # highest accepted seq + 1 (0: none yet)
        self.bits = 0      # bit i: seq (highest - 1 - i) was accepted

    def accept(self, seq):
        if seq >= self.highest:
            shift = seq + 1 - self.highest
            self.bits = ((self.bits << shift) | 1) & ((1 << REPLAY_WINDOW) - 1) if shift < REPLAY_WINDOW else 1
            self.highest = seq + 1
            return
        age = self.highest - 1 - seq
        if age >= REPLAY_WINDOW:
            raise ShieldNitroError("verify", "channel: message is older than the replay window")
        if self.bits >> age & 1:
            raise ShieldNitroError("verify", "channel: replayed message")
        self.bits |= 1 << age


class SealedBox:
    """One side of an open session: seals what it sends, opens what it receives. Thread-safe."""

    def __init__(self, keys: SessionKeys, role: str = CLIENT, *, max_age_ms: Optional[int] = 60000,
                 _clock: Optional[Callable[[], int]] = None) -> None:
        send_key, recv_key = ((keys.client_to_enclave, keys.enclave_to_client) if role == CLIENT
                              else (keys.enclave_to_client, keys.client_to_enclave))
        self._send = Shield.with_key(send_key, _clock=_clock)
        self._recv = Shield.with_key(recv_key, max_age_ms=max_age_ms, _clock=_clock)
        self.session_id = keys.session_id
        self._lock = threading.Lock()
        self._next_send = 0
        self._window = _ReplayWindow()

    def seal(self, payload: bytes) -> bytes:
        """``payload`` sealed under the next sequence number of this direction."""
        with self._lock:
            seq = self._next_send
            self._next_send += 1
        return self._send.encrypt(struct.pack(">Q", seq) + bytes(payload))

    def open(self, message: bytes) -> bytes:
        """The payload of a message from the other side; refuses replays, forgeries and stale ones."""
        inner = self._recv.decrypt(message)
        if len(inner) < 8:
            raise ShieldNitroError("format", "channel: sealed message has no sequence number")
        (seq,) = struct.unpack_from(">Q", inner)
        with self._lock:
            self._window.accept(seq)
        return inner[8:]
