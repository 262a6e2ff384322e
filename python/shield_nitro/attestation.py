"""Nitro attestation documents: strict decode, chain to a pinned root, COSE signature, policy.

    claims = verify(doc, Policy(pcrs={0: pcr0}, nonce=challenge))            # live, T = now
    claims = verify(doc, Policy(max_age_s=None), at_time=ts)                 # archived document
    claims = verify(doc, policy, root=TrustRoot.from_file("sim/root.pem"))   # simulator only

Follows spec attestation.md §5 (procedure) and §7 (relying-party policy). Nothing is returned
unless every step passed; every failure is one ShieldNitroError with code "format" (malformed),
"verify" (signature or chain), "expired" (validity or freshness) or "policy".
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hmac
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, Mapping, NoReturn, Optional, Sequence, Tuple, Union

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import cbor_strict
from .errors import ShieldNitroError
from .roots import TrustRoot

MAX_PAYLOAD = 16384
MAX_DOCUMENT = MAX_PAYLOAD + 1024
MAX_CERT = 1024
MAX_OPTIONAL = 1024
PROTECTED_ES384 = bytes.fromhex("a1013822")
SIGNATURE_SIZE = 96
PCR_SIZE = 48
COSE_SIGN1_TAG = 18
_OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")
_KNOWN_CRITICAL = {x509.oid.ExtensionOID.BASIC_CONSTRAINTS, x509.oid.ExtensionOID.KEY_USAGE}

ABSENT = "absent"
NULL = "null"
PRESENT = "present"


PcrValue = Union[bytes, bytearray, memoryview, str]
PcrExpectation = Union[PcrValue, Sequence[PcrValue]]
PINNING_PCRS = (0, 8)   # PCR0: the whole image; PCR8: the certificate that signed it


def _usage(why: str) -> "ShieldNitroError":
    return ShieldNitroError("usage", f"policy: {why}")


def _pcr_bytes(index: int, value: object) -> bytes:
    """One expected PCR value: 48 bytes, or 96 hex digits (converted)."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise _usage(f"PCR{index}: {value[:20]!r}... is not hex") from None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _usage(f"PCR{index}: expected 48 bytes or 96 hex digits, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != PCR_SIZE:
        raise _usage(f"PCR{index}: expected {PCR_SIZE} bytes, got {len(value)}")
    return value


def _pcr_expectation(index: object, expected: object) -> Tuple[int, Union[bytes, Tuple[bytes, ...]]]:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 31:
        raise _usage(f"PCR index {index!r} is not an integer in 0..31")
    if isinstance(expected, (bytes, bytearray, memoryview, str)):
        return index, _pcr_bytes(index, expected)
    if not isinstance(expected, (list, tuple)) or not expected:
        raise _usage(f"PCR{index}: expected a value or a non-empty list of acceptable values")
    return index, tuple(_pcr_bytes(index, v) for v in expected)


def _optional_bytes(value: object, name: str) -> Optional[bytes]:
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _usage(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _number(value: object, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise _usage(f"{name} must be a non-negative number of seconds, got {value!r}")
    return value


@dataclass(frozen=True)
class Policy:
    """What a relying party requires on top of a valid signature (spec §7). Checked when built:
    anything malformed is a UsageError here, never a TypeError later.

    pcrs:        {index 0..31: expected value, or a list of acceptable values (rolling upgrades)};
                 a value is 48 bytes or 96 hex digits (stored as bytes).
    nonce:       the challenge issued; compared in constant time. Never falls back to user_data.
    max_age_s:   document timestamp no older than this at check time (None: no freshness check,
                 only for archived documents); future_skew_s: how far ahead it may be.
    user_data / public_key: exact expected bytes when set; require_public_key: must be present.
    allow_debug: accept PCR0 == 0^48 (a --debug-mode enclave). Off by default.
    module_ids:  allow-list of module ids when set.
    any_enclave: opening a channel without PCR0 or PCR8 pinned is refused unless this is set;
                 set it only through :meth:`accept_any_enclave`, for experiments.
    """
    pcrs: Dict[int, PcrExpectation] = field(default_factory=dict)
    nonce: Optional[bytes] = None
    max_age_s: Optional[float] = 300.0
    future_skew_s: float = 5.0
    user_data: Optional[bytes] = None
    public_key: Optional[bytes] = None
    require_public_key: bool = False
    allow_debug: bool = False
    module_ids: Optional[Sequence[str]] = None
    any_enclave: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.pcrs, Mapping):
            raise _usage(f"pcrs must be a mapping of index to value, got {type(self.pcrs).__name__}")
        pcrs = dict(_pcr_expectation(i, v) for i, v in self.pcrs.items())
        set_ = functools.partial(object.__setattr__, self)   # frozen: validated once, here
        set_("pcrs", pcrs)
        for name in ("nonce", "user_data", "public_key"):
            set_(name, _optional_bytes(getattr(self, name), name))
        if self.max_age_s is not None:
            _number(self.max_age_s, "max_age_s")
        _number(self.future_skew_s, "future_skew_s")
        for name in ("require_public_key", "allow_debug", "any_enclave"):
            if not isinstance(getattr(self, name), bool):
                raise _usage(f"{name} must be True or False")
        if self.module_ids is not None:
            if isinstance(self.module_ids, str) or not all(isinstance(m, str) for m in self.module_ids):
                raise _usage("module_ids must be a list of strings")
            set_("module_ids", tuple(self.module_ids))

    @classmethod
    def accept_any_enclave(cls, **fields: object) -> "Policy":
        """A policy that pins no measurement: ANY enclave with a valid document passes.

        For experiments only: a channel opened with it may hand plaintext to code nobody
        identified. Production policies pin PCR0 (or PCR8)."""
        return cls(**fields, any_enclave=True)  # type: ignore[arg-type]

    @property
    def pinned(self) -> bool:
        """True when PCR0 or PCR8 is pinned, i.e. the policy names which enclave it trusts."""
        return any(i in self.pcrs for i in PINNING_PCRS)

    def with_nonce(self, nonce: bytes) -> "Policy":
        """This policy requiring ``nonce`` (a fresh challenge)."""
        return dataclasses.replace(self, nonce=nonce)


def _hex_pcrs(pcrs: Dict[int, bytes]) -> str:
    return "{" + ", ".join(f"{i}: {v.hex()}" for i, v in sorted(pcrs.items())) + "}"


@dataclass
class Claims:
    """What a verified document says. ``optional`` tells absent / null / present apart."""
    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: Dict[int, bytes]
    public_key: Optional[bytes]
    user_data: Optional[bytes]
    nonce: Optional[bytes]
    optional: Dict[str, str]
    certificate: bytes
    debug: bool

    def pcrs_hex(self) -> Dict[int, str]:
        """The PCRs as lowercase hex, as `eif describe` and `nitro-cli` print them."""
        return {i: v.hex() for i, v in sorted(self.pcrs.items())}

    def __repr__(self) -> str:
        return (f"Claims(module_id={self.module_id!r}, timestamp_ms={self.timestamp_ms}, debug={self.debug}, "
                f"pcrs={_hex_pcrs(self.pcrs)})")


def _fail(code: str, why: str) -> NoReturn:
    raise ShieldNitroError(code, f"attestation: {why}")


# -- envelope and payload ------------------------------------------------------------------

def decode_cose_sign1(doc: bytes) -> Tuple[bytes, bytes, bytes]:
    """(protected, payload, signature) of a strict COSE_Sign1 ES384 envelope (spec §1)."""
    doc = bytes(doc)
    if not 0 < len(doc) <= MAX_DOCUMENT:
        _fail("format", f"document of {len(doc)} bytes (allowed 1..{MAX_DOCUMENT})")
    envelope = cbor_strict.loads(doc, max_depth=2, max_entries=64, allow_outer_tag=COSE_SIGN1_TAG)
    if not isinstance(envelope, list) or len(envelope) != 4:
        _fail("format", "COSE_Sign1 must be an array of 4")
    # A definite (84) or indefinite (9f .. ff) array: its head is not signed, so both verify.
    if doc[0] not in (0x84, 0x9F, 0xD2) or (doc[0] == 0xD2 and doc[1] not in (0x84, 0x9F)):
        _fail("format", "COSE_Sign1 must be an array of 4")
    protected, unprotected, payload, signature = envelope
    if not isinstance(protected, bytes) or protected != PROTECTED_ES384:
        _fail("format", "protected header must be exactly {1: -35} (ES384)")
    if not isinstance(unprotected, dict) or unprotected:
        _fail("format", "unprotected header must be an empty map")
    if not isinstance(payload, bytes) or not 0 < len(payload) <= MAX_PAYLOAD:
        _fail("format", "payload must be a byte string of 1..16384 bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        _fail("format", "signature must be 96 bytes r||s")
    return protected, payload, signature


def _bstr(value, name, lo, hi):
    if not isinstance(value, bytes) or not lo <= len(value) <= hi:
        _fail("format", f"{name} must be a byte string of {lo}..{hi} bytes")
    return value


def _uint(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def decode_payload(payload: bytes) -> Tuple[dict, Dict[int, bytes], Dict[str, str]]:
    """The payload map, type- and limit-checked (spec §2)."""
    m = cbor_strict.loads(payload, max_depth=4, max_entries=64)
    if not isinstance(m, dict):
        _fail("format", "payload must be a map")
    if any(not isinstance(k, str) for k in m):
        _fail("format", "payload keys must be text")
    for key in ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"):
        if key not in m:
            _fail("format", f"payload lacks {key}")
    if not isinstance(m["module_id"], str) or not m["module_id"]:
        _fail("format", "module_id must be non-empty text")
    if m["digest"] != "SHA384":
        _fail("format", "digest must be SHA384")
    if not _uint(m["timestamp"]) or m["timestamp"] == 0:
        _fail("format", "timestamp must be a positive integer (ms)")
    pcrs = _decode_pcrs(m["pcrs"])
    _bstr(m["certificate"], "certificate", 1, MAX_CERT)
    bundle = m["cabundle"]
    if not isinstance(bundle, list) or not bundle:
        _fail("format", "cabundle must be a non-empty array")
    for i, der in enumerate(bundle):
        _bstr(der, f"cabundle[{i}]", 1, MAX_CERT)
    optional = {}
    for key in _OPTIONAL_FIELDS:
        if key not in m:
            optional[key] = ABSENT
        elif m[key] is None:
            optional[key] = NULL
        else:
            _bstr(m[key], key, 0, MAX_OPTIONAL)
            optional[key] = PRESENT
    return m, pcrs, optional


def _decode_pcrs(pcrs):
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        _fail("format", "pcrs must be a map of 1..32 entries")
    for index, value in pcrs.items():
        if not _uint(index) or index > 31:
            _fail("format", f"PCR index {index!r} is not in 0..31")
        _bstr(value, f"PCR{index}", PCR_SIZE, PCR_SIZE)
    return dict(pcrs)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """["Signature1", protected, h'', payload] in canonical CBOR (the bytes that are signed)."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


# -- certificates ---------------------------------------------------------------------------

def _parse_cert(der, name):
    """Strict DER (no trailing bytes). Parts cryptography decodes lazily are touched here so
    that a malformed key or extension is a format error now, not an exception later."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. odd country names in hostile certificates
            cert = x509.load_der_x509_certificate(der)
            cert.public_key(), cert.extensions, cert.signature_hash_algorithm, cert.subject, cert.issuer
        return cert
    except Exception as e:  # ValueError, UnsupportedAlgorithm, x509 parsing errors
        _fail("format", f"{name} is not a usable DER certificate ({type(e).__name__})")


def _utc(cert, attr):
    return getattr(cert, attr).replace(tzinfo=_dt.timezone.utc).timestamp()


def _check_validity(cert, name, t):
    # Whole seconds, both ends inclusive (RFC 5280 §4.1.2.5): the notAfter second is valid.
    t = math.floor(t)
    if not _utc(cert, "not_valid_before") <= t <= _utc(cert, "not_valid_after"):
        _fail("expired", f"{name} is not valid at {_dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat()} "
                         f"(certificate expired or not yet valid)")


def _check_signed_by(cert, issuer, name):
    if cert.issuer != issuer.subject:
        _fail("verify", f"{name}: issuer name does not match the next certificate's subject")
    key = issuer.public_key()
    hash_alg = cert.signature_hash_algorithm
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(hash_alg, (hashes.SHA384, hashes.SHA256,
                                                                                    hashes.SHA512)):
        _fail("verify", f"{name}: not signed with ECDSA")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
    except InvalidSignature:
        _fail("verify", f"{name}: certificate signature does not verify")


def _extension(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def _check_extensions_known(cert, name):
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _KNOWN_CRITICAL:
            _fail("verify", f"{name}: unknown critical extension {ext.oid.dotted_string}")


def _check_ca(cert, name, intermediates_below):
    _check_extensions_known(cert, name)
    bc = _extension(cert, x509.BasicConstraints)
    if bc is None or not bc.value.ca or not bc.critical:
        _fail("verify", f"{name}: not a CA (basicConstraints CA:TRUE, critical, required)")
    if bc.value.path_length is not None and intermediates_below > bc.value.path_length:
        _fail("verify", f"{name}: pathLen {bc.value.path_length} exceeded")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not ku.value.key_cert_sign:
        _fail("verify", f"{name}: keyUsage lacks keyCertSign")


def _check_leaf(cert):
    _check_extensions_known(cert, "leaf")
    bc = _extension(cert, x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        _fail("verify", "leaf: must not be a CA")
    ku = _extension(cert, x509.KeyUsage)
    if ku is None or not ku.value.digital_signature:
        _fail("verify", "leaf: keyUsage lacks digitalSignature")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        _fail("verify", "leaf: key is not on P-384")


def verify_chain(leaf_der: bytes, cabundle: Sequence[bytes], root: TrustRoot, t: float) -> x509.Certificate:
    """leaf <- cabundle[n-1] <- ... <- cabundle[1] <- pinned root, at Unix time ``t``.

    cabundle[0] must be byte-identical to the pinned root; its copy is never used otherwise.
    Returns the leaf certificate.
    """
    if not hmac.compare_digest(cabundle[0], root.der):
        _fail("verify", f"cabundle[0] is not the trusted root ({root.name})")
    path = [root.cert] + [_parse_cert(der, f"cabundle[{i}]") for i, der in enumerate(cabundle[1:], 1)]
    leaf = _parse_cert(leaf_der, "certificate")
    names = ["root"] + [f"cabundle[{i}]" for i in range(1, len(cabundle))]
    _check_signed_by(root.cert, root.cert, "root")
    for i, (cert, name) in enumerate(zip(path, names)):
        _check_validity(cert, name, t)
        _check_ca(cert, name, len(path) - 1 - i)
        if i:
            _check_signed_by(cert, path[i - 1], name)
    _check_validity(leaf, "leaf", t)
    _check_leaf(leaf)
    _check_signed_by(leaf, path[-1], "leaf")
    return leaf


def verify_cose_signature(leaf: x509.Certificate, protected: bytes, payload: bytes, signature: bytes) -> None:
    """ES384 over the Sig_structure with the leaf's key; VerificationError when it does not verify."""
    der_sig = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        leaf.public_key().verify(der_sig, sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        _fail("verify", "COSE signature does not verify with the leaf key")


# -- policy ---------------------------------------------------------------------------------

def _pcr_matches(actual, expected):
    choices = [expected] if isinstance(expected, (bytes, bytearray)) else list(expected)
    ok = False
    for choice in choices:
        ok |= hmac.compare_digest(actual, bytes(choice))
    return ok


def apply_policy(claims: Claims, policy: Policy, t: float) -> None:
    """The relying-party checks (spec §7) on claims whose signature already verified, at time ``t``."""
    if policy.max_age_s is not None:
        ts = claims.timestamp_ms / 1000.0
        if ts < t - policy.max_age_s:
            _fail("expired", f"document is {t - ts:.0f} s old (max {policy.max_age_s:.0f} s)")
        if ts > t + policy.future_skew_s:
            _fail("expired", "document timestamp is in the future")
    if policy.nonce is not None:
        if claims.nonce is None or not hmac.compare_digest(claims.nonce, bytes(policy.nonce)):
            _fail("policy", "nonce does not match the challenge")
    for index, expected in sorted(policy.pcrs.items()):
        actual = claims.pcrs.get(index)
        if actual is None:
            _fail("policy", f"PCR{index} is required but missing")
        if not _pcr_matches(actual, expected):
            _fail("policy", f"PCR{index} does not match the policy")
    if claims.debug and not policy.allow_debug:
        _fail("policy", "debug-mode enclave (PCR0 is all zero) refused; set allow_debug to accept")
    _check_bytes_field(claims.user_data, policy.user_data, "user_data")
    _check_bytes_field(claims.public_key, policy.public_key, "public_key")
    if policy.require_public_key and not claims.public_key:
        _fail("policy", "public_key is required but absent")
    if policy.module_ids is not None and claims.module_id not in policy.module_ids:
        _fail("policy", f"module_id {claims.module_id} is not allowed")


def _check_bytes_field(actual, expected, name):
    if expected is not None and (actual is None or not hmac.compare_digest(actual, bytes(expected))):
        _fail("policy", f"{name} does not match the policy")


# -- entry point ----------------------------------------------------------------------------

def _to_unix(at_time):
    if at_time is None:
        return time.time()
    if isinstance(at_time, _dt.datetime):
        if at_time.tzinfo is None:
            at_time = at_time.replace(tzinfo=_dt.timezone.utc)
        return at_time.timestamp()
    if not isinstance(at_time, (int, float)) or isinstance(at_time, bool):
        raise ShieldNitroError("usage", f"verify: at_time must be a datetime or Unix seconds, got {at_time!r}")
    return float(at_time)


@functools.lru_cache(maxsize=1)
def _aws_root():
    return TrustRoot.aws()


def verify(doc: bytes, policy: Optional[Policy] = None, *, root: Optional[TrustRoot] = None,
           at_time: Union[None, float, _dt.datetime] = None) -> Claims:
    """Verify an attestation document and return its Claims, or raise ShieldNitroError.

    root: a TrustRoot; default AWS Nitro Enclaves Root G1. Pass the simulator's root to accept
    simulator documents (then AWS documents fail: one root, never both).
    at_time: verification time (datetime or Unix seconds); default now. Use the document's
    timestamp only for archived documents, with ``Policy(max_age_s=None)``.
    """
    policy = policy if policy is not None else Policy()
    if not isinstance(policy, Policy):
        raise ShieldNitroError("usage", f"verify: policy must be a Policy, got {type(policy).__name__}")
    if not isinstance(doc, (bytes, bytearray, memoryview)):
        raise ShieldNitroError("usage", f"verify: the document must be bytes, got {type(doc).__name__}")
    root = root if root is not None else _aws_root()
    if not isinstance(root, TrustRoot):
        raise ShieldNitroError("usage", f"verify: root must be a TrustRoot, got {type(root).__name__}")
    t = _to_unix(at_time)
    protected, payload, signature = decode_cose_sign1(doc)
    m, pcrs, optional = decode_payload(payload)
    leaf = verify_chain(m["certificate"], m["cabundle"], root, t)
    verify_cose_signature(leaf, protected, payload, signature)
    ts_s = m["timestamp"] // 1000
    if not _utc(leaf, "not_valid_before") <= ts_s <= _utc(leaf, "not_valid_after"):
        _fail("verify", "document timestamp is outside the leaf certificate's validity")
    claims = Claims(
        module_id=m["module_id"], digest=m["digest"], timestamp_ms=m["timestamp"], pcrs=pcrs,
        public_key=m.get("public_key"), user_data=m.get("user_data"), nonce=m.get("nonce"),
        optional=optional, certificate=m["certificate"], debug=pcrs.get(0) == bytes(PCR_SIZE))
    apply_policy(claims, policy, t)
    return claims

