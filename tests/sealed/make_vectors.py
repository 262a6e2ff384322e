#!/usr/bin/env python3
"""Sealed-file test vectors (docs/stream-format.md §8), from the document alone.

An implementation independent of shield-nitro's C++ (pyca/cryptography): it writes the JSON
block published in the document; tests/sealed/vectors_test.cpp reproduces it byte for byte.
Run: python3 tests/sealed/make_vectors.py
"""
import hashlib
import hmac
import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def field(b):
    return struct.pack(">H", len(b)) + b


def sealed(v):
    dk = bytes.fromhex(v["data_key_hex"])
    body = field(v["key_id"].encode()) + field(bytes.fromhex(v["ciphertext_blob_hex"]))
    pairs = sorted((k.encode(), val.encode()) for k, val in v["encryption_context"].items())
    body += struct.pack(">H", len(pairs)) + b"".join(field(k) + field(val) for k, val in pairs)
    size = 4 + 1 + 4 + len(body) + 32
    signed = b"SNSL" + b"\x01" + struct.pack(">I", size) + body
    header_key = hkdf(dk, None, b"shield-nitro/sealed/v1/header")
    header = signed + hmac.new(header_key, signed, hashlib.sha256).digest()
    master = hkdf(dk, hashlib.sha256(header).digest(), b"shield-nitro/sealed/v1/stream")
    salt, prefix = bytes.fromhex(v["stream_salt_hex"]), bytes.fromhex(v["nonce_prefix_hex"])
    stream_key = hkdf(master, salt, b"shield-nitro/stream/v1")
    suite = {"aes-256-gcm": 1, "chacha20-poly1305": 2}[v["suite"]]
    chunk = v["chunk_size"]
    stream_header = b"SNST\x01" + bytes([suite, 0x13]) + struct.pack(">I", chunk) + salt + prefix
    aead = AESGCM(stream_key) if suite == 1 else ChaCha20Poly1305(stream_key)
    pt = bytes.fromhex(v["plaintext_hex"])
    chunks = [pt[i:i + chunk] for i in range(0, len(pt), chunk)] or [b""]
    records = b""
    for i, c in enumerate(chunks):
        nonce = prefix + struct.pack(">I", i) + bytes([1 if i == len(chunks) - 1 else 0])
        records += aead.encrypt(nonce, c, stream_header)
    v["header_key_hex"] = header_key.hex()
    v["stream_master_key_hex"] = master.hex()
    v["header_hex"] = header.hex()
    # The runtime config's header_sha256 pin: everything before the first record (§8.5).
    v["header_sha256_hex"] = hashlib.sha256(header + stream_header).hexdigest()
    v["expected_output_hex"] = (header + stream_header + records).hex()
    return v


VECTORS = [
    {
        "name": "aes_context_three_chunks",
        "suite": "aes-256-gcm",
        "chunk_size": 64,
        "data_key_hex": bytes(range(32)).hex(),
        "key_id": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "ciphertext_blob_hex": bytes(range(0x80, 0x80 + 48)).hex(),
        "encryption_context": {"tier": "prod", "app": "inference", "model": "digits-mlp"},
        "stream_salt_hex": bytes(range(0x20, 0x40)).hex(),
        "nonce_prefix_hex": "a0a1a2a3a4a5a6",
        "plaintext_hex": bytes(range(150)).hex(),
    },
    {
        "name": "chacha_no_context_empty",
        "suite": "chacha20-poly1305",
        "chunk_size": 64,
        "data_key_hex": bytes(range(0x40, 0x60)).hex(),
        "key_id": "alias/app",
        "ciphertext_blob_hex": "01020304",
        "encryption_context": {},
        "stream_salt_hex": bytes(range(0x60, 0x80)).hex(),
        "nonce_prefix_hex": "b0b1b2b3b4b5b6",
        "plaintext_hex": "",
    },
]

if __name__ == "__main__":
    print(json.dumps([sealed(v) for v in VECTORS], indent=2))
