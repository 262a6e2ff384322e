import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shield_nitro import channel as ch
from shield_nitro.errors import ShieldNitroError


def hkdf_by_hand(ikm, salt, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def spki(private):
    return private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw(private):
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# RFC 7748 §6.1 key pair for the fixed-input vector.
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_key_schedule_against_independent_computation():
    nonce = bytes(range(32))
    document = b"\x84" + b"attestation document bytes" * 3
    client = X25519PrivateKey.from_private_bytes(ALICE)
    enclave = X25519PrivateKey.from_private_bytes(BOB)
    keys, client_public = ch.ClientHandshake(nonce).finish(document, spki(enclave), _private_key=client)
    assert client_public == raw(client)
    transcript = hashlib.sha256(
        len(b"shield-nitro/channel/v1").to_bytes(4, "big") + b"shield-nitro/channel/v1"
        + (32).to_bytes(4, "big") + nonce + len(document).to_bytes(4, "big") + document
        + (32).to_bytes(4, "big") + client_public).digest()
    assert ch.transcript_hash(nonce, document, client_public) == transcript
    label = b"shield-nitro/channel/v1 "
    assert keys.client_to_enclave == hkdf_by_hand(SHARED, transcript, label + b"client->enclave", 32)
    assert keys.enclave_to_client == hkdf_by_hand(SHARED, transcript, label + b"enclave->client", 32)
    assert keys.session_id == hkdf_by_hand(SHARED, transcript, label + b"session id", 16)
    assert len({keys.client_to_enclave, keys.enclave_to_client}) == 2


def enclave_side(hs, document, enclave_private, client_public):
    shared = ch.agree(enclave_private, client_public)
    return ch.derive_session_keys(shared, ch.transcript_hash(hs.nonce, document, client_public))


def open_pair():
    hs = ch.ClientHandshake()
    enclave = X25519PrivateKey.generate()
    doc = b"document"
    keys, client_public = hs.finish(doc, spki(enclave))
    ekeys = enclave_side(hs, doc, enclave, client_public)
    assert ekeys == keys
    return ch.SealedBox(keys, ch.CLIENT), ch.SealedBox(ekeys, ch.ENCLAVE)


def test_sealed_round_trip_and_directions():
    client, enclave = open_pair()
    for i in range(5):
        msg = client.seal(b"request %d" % i)
        assert enclave.open(msg) == b"request %d" % i
        reply = enclave.seal(b"reply")
        assert client.open(reply) == b"reply"
        with pytest.raises(ShieldNitroError):   # reflected back to its sender
            client.open(msg)
    assert client.session_id == enclave.session_id and len(client.session_id) == 16


def test_replay_window():
    client, enclave = open_pair()
    msgs = [client.seal(b"%d" % i) for i in range(1100)]
    enclave.open(msgs[5])
    enclave.open(msgs[2])                       # out of order inside the window: fine
    for replay in (msgs[5], msgs[2]):
        with pytest.raises(ShieldNitroError) as e:
            enclave.open(replay)
        assert e.value.code == "verify"
    enclave.open(msgs[1029])
    with pytest.raises(ShieldNitroError) as e:  # 1029 - 3 >= 1024: fell out of the window
        enclave.open(msgs[3])
    assert "window" in e.value.message
    enclave.open(msgs[1000])
    enclave.open(msgs[1099])
    with pytest.raises(ShieldNitroError):
        enclave.open(msgs[1099])


def test_tampered_and_stale_messages():
    client, enclave = open_pair()
    msg = bytearray(client.seal(b"x"))
    msg[-3] ^= 1
    with pytest.raises(ShieldNitroError) as e:
        enclave.open(bytes(msg))
    assert e.value.code == "auth"
    hs = ch.ClientHandshake()
    key = X25519PrivateKey.generate()
    keys, cp = hs.finish(b"d", spki(key))
    old = ch.SealedBox(keys, ch.CLIENT, _clock=lambda: 1_000_000)
    fresh = ch.SealedBox(keys, ch.ENCLAVE, _clock=lambda: 1_000_000 + 61_000)
    with pytest.raises(ShieldNitroError) as e:
        fresh.open(old.seal(b"x"))
    assert e.value.code == "expired"


def test_bad_enclave_keys():
    hs = ch.ClientHandshake()
    with pytest.raises(ShieldNitroError) as e:
        hs.finish(b"d", b"\x30\x00")
    assert e.value.code == "format"
    from cryptography.hazmat.primitives.asymmetric import ec
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ShieldNitroError):
        hs.finish(b"d", p256)
    with pytest.raises(ShieldNitroError):
        hs.finish(b"d", spki(X25519PrivateKey.generate()) + b"\x00")
    low_order = bytes.fromhex("302a300506032b656e032100") + bytes(32)
    with pytest.raises(ShieldNitroError) as e:
        hs.finish(b"d", low_order)
    assert e.value.code == "verify"
    with pytest.raises(ShieldNitroError):
        ch.ClientHandshake(b"short")
