"""The attested end-to-end channel, client side (docs/protocol.md "Channel records, version 2").

    hs = ClientHandshake()                                   # 32 random nonce bytes
    doc = attest(nonce=hs.nonce)                             # relayed by the parent
    claims = attestation.verify(doc, Policy(nonce=hs.nonce, ...))
    keys, client_public = hs.finish(doc, claims.public_key, pad=0)   # X25519 + HKDF
    channel-open {nonce, client_public, versions: [2], pad}  ->  {session, version, pad}
    box = SealedBox(keys, CLIENT)

Key schedule (both sides; version and pad are bound, so a relay cannot change them):
    T      = SHA-256 of the u32be-length-prefixed parts "shield-nitro/channel/v2", nonce, document,
             client_public, u8(version) || u32be(pad)
    c2e    = HKDF-SHA256(ikm = shared, salt = T, info = "shield-nitro/channel/v2 client->enclave key", 32)
             and "... client->enclave iv" (12 bytes); the same for enclave->client; the session id
             from "... session id" (16 bytes)

A record: header = 0x02 || flags || session id || u64be(seq), then AES-256-GCM under the
direction's key with nonce = IV XOR seq and the header as associated data. Requests are
accepted strictly in seq order; a reply carries its request's seq (flag 0x01) and opens once.
The client ratchets both keys (flag 0x02) after MAX_RECORDS requests or MAX_BYTES bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ShieldNitroError

LABEL = b"shield-nitro/channel/v2"
VERSION = 2
NONCE_SIZE = 32
SESSION_ID_SIZE = 16
HEADER_SIZE = 2 + SESSION_ID_SIZE + 8
TAG_SIZE = 16
MAX_PAD_BUCKET = 65536
FLAG_REPLY, FLAG_KEY_UPDATE, FLAG_PADDED = 0x01, 0x02, 0x04
MAX_RECORDS = 1 << 32
MAX_BYTES = 1 << 36
CLIENT = "client"
ENCLAVE = "enclave"


def transcript_hash(nonce: bytes, document: bytes, client_public: bytes, version: int = VERSION,
                    pad: int = 0) -> bytes:
    """T: SHA-256 over the length-prefixed label, nonce, document, client key and parameters."""
    h = hashlib.sha256()
    for part in (LABEL, bytes(nonce), bytes(document), bytes(client_public), bytes([version]) + struct.pack(">I", pad)):
        h.update(struct.pack(">I", len(part)))
        h.update(part)
    return h.digest()


def _hkdf(ikm, salt, purpose, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=LABEL + b" " + purpose).derive(ikm)


@dataclass
class DirectionKeys:
    key: bytes
    iv: bytes


@dataclass
class SessionKeys:
    client_to_enclave: DirectionKeys
    enclave_to_client: DirectionKeys
    session_id: bytes
    pad: int = 0


def derive_session_keys(shared: bytes, transcript: bytes, pad: int = 0) -> SessionKeys:
    """Both directions' keys and IVs and the session id from the X25519 secret and T."""
    d = lambda purpose, n: _hkdf(shared, transcript, purpose, n)  # noqa: E731
    return SessionKeys(DirectionKeys(d(b"client->enclave key", 32), d(b"client->enclave iv", 12)),
                       DirectionKeys(d(b"enclave->client key", 32), d(b"enclave->client iv", 12)),
                       d(b"session id", SESSION_ID_SIZE), pad)


def next_keys(k: DirectionKeys) -> DirectionKeys:
    """The key update of one direction."""
    return DirectionKeys(_hkdf(k.key, b"", b"key update key", 32), _hkdf(k.key, b"", b"key update iv", 12))


def _nonce(iv: bytes, seq: int) -> bytes:
    return bytes(a ^ b for a, b in zip(iv, bytes(4) + struct.pack(">Q", seq)))


def seal_record(k: DirectionKeys, flags: int, session_id: bytes, seq: int, payload: bytes, pad: int = 0) -> bytes:
    """One record, no state (module doc)."""
    inner = bytes(payload)
    if pad:
        flags |= FLAG_PADDED
        size = -(-(len(inner) + 1) // pad) * pad
        inner += b"\x80" + bytes(size - len(inner) - 1)
    header = bytes([VERSION, flags]) + bytes(session_id) + struct.pack(">Q", seq)
    return header + AESGCM(k.key).encrypt(_nonce(k.iv, seq), inner, header)


def parse_record_header(record: bytes) -> Tuple[int, bytes, int]:
    """(flags, session id, seq); refuses short records, other versions and unknown flags."""
    if len(record) < HEADER_SIZE + TAG_SIZE:
        raise ShieldNitroError("format", f"channel: record of {len(record)} bytes is shorter than its header and tag")
    if record[0] != VERSION:
        raise ShieldNitroError("verify", f"channel: record version {record[0]}; this side speaks channel version 2")
    flags = record[1]
    if flags & ~(FLAG_REPLY | FLAG_KEY_UPDATE | FLAG_PADDED):
        raise ShieldNitroError("verify", "channel: record has unknown flags")
    return flags, bytes(record[2:2 + SESSION_ID_SIZE]), struct.unpack_from(">Q", record, 2 + SESSION_ID_SIZE)[0]


def open_record(k: DirectionKeys, record: bytes) -> bytes:
    """The payload of one record (authenticated, padding stripped)."""
    record = bytes(record)
    flags, _, seq = parse_record_header(record)
    try:
        inner = AESGCM(k.key).decrypt(_nonce(k.iv, seq), record[HEADER_SIZE:], record[:HEADER_SIZE])
    except InvalidTag:
        raise ShieldNitroError("auth", "channel: record failed authentication (wrong key, session or direction, "
                                       "or tampered)") from None
    if flags & FLAG_PADDED:
        body = inner.rstrip(b"\x00")
        if not body.endswith(b"\x80"):
            raise ShieldNitroError("format", "channel: record padding is malformed")
        inner = body[:-1]
    return inner


def negotiate(offered: Iterable[int], pad: int = 0) -> Tuple[int, int]:
    """channel-open on the enclave side: (version, pad), or a refusal for an old SDK."""
    if VERSION not in list(offered):
        raise ShieldNitroError("verify", "channel-open: this enclave speaks channel version 2; upgrade the SDK")
    if not 0 <= pad <= MAX_PAD_BUCKET:
        raise ShieldNitroError("usage", f"channel-open: pad bucket {pad} is above 65536")
    return VERSION, pad


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

    def finish(self, document: bytes, enclave_spki: bytes, *, pad: int = 0,
               _private_key: Optional[X25519PrivateKey] = None) -> Tuple[SessionKeys, bytes]:
        """(SessionKeys, client_public raw 32 bytes) for a verified document and its public_key;
        pad is the bucket channel-open will ask for (0: none)."""
        enclave_raw = x25519_raw_from_spki(enclave_spki)
        mine = _private_key or X25519PrivateKey.generate()
        client_public = _raw_public(mine)
        shared = agree(mine, enclave_raw)
        t = transcript_hash(self.nonce, document, client_public, VERSION, pad)
        return derive_session_keys(shared, t, pad), client_public


class SealedBox:
    """One side of an open session. Thread-safe.

    client:  record, seq = box.seal_request(payload); ... box.open_reply(reply, seq)
    enclave: payload, seq = box.open_request(record); ... box.seal_reply(seq, answer)
    The client must put records on the wire in seq order (hold a lock over seal and send).
    """

    def __init__(self, keys: SessionKeys, role: str = CLIENT, *, max_records: int = MAX_RECORDS,
                 max_bytes: int = MAX_BYTES, order_wait_s: float = 10.0) -> None:
        client = role == CLIENT
        self._role = role
        send, recv = ((keys.client_to_enclave, keys.enclave_to_client) if client
                      else (keys.enclave_to_client, keys.client_to_enclave))
        self._epoch = (0, send, recv)  # (index, send keys, receive keys)
        self.session_id = bytes(keys.session_id)
        self._pad = keys.pad
        self._max_records, self._max_bytes, self._order_wait_s = max_records, max_bytes, order_wait_s
        self._lock = threading.Condition()
        self._next_send = 0
        self._next_recv = 0
        self._records = 0
        self._bytes = 0
        self._failed = False
        self._unanswered: Dict[int, tuple] = {}

    @property
    def key_epoch(self) -> int:
        """How many key updates this side has made (of its newest keys)."""
        return self._epoch[0]

    @staticmethod
    def _ratchet(epoch):
        return epoch[0] + 1, next_keys(epoch[1]), next_keys(epoch[2])

    def _check(self, record, want_reply):
        flags, sid, seq = parse_record_header(bytes(record))
        if sid != self.session_id:
            raise ShieldNitroError("verify", "channel: record belongs to another session")
        if bool(flags & FLAG_REPLY) != want_reply:
            raise ShieldNitroError("verify", "channel: wrong direction (a request where a reply belongs, or back)")
        return flags, seq

    # -- client -------------------------------------------------------------------------
    def seal_request(self, payload: bytes) -> Tuple[bytes, int]:
        """(record, seq) for the next request."""
        flags = 0
        with self._lock:
            if self._records >= self._max_records or self._bytes >= self._max_bytes:
                self._epoch = self._ratchet(self._epoch)
                self._records = self._bytes = 0
                flags = FLAG_KEY_UPDATE
            seq = self._next_send
            self._next_send += 1
            self._records += 1
            self._bytes += len(payload)
            epoch = self._epoch
            self._unanswered[seq] = epoch
        return seal_record(epoch[1], flags, self.session_id, seq, payload, self._pad), seq

    def open_reply(self, record: bytes, seq: Optional[int] = None) -> bytes:
        """The reply to request seq (or to any unanswered one); each reply opens once."""
        _, got = self._check(record, True)
        if seq is not None and got != seq:
            raise ShieldNitroError("verify", f"channel: reply {got} answers another request than {seq}")
        with self._lock:
            epoch = self._unanswered.get(got)
        if epoch is None:
            raise ShieldNitroError("verify", f"channel: replayed or unexpected reply (seq {got})")
        payload = open_record(epoch[2], record)
        with self._lock:
            if self._unanswered.pop(got, None) is None:
                raise ShieldNitroError("verify", f"channel: replayed reply (seq {got})")
            if epoch is self._epoch:
                self._bytes += len(payload)
        return payload

    # -- enclave (tests and fakes) --------------------------------------------------------
    def open_request(self, record: bytes) -> Tuple[bytes, int]:
        """(payload, seq) of the next request, strictly in seq order."""
        flags, seq = self._check(record, False)
        with self._lock:
            if not self._lock.wait_for(lambda: self._failed or self._next_recv >= seq, self._order_wait_s):
                self._failed = True
                self._lock.notify_all()
                raise ShieldNitroError("verify", f"channel: request {self._next_recv} never arrived; the session is over")
            if self._failed:
                raise ShieldNitroError("verify", "channel: an earlier request failed; the session is over")
            if seq < self._next_recv:
                raise ShieldNitroError("verify", f"channel: replayed or reordered request (seq {seq}, "
                                                 f"expected {self._next_recv})")
            try:
                epoch, records, nbytes = self._epoch, self._records, self._bytes
                if flags & FLAG_KEY_UPDATE:
                    epoch, records, nbytes = self._ratchet(epoch), 0, 0
                elif records >= self._max_records:
                    raise ShieldNitroError("verify", "channel: the client did not update its keys")
                payload = open_record(epoch[2], record)
            except ShieldNitroError as e:
                if e.code != "auth":   # a forgery takes no seq: the genuine record may still come
                    self._failed = True
                    self._lock.notify_all()
                raise
            self._epoch, self._records, self._bytes = epoch, records + 1, nbytes + len(payload)
            self._unanswered[seq] = epoch
            self._next_recv += 1
            self._lock.notify_all()
        return payload, seq

    def seal_reply(self, seq: int, payload: bytes) -> bytes:
        """The reply to request seq, under the keys that request used; each seq once."""
        with self._lock:
            epoch = self._unanswered.pop(seq, None)
        if epoch is None:
            raise ShieldNitroError("usage", f"channel: request {seq} has no reply pending")
        return seal_record(epoch[1], FLAG_REPLY, self.session_id, seq, payload, self._pad)

    # -- either side: the next record out / any record in ---------------------------------
    def seal(self, payload: bytes) -> bytes:
        """Client: the next request. Enclave: the reply to the oldest unanswered request."""
        if self._role == CLIENT:
            return self.seal_request(payload)[0]
        with self._lock:
            if not self._unanswered:
                raise ShieldNitroError("usage", "channel: no request is waiting for a reply")
            seq = min(self._unanswered)
        return self.seal_reply(seq, payload)

    def open(self, record: bytes) -> bytes:
        """Enclave: the next request. Client: a reply to any unanswered request."""
        return self.open_request(record)[0] if self._role == ENCLAVE else self.open_reply(record)
