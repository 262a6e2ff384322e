"""Edges the C++ verifier treats the same way: an indefinite-length outer COSE array (its head
is not signed) and the notAfter second (RFC 5280 §4.1.2.5: still valid)."""
import datetime as dt
import json

import cbor2
import pytest

from doc_ca import DocCa
from shield_nitro import attestation as att
from shield_nitro.errors import ShieldNitroError


@pytest.fixture(scope="module")
def real(fixtures_dir):
    entries = json.loads((fixtures_dir / "nsm" / "manifest.json").read_text())
    out = [e for e in entries if e["file"].startswith("real/")]
    for e in out:
        e["doc"] = (fixtures_dir / "nsm" / e["file"]).read_bytes()
    return out


def indefinite(doc, drop_tail=0):
    """The outer array head 84 re-encoded as 9f .. ff; the four elements' bytes unchanged."""
    assert doc[0] == 0x84
    return b"\x9f" + doc[1:len(doc) - drop_tail] + b"\xff"


def archived(e):
    return att.Policy(max_age_s=None, allow_debug=True)


def fails(doc, t, code="format", root=None):
    with pytest.raises(ShieldNitroError) as err:
        att.verify(doc, att.Policy(max_age_s=None, allow_debug=True), at_time=t, root=root)
    assert err.value.code == code, err.value
    return err.value.message


def test_indefinite_outer_array_verifies_like_the_original(real):
    for e in real:
        t = e["timestamp_ms"] / 1000
        doc = indefinite(e["doc"])
        a = att.verify(e["doc"], archived(e), at_time=t)
        b = att.verify(doc, archived(e), at_time=t)
        assert (b.module_id, b.pcrs, b.timestamp_ms) == (a.module_id, a.pcrs, a.timestamp_ms)
        att.verify(b"\xd2" + doc, archived(e), at_time=t)
        assert att.decode_cose_sign1(doc) == att.decode_cose_sign1(e["doc"])


def test_indefinite_outer_array_stays_strict_elsewhere(real):
    e = real[0]
    t = e["timestamp_ms"] / 1000
    good = indefinite(e["doc"])
    assert "array of 4" in fails(indefinite(e["doc"], drop_tail=98), t)   # three elements
    fails(good[:-1], t)                                                   # no break
    fails(good + b"\x00", t)                                              # trailing byte
    assert "array of 4" in fails(good[:-1] + b"\xf6\xff", t)              # five elements
    protected, payload, sig = att.decode_cose_sign1(e["doc"])
    chunked = (b"\x9f" + cbor2.dumps(protected) + b"\xa0\x5f" + cbor2.dumps(payload[:100]) +
               cbor2.dumps(payload[100:]) + b"\xff" + cbor2.dumps(sig) + b"\xff")
    assert "chunked" in fails(chunked, t)


def test_not_after_second_is_still_valid():
    ca = DocCa(start=dt.datetime(2025, 6, 15, 12, 0, 0, tzinfo=dt.timezone.utc))
    doc = ca.document()
    not_after = (ca.start + dt.timedelta(hours=3)).timestamp()   # the leaf's
    for t in (not_after, not_after + 0.999):
        att.verify(doc, att.Policy(max_age_s=None), root=ca.root, at_time=t)
    message = fails(doc, not_after + 1, "expired", root=ca.root)
    assert message == ("attestation: leaf is not valid at 2025-06-15T15:00:01+00:00 "
                       "(certificate expired or not yet valid)")


def test_real_documents_valid_through_their_last_second(real):
    for e in real:
        end = dt.datetime.fromisoformat(e["chain_valid_until"]).timestamp()
        att.verify(e["doc"], archived(e), at_time=end + 0.999)
        fails(e["doc"], end + 1, "expired")
