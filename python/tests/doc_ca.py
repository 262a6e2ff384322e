"""A throw-away CA shaped like AWS's (root -> regional -> zonal -> instance -> leaf, all P-384)
that signs attestation documents, so the verifier's alternative-root path and the client's
channel can be tested without the C++ simulator. Not a test module itself (no test_ functions)."""
import datetime as dt

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from shield_nitro.attestation import sig_structure
from shield_nitro.roots import TrustRoot

KU_CA = dict(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
             key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False)
KU_LEAF = dict(KU_CA, key_cert_sign=False, crl_sign=False, content_commitment=True)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_key, subject, issuer_key, issuer, start, hours, ca, path_len, ku=None, bc_critical=True):
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + dt.timedelta(hours=hours))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=bc_critical)
         .add_extension(x509.KeyUsage(**(ku or (KU_CA if ca else KU_LEAF))), critical=ca))
    return b.sign(issuer_key, hashes.SHA384())


class DocCa:
    def __init__(self, start=None, **leaf_options):
        self.start = start or dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
        keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(5)]
        names = ["sim-root NOT AWS", "regional", "zonal", "instance", "i-0sim-enc0"]
        self.certs = [_cert(keys[0], names[0], keys[0], names[0], self.start, 24 * 365, True, None)]
        for i, path_len in ((1, 2), (2, 1), (3, 0)):
            self.certs.append(_cert(keys[i], names[i], keys[i - 1], names[i - 1], self.start, 48, True, path_len))
        self.leaf = _cert(keys[4], names[4], keys[3], names[3], self.start, 3, False, None, **leaf_options)
        self.leaf_key = keys[4]
        self.keys = keys
        self.root = TrustRoot(self.der(self.certs[0]), "test CA")

    @staticmethod
    def der(cert):
        return cert.public_bytes(serialization.Encoding.DER)

    def document(self, *, nonce=None, public_key=None, user_data=None, pcrs=None, timestamp_ms=None,
                 bundle=None, leaf=None):
        ts = timestamp_ms or int((self.start + dt.timedelta(minutes=5)).timestamp() * 1000)
        payload = cbor2.dumps({
            "module_id": "i-0sim-enc0", "digest": "SHA384", "timestamp": ts,
            "pcrs": pcrs or {i: bytes([i + 1]) * 48 for i in range(16)},
            "certificate": self.der(leaf or self.leaf),
            "cabundle": bundle or [self.der(c) for c in self.certs],
            "public_key": public_key, "user_data": user_data, "nonce": nonce})
        protected = bytes.fromhex("a1013822")
        r, s = decode_dss_signature(self.leaf_key.sign(sig_structure(protected, payload), ec.ECDSA(hashes.SHA384())))
        return cbor2.dumps([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])
