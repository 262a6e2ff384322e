#!/usr/bin/env python3
"""Writes record_v2_vectors.json: channel v2 (docs/protocol.md) computed straight from the
spec with the `cryptography` package, independent of both SDKs, which the C++ and Python
tests then reproduce byte for byte. Run: python3 gen_record_vectors.py > record_v2_vectors.json"""
import hashlib
import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LABEL = b"shield-nitro/channel/v2"


def hkdf(ikm, salt, purpose, n):
    return HKDF(hashes.SHA256(), n, salt if salt else None, LABEL + b" " + purpose).derive(ikm)


def transcript(nonce, doc, client_public, version, pad):
    h = hashlib.sha256()
    for part in (LABEL, nonce, doc, client_public, bytes([version]) + struct.pack(">I", pad)):
        h.update(struct.pack(">I", len(part)) + part)
    return h.digest()


def record(key, iv, flags, sid, seq, payload, pad):
    inner = payload
    if pad:
        flags |= 0x04
        n = -(-(len(payload) + 1) // pad) * pad
        inner = payload + b"\x80" + bytes(n - len(payload) - 1)
    header = bytes([2, flags]) + sid + struct.pack(">Q", seq)
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + struct.pack(">Q", seq)))
    return header + AESGCM(key).encrypt(nonce, inner, header)


shared = bytes(range(32))
nonce, doc, cpub = bytes([0x11] * 32), b"attestation document", bytes([0x22] * 32)
derive = []
for pad in (0, 256):
    t = transcript(nonce, doc, cpub, 2, pad)
    derive.append({"shared": shared.hex(), "nonce": nonce.hex(), "document": doc.hex(), "client_public": cpub.hex(),
                   "version": 2, "pad": pad, "transcript": t.hex(),
                   "c2e_key": hkdf(shared, t, b"client->enclave key", 32).hex(),
                   "c2e_iv": hkdf(shared, t, b"client->enclave iv", 12).hex(),
                   "e2c_key": hkdf(shared, t, b"enclave->client key", 32).hex(),
                   "e2c_iv": hkdf(shared, t, b"enclave->client iv", 12).hex(),
                   "session_id": hkdf(shared, t, b"session id", 16).hex()})
key, iv, sid = bytes([0x42] * 32), bytes.fromhex("000102030405060708090a0b"), bytes([0x5e] * 16)
records = []
for flags, seq, payload, pad in [(0, 0, b"", 0), (0, 1, b"hello enclave", 0), (1, 7, b"reply", 0),
                                 (2, 2**32, b"after a key update", 0), (0, 2**64 - 1, bytes(range(200)), 0),
                                 (0, 3, b"padded", 64), (1, 4, bytes(64), 64)]:
    records.append({"key": key.hex(), "iv": iv.hex(), "flags": flags, "session_id": sid.hex(), "seq": seq,
                    "plaintext": payload.hex(), "pad": pad, "record": record(key, iv, flags, sid, seq, payload, pad).hex()})
ratchet = [{"key": key.hex(), "next_key": hkdf(key, b"", b"key update key", 32).hex(),
            "next_iv": hkdf(key, b"", b"key update iv", 12).hex()}]
print(json.dumps({"derive": derive, "records": records, "ratchet": ratchet}, indent=1))
