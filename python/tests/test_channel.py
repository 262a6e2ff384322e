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
    keys, client_public = ch.ClientHandshake(nonce).finish(document, spki(enclave), pad=512, _private_key=client)
    assert client_public == raw(client)
    label = b"shield-nitro/channel/v2"
    transcript = hashlib.sha256(
        len(label).to_bytes(4, "big") + label
        + (32).to_bytes(4, "big") + nonce + len(document).to_bytes(4, "big") + document
        + (32).to_bytes(4, "big") + client_public + (5).to_bytes(4, "big") + b"\x02" + (512).to_bytes(4, "big")).digest()
    assert ch.transcript_hash(nonce, document, client_public, 2, 512) == transcript
    assert keys.client_to_enclave.key == hkdf_by_hand(SHARED, transcript, label + b" client->enclave key", 32)
    assert keys.client_to_enclave.iv == hkdf_by_hand(SHARED, transcript, label + b" client->enclave iv", 12)
    assert keys.enclave_to_client.key == hkdf_by_hand(SHARED, transcript, label + b" enclave->client key", 32)
    assert keys.session_id == hkdf_by_hand(SHARED, transcript, label + b" session id", 16)
    assert keys.pad == 512


def test_record_vectors_shared_with_cpp():
    """tests/channel/data/record_v2_vectors.json: the C++ test checks the same bytes."""
    import json
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "tests/channel/data/record_v2_vectors.json"
    v = json.loads(path.read_text())
    h = bytes.fromhex
    for d in v["derive"]:
        t = ch.transcript_hash(h(d["nonce"]), h(d["document"]), h(d["client_public"]), d["version"], d["pad"])
        assert t.hex() == d["transcript"]
        k = ch.derive_session_keys(h(d["shared"]), t)
        assert (k.client_to_enclave.key.hex(), k.client_to_enclave.iv.hex()) == (d["c2e_key"], d["c2e_iv"])
        assert (k.enclave_to_client.key.hex(), k.enclave_to_client.iv.hex()) == (d["e2c_key"], d["e2c_iv"])
        assert k.session_id.hex() == d["session_id"]
    for r in v["records"]:
        k = ch.DirectionKeys(h(r["key"]), h(r["iv"]))
        out = ch.seal_record(k, r["flags"], h(r["session_id"]), r["seq"], h(r["plaintext"]), r["pad"])
        assert out.hex() == r["record"]
        assert ch.open_record(k, out).hex() == r["plaintext"]
    for r in v["ratchet"]:
        n = ch.next_keys(ch.DirectionKeys(h(r["key"]), bytes(12)))
        assert (n.key.hex(), n.iv.hex()) == (r["next_key"], r["next_iv"])


def enclave_side(hs, document, enclave_private, client_public, pad=0):
    shared = ch.agree(enclave_private, client_public)
    return ch.derive_session_keys(shared, ch.transcript_hash(hs.nonce, document, client_public, 2, pad), pad)


def open_pair(pad=0, **limits):
    hs = ch.ClientHandshake()
    enclave = X25519PrivateKey.generate()
    doc = b"document"
    keys, client_public = hs.finish(doc, spki(enclave), pad=pad)
    ekeys = enclave_side(hs, doc, enclave, client_public, pad)
    assert ekeys == keys
    return ch.SealedBox(keys, ch.CLIENT, **limits), ch.SealedBox(ekeys, ch.ENCLAVE, **limits)


def code(fn):
    with pytest.raises(ShieldNitroError) as e:
        fn()
    return e.value.code


def test_sealed_round_trip_and_directions():
    client, enclave = open_pair()
    for i in range(5):
        msg, seq = client.seal_request(b"request %d" % i)
        assert enclave.open(msg) == b"request %d" % i
        reply = enclave.seal(b"reply")
        assert code(lambda: client.open(msg)) == "verify"      # a request reflected back to its sender
        assert code(lambda: enclave.open(reply)) == "verify"   # a reply sent as a request
        assert client.open_reply(reply, seq) == b"reply"
        assert code(lambda: client.open_reply(reply, seq)) == "verify"   # replayed reply
    assert client.session_id == enclave.session_id and len(client.session_id) == 16


def test_replay_reordering_and_wrong_session_are_refused():
    client, enclave = open_pair(order_wait_s=0)
    other, _ = open_pair()
    m0, m1, m2 = (client.seal(b"%d" % i) for i in range(3))
    assert enclave.open(m0) == b"0"
    assert code(lambda: enclave.open(m0)) == "verify"               # replay
    assert code(lambda: enclave.open(other.seal(b"x"))) == "verify"  # another session
    assert code(lambda: enclave.open(m2)) == "verify"               # 2 before 1: reordered, session over
    assert code(lambda: enclave.open(m1)) == "verify"


def test_flipped_header_byte_fails_authentication():
    client, enclave = open_pair()
    genuine = client.seal(b"x")
    msg = bytearray(genuine)
    msg[1] ^= ch.FLAG_PADDED
    assert code(lambda: enclave.open(bytes(msg))) == "auth"
    assert enclave.open(genuine) == b"x"      # the forgery took no seq
    msg = bytearray(client.seal(b"x"))
    msg[0] = 1
    with pytest.raises(ShieldNitroError, match="channel version 2"):
        enclave.open(bytes(msg))


def test_replies_answer_their_own_request():
    client, enclave = open_pair()
    r0, s0 = client.seal_request(b"a")
    r1, s1 = client.seal_request(b"b")
    p0, e0 = enclave.open_request(r0)
    p1, e1 = enclave.open_request(r1)
    late, early = enclave.seal_reply(e1, b"B"), enclave.seal_reply(e0, b"A")
    assert code(lambda: client.open_reply(late, s0)) == "verify"
    assert client.open_reply(late, s1) == b"B" and client.open_reply(early, s0) == b"A"


def test_key_update_at_a_small_record_threshold():
    client, enclave = open_pair(max_records=3)
    for i in range(7):
        record, seq = client.seal_request(b"x")
        assert bool(record[1] & ch.FLAG_KEY_UPDATE) == (i in (3, 6))
        assert enclave.open(record) == b"x"
        assert client.open_reply(enclave.seal(b"y"), seq) == b"y"
    assert client.key_epoch == enclave.key_epoch == 2


def test_padding_hides_sizes():
    client, enclave = open_pair(pad=64)
    a, b = client.seal(b"x"), client.seal(b"y" * 50)
    assert len(a) == len(b) == ch.HEADER_SIZE + 64 + ch.TAG_SIZE
    assert enclave.open(a) == b"x" and enclave.open(b) == b"y" * 50


def test_old_peer_is_refused():
    assert ch.negotiate([1, 2]) == (2, 0)
    with pytest.raises(ShieldNitroError, match="this enclave speaks channel version 2; upgrade the SDK"):
        ch.negotiate([])


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
