"""Chain profile checks with documents from a test CA (alternative root, never with AWS)."""
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from doc_ca import KU_CA, DocCa, _cert
from shield_nitro import attestation as att
from shield_nitro.errors import ShieldNitroError


@pytest.fixture(scope="module")
def ca():
    return DocCa()


def test_alternative_root_accepts_its_documents_only(ca):
    doc = ca.document(nonce=b"n" * 32)
    claims = att.verify(doc, att.Policy(nonce=b"n" * 32), root=ca.root)
    assert claims.module_id == "i-0sim-enc0" and not claims.debug
    with pytest.raises(ShieldNitroError) as e:      # the default root is AWS: a sim document fails
        att.verify(doc)
    assert e.value.code == "verify"


def test_live_freshness_against_now(ca):
    old = ca.document(timestamp_ms=int((ca.start + dt.timedelta(seconds=1)).timestamp() * 1000))
    with pytest.raises(ShieldNitroError) as e:
        att.verify(old, att.Policy(max_age_s=60), root=ca.root)
    assert e.value.code == "expired"


def test_chain_profile_violations(ca):
    other = ec.generate_private_key(ec.SECP384R1())
    inst_key, zonal_key = ca.keys[3], ca.keys[2]
    bundle = [ca.der(c) for c in ca.certs]

    def leaf_signed_by(key, issuer, subject_key=None):
        return _cert(subject_key or ca.leaf_key, "i-0sim-enc0", key, issuer, ca.start, 3, False, None)

    def with_instance(**kwargs):
        ca_flag, path_len = kwargs.pop("ca"), kwargs.pop("path_len")
        inst = _cert(inst_key, "instance", zonal_key, "zonal", ca.start, 48, ca_flag, path_len, **kwargs)
        return dict(bundle=bundle[:3] + [ca.der(inst)])

    extra = _cert(other, "extra", inst_key, "instance", ca.start, 48, True, None)
    cases = {
        "not a CA": with_instance(ca=False, path_len=None),
        "keyCertSign": with_instance(ca=True, path_len=0, ku=dict(KU_CA, key_cert_sign=False)),
        "critical": with_instance(ca=True, path_len=0, bc_critical=False),
        "pathLen": dict(bundle=bundle + [ca.der(extra)], leaf=leaf_signed_by(other, "extra")),
        "must not be a CA": dict(leaf=_cert(ca.leaf_key, "leaf", inst_key, "instance", ca.start, 3, True, None)),
        "P-384": dict(leaf=leaf_signed_by(inst_key, "instance", ec.generate_private_key(ec.SECP256R1()))),
        "certificate signature": dict(leaf=leaf_signed_by(other, "instance")),
        "issuer name": dict(leaf=leaf_signed_by(inst_key, "zonal")),
        "trusted root": dict(bundle=[ca.der(ca.certs[1])] + bundle[1:]),
    }
    for why, case in cases.items():
        with pytest.raises(ShieldNitroError) as e:
            att.verify(ca.document(**case), att.Policy(max_age_s=None), root=ca.root)
        assert e.value.code == "verify" and why in e.value.message, (why, e.value)
    # The unmodified chain passes with the same helpers, so the failures above are the mutations'.
    att.verify(ca.document(leaf=leaf_signed_by(inst_key, "instance")), att.Policy(max_age_s=None), root=ca.root)


def test_leaf_window_and_document_time(ca):
    late = ca.document(timestamp_ms=int((ca.start + dt.timedelta(hours=4)).timestamp() * 1000))
    with pytest.raises(ShieldNitroError) as e:
        att.verify(late, att.Policy(max_age_s=None), root=ca.root, at_time=ca.start + dt.timedelta(hours=2))
    assert "outside the leaf" in e.value.message
    with pytest.raises(ShieldNitroError) as e:
        att.verify(ca.document(), att.Policy(max_age_s=None), root=ca.root, at_time=ca.start + dt.timedelta(hours=3, seconds=1))
    assert e.value.code == "expired"
