import json
import os
import subprocess

import pytest

from shield_nitro import shield as sh
from shield_nitro.errors import ShieldNitroError

VECTOR_TS = 1700000000000


def load_vectors(fixtures_dir):
    data = json.loads((fixtures_dir / "shield" / "v4_test_vectors.json").read_text())
    return data["deterministic_vectors"] + data["deterministic_vectors_chacha"]


@pytest.fixture(scope="module")
def vectors(fixtures_dir):
    vs = load_vectors(fixtures_dir)
    assert len(vs) == 8
    return vs


def build(v, **kw):
    suite = int(v["suite"], 16)
    if v["mode"] == "key":
        return sh.Shield.with_key(bytes.fromhex(v["key_hex"]), suite=suite, **kw)
    return sh.Shield.with_password(v["password"], v["service"], suite=suite, **kw)


def seal(v, inst):
    return inst.encrypt(bytes.fromhex(v["plaintext_hex"]), _nonce=bytes.fromhex(v["nonce_hex"]),
                        _timestamp_ms=v["timestamp_ms"], _padding=bytes.fromhex(v["padding_hex"]))


def test_vectors_reproduce_and_decrypt(vectors):
    for v in vectors:
        expected = bytes.fromhex(v["expected_output_hex"])
        if v["mode"] == "password":
            salt = bytes.fromhex(v["salt_hex"])
            master = sh.derive_master_key(v["password"], salt, v["service"], v["iterations"])
            assert master.hex() == v["master_key_hex"], v["name"]
            inst = sh.Shield.with_password(v["password"], v["service"], suite=int(v["suite"], 16), _salt=salt)
        else:
            master = bytes.fromhex(v["key_hex"])
            assert master.hex() == v["master_key_hex"]
            inst = build(v)
        assert sh.derive_aead_key(master).hex() == v["aead_key_hex"], v["name"]
        assert seal(v, inst) == expected, v["name"]
        # A separate instance (fresh random salt in password mode) with the window disabled...
        receiver = build(v, max_age_ms=None)
        assert receiver.decrypt(expected).hex() == v["plaintext_hex"], v["name"]
        # ...then with the default window and the real clock (its salt cache spares a PBKDF2).
        receiver.max_age_ms = sh.DEFAULT_MAX_AGE_MS
        with pytest.raises(ShieldNitroError) as e:
            receiver.decrypt(expected)
        assert e.value.code == "expired"


def test_vectors_decrypt_with_injected_clock(vectors):
    v = next(x for x in vectors if x["mode"] == "key")
    msg = bytes.fromhex(v["expected_output_hex"])
    assert build(v, _clock=lambda: VECTOR_TS + 60000).decrypt(msg).hex() == v["plaintext_hex"]
    with pytest.raises(ShieldNitroError):
        build(v, _clock=lambda: VECTOR_TS + 60001).decrypt(msg)
    assert build(v, _clock=lambda: VECTOR_TS - 5000).decrypt(msg).hex() == v["plaintext_hex"]
    with pytest.raises(ShieldNitroError):
        build(v, _clock=lambda: VECTOR_TS - 5001).decrypt(msg)


def expect_reject(inst, msg):
    with pytest.raises(ShieldNitroError) as e:
        inst.decrypt(msg)
    assert e.value.code in ("format", "unsupported", "auth")


def test_vector_negatives(vectors):
    for v in vectors:
        msg = bytes.fromhex(v["expected_output_hex"])
        if v["mode"] == "key":
            inst, positions = build(v, max_age_ms=None), range(len(msg))
        else:
            # Own salt = the vector's, so only flips inside the salt pay for a PBKDF2.
            inst = sh.Shield.with_password(v["password"], v["service"], max_age_ms=None,
                                           _salt=bytes.fromhex(v["salt_hex"]))
            positions = [0, 1, 9] + list(range(18, len(msg)))
        for i in positions:
            bad = bytearray(msg)
            bad[i] ^= 1 << (i % 8)
            expect_reject(inst, bytes(bad))
        expect_reject(inst, msg[:45 if v["mode"] == "password" else 29])
        expect_reject(inst, b"\x02" + msg[1:])
        expect_reject(inst, msg[:1] + b"\x03" + msg[2:])
        expect_reject(inst, b"")
        if v["mode"] == "key":
            expect_reject(sh.Shield.with_key(bytes(32), max_age_ms=None), msg)
        elif v["name"] == "password_basic":  # each wrong password costs a PBKDF2: one vector suffices
            expect_reject(sh.Shield.with_password("wrong", v["service"], max_age_ms=None), msg)
            expect_reject(sh.Shield.with_password(v["password"], "other.service", max_age_ms=None), msg)


def test_password_message_refused_by_key_instance(vectors):
    v = next(x for x in vectors if x["mode"] == "password")
    with pytest.raises(ShieldNitroError) as e:
        sh.Shield.with_key(bytes(32), max_age_ms=None).decrypt(bytes.fromhex(v["expected_output_hex"]))
    assert e.value.code == "format"


@pytest.mark.parametrize("suite", [sh.SUITE_AES_256_GCM, sh.SUITE_CHACHA20_POLY1305])
def test_round_trips_and_lengths(suite):
    key = os.urandom(32)
    s = sh.Shield.with_key(key, suite=suite)
    for n in (0, 1, 100, 5000):
        pt = os.urandom(n)
        msg = s.encrypt(pt)
        assert msg[1] == suite
        pad_len = len(msg) - n - 30 - 9
        assert sh.MIN_PADDING <= pad_len <= sh.MAX_PADDING
        assert s.decrypt(msg) == pt
    p = sh.Shield.with_password("pw", "svc", suite=suite, _iterations=1000)
    q = sh.Shield.with_password("pw", "svc", _iterations=1000)
    msg = p.encrypt(b"data")
    assert len(msg) - 4 - 46 - 9 in range(32, 129)
    assert q.decrypt(msg) == b"data"


def test_salt_cache_only_after_tag_verifies():
    sender = sh.Shield.with_password("pw", "svc", _iterations=1000)
    receiver = sh.Shield.with_password("pw", "svc", _iterations=1000, salt_cache_entries=2)
    forged = bytearray(sender.encrypt(b"x"))
    forged[-1] ^= 1
    expect_reject(receiver, bytes(forged))
    assert receiver.cached_salts() == 0
    receiver.decrypt(sender.encrypt(b"x"))
    assert receiver.cached_salts() == 1
    for _ in range(3):
        receiver.decrypt(sh.Shield.with_password("pw", "svc", _iterations=1000).encrypt(b"y"))
    assert receiver.cached_salts() == 2


def test_pad_len_sampling_rejects_high_bytes():
    seq = iter([bytes([250]), bytes([194]), bytes([193])])
    assert sh.draw_pad_len(lambda n: next(seq)) == 32 + 193 % 97


def test_bad_key_size():
    with pytest.raises(ShieldNitroError) as e:
        sh.Shield.with_key(b"short")
    assert e.value.code == "usage"
