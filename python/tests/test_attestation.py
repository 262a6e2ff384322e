import datetime as dt
import json

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from shield_nitro import attestation as att
from shield_nitro import cbor_strict
from shield_nitro.errors import ShieldNitroError
from shield_nitro.roots import AWS_NITRO_ROOT_G1_SHA256, TrustRoot


@pytest.fixture(scope="module")
def manifest(fixtures_dir):
    entries = json.loads((fixtures_dir / "nsm" / "manifest.json").read_text())
    real = [e for e in entries if e["file"].startswith("real/")]
    assert len(real) == 11
    for e in real:
        e["doc"] = (fixtures_dir / "nsm" / e["file"]).read_bytes()
    return real


def at(e):
    return e["timestamp_ms"] / 1000.0


def archived(e):
    return att.Policy(max_age_s=None, allow_debug=e["debug_mode_pcr0_zero"])


def rejects(doc, code=None, policy=None, t=None, **kw):
    with pytest.raises(ShieldNitroError) as err:
        att.verify(doc, policy or att.Policy(max_age_s=None, allow_debug=True), at_time=t, **kw)
    if code:
        assert err.value.code == code, err.value
    return err.value


def test_embedded_root_matches_fixture_and_pin(fixtures_dir):
    root = TrustRoot.aws()
    assert root.der == (fixtures_dir / "nsm" / "root" / "aws_nitro_enclaves_root_g1.der").read_bytes()
    assert root.sha256() == AWS_NITRO_ROOT_G1_SHA256


def test_every_real_document_verifies_inside_its_window(manifest):
    for e in manifest:
        claims = att.verify(e["doc"], archived(e), at_time=at(e))
        assert claims.module_id == e["module_id"]
        assert claims.timestamp_ms == e["timestamp_ms"]
        assert claims.debug == e["debug_mode_pcr0_zero"]
        assert len(claims.pcrs) == e["pcr_count"]
        for index, value in e["pcrs"].items():
            assert claims.pcrs[int(index)].hex() == value
        for name in ("public_key", "user_data", "nonce"):
            n = e[f"{name}_len"]
            assert (claims.optional[name] == att.NULL) if n is None else len(getattr(claims, name)) == n
        # Both ends of the chain window, given as datetimes.
        for bound in ("chain_valid_from", "chain_valid_until"):
            att.verify(e["doc"], archived(e), at_time=dt.datetime.fromisoformat(e[bound]))


def test_real_documents_fail_outside_window_and_now(manifest):
    for e in manifest:
        rejects(e["doc"], "expired")  # now
        start = dt.datetime.fromisoformat(e["chain_valid_from"]).timestamp()
        end = dt.datetime.fromisoformat(e["chain_valid_until"]).timestamp()
        rejects(e["doc"], "expired", t=start - 1)
        rejects(e["doc"], "expired", t=end + 1)


def test_debug_documents_need_allow_debug(manifest):
    debug = [e for e in manifest if e["debug_mode_pcr0_zero"]]
    assert len(debug) == 4
    for e in debug:
        err = rejects(e["doc"], "policy", policy=att.Policy(max_age_s=None), t=at(e))
        assert "debug" in err.message


def test_policy_pcrs_nonce_user_data_age(manifest):
    e = next(x for x in manifest if x["nonce_len"] == 256)
    doc, t = e["doc"], at(e)
    claims = att.verify(doc, att.Policy(max_age_s=None), at_time=t)
    pcr0 = claims.pcrs[0]
    att.verify(doc, att.Policy(pcrs={0: pcr0, 8: [bytes(48), claims.pcrs[8]]}, nonce=claims.nonce), at_time=t)
    rejects(doc, "policy", att.Policy(pcrs={0: bytes(48)}), t)
    rejects(doc, "policy", att.Policy(pcrs={20: bytes(48)}), t)
    rejects(doc, "policy", att.Policy(nonce=claims.nonce[:-1] + b"\0"), t)
    rejects(doc, "policy", att.Policy(user_data=b"x"), t)
    rejects(doc, "policy", att.Policy(require_public_key=True), t)
    rejects(doc, "policy", att.Policy(module_ids=["i-other"]), t)
    rejects(doc, "expired", att.Policy(max_age_s=10), t + 11)
    att.verify(doc, att.Policy(max_age_s=10), at_time=t + 9)
    rejects(doc, "expired", att.Policy(max_age_s=10), t - 6)
    # A nonce policy never falls back to user_data.
    ud = next(x for x in manifest if x["nonce_len"] is None and x["user_data_len"])
    claims = att.verify(ud["doc"], archived(ud), at_time=at(ud))
    rejects(ud["doc"], "policy", att.Policy(nonce=claims.user_data, allow_debug=True), at(ud))


def test_negative_fixtures(fixtures_dir):
    for name in ("basenv_corrupted_as_stored_upstream.cbor", "blocky_selfsigned_not_aws.cbor"):
        doc = (fixtures_dir / "nsm" / "negative" / name).read_bytes()
        rejects(doc, "format", t=1725700000)


def test_sig_structure_matches_derived(fixtures_dir):
    doc = (fixtures_dir / "nsm" / "real" / "anjuna_prod_2021-03-17.cbor").read_bytes()
    protected, payload, _ = att.decode_cose_sign1(doc)
    expected = (fixtures_dir / "nsm" / "derived" / "anjuna_prod_2021-03-17.sig_structure.bin").read_bytes()
    assert att.sig_structure(protected, payload) == expected


def envelope(doc):
    return cbor2.loads(doc)


def rebuild(parts, payload_map=None):
    p = list(parts)
    if payload_map is not None:
        p[2] = cbor2.dumps(payload_map)
    return cbor2.dumps(p)


def test_flipped_bytes_fail(manifest):
    e = manifest[0]
    doc, t = e["doc"], at(e)
    for i in range(0, len(doc), 29):
        bad = bytearray(doc)
        bad[i] ^= 0x01
        rejects(bytes(bad), t=t)
    # Targeted: a signature byte, a payload byte, a cabundle byte.
    protected, payload, sig = att.decode_cose_sign1(doc)
    for region, offset in ((sig, 10), (payload, 200), (payload, payload.find(envelope(payload)["cabundle"][1]) + 300)):
        bad = bytearray(doc)
        bad[doc.find(region) + offset] ^= 0x80
        rejects(bytes(bad), t=t)


def test_structural_mutations_fail(manifest):
    e = manifest[0]
    doc, t = e["doc"], at(e)
    parts = envelope(doc)
    m = cbor2.loads(parts[2])
    rejects(doc + b"\x00", "format", t=t)
    rejects(b"\xc6" + doc, "format", t=t)                      # tag 6
    att.verify(b"\xd2" + doc, archived(e), at_time=t)
    rejects(b"", "format")
    rejects(b"\x84" + b"\x40" * 3 + bytes(20000), "format")
    rejects(rebuild([parts[0], None, parts[2], parts[3]]), "format", t=t)
    rejects(rebuild([parts[0], {4: b"kid"}, parts[2], parts[3]]), "format", t=t)
    rejects(rebuild([bytes.fromhex("a201382203a0"), {}, parts[2], parts[3]]), "format", t=t)
    r, s = int.from_bytes(parts[3][:48], "big"), int.from_bytes(parts[3][48:], "big")
    rejects(rebuild([parts[0], {}, parts[2], encode_dss_signature(r, s)]), "format", t=t)
    other_root = dict(m, cabundle=[m["cabundle"][1]] + m["cabundle"][1:])
    rejects(rebuild(parts, other_root), "verify", t=t)
    dropped = dict(m, cabundle=[m["cabundle"][0], m["cabundle"][1], m["cabundle"][3]])
    rejects(rebuild(parts, dropped), "verify", t=t)
    # A duplicated key: cbor2 would keep the last one; the strict scanner refuses it.
    raw = cbor2.dumps(m)
    head = bytes([0xA0 + len(m) + 1]) + raw[1:] + cbor2.dumps("digest") + cbor2.dumps("SHA384")
    rejects(rebuild([parts[0], {}, head, parts[3]]), "format", t=t)
    for key, value in (("digest", "SHA256"), ("timestamp", 0), ("pcrs", {0: b"x"}), ("pcrs", {32: bytes(48)}),
                       ("module_id", ""), ("nonce", bytes(1025)), ("cabundle", []), ("certificate", b"")):
        rejects(rebuild(parts, dict(m, **{key: value})), "format", t=t)
    del m["module_id"]
    rejects(rebuild(parts, m), "format", t=t)


def test_strict_cbor_scanner():
    ok = [b"\x01", b"\xa2\x01\x02\x03\x04", b"\xbf\x01\x02\xff", b"\x9f\x01\xff", b"\xf6"]
    for data in ok:
        cbor_strict.check(data)
    bad = [b"", b"\x01\x02", b"\xa2\x01\x02\x01\x03", b"\xa2\x01\x02\x18\x01\x03", b"\x5f\x41\x00\xff",
           b"\xf7", b"\xf9\x00\x00", b"\xc1\x01", b"\x1c", b"\x42\x00", b"\xff", b"\xa1\x80\x01",
           b"\x81\x81\x81\x81\x81\x01", b"\xbf\x01", b"\x1f"]
    for data in bad:
        with pytest.raises(ShieldNitroError) as err:
            cbor_strict.check(data)
        assert err.value.code == "format", data
    with pytest.raises(ShieldNitroError):
        cbor_strict.check(b"\xb8\x41" + b"".join(cbor2.dumps(i) + b"\x00" for i in range(65)))


def test_alternative_root_replaces_aws(manifest, tmp_path):
    e = manifest[0]
    # The AWS document does not verify against another root, even though its bundle carries AWS.
    other = TrustRoot(att.decode_payload(att.decode_cose_sign1(e["doc"])[1])[0]["cabundle"][1], "intermediate")
    rejects(e["doc"], "verify", t=at(e), root=other)
