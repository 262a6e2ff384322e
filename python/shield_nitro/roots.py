"""Trust anchors for attestation documents.

The AWS Nitro Enclaves Root G1 ships inside the package and is pinned by the SHA-256 of its
DER (spec attestation.md §4). Note that the hash AWS prints next to the download,
8cf60e2b..., is the hash of the ZIP file, not of the certificate; never compare with it.

A different root (the NSM simulator's ``root.pem``) is used only when a caller passes it
explicitly, and then *instead of* AWS, never in addition to it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import ShieldNitroError, io_error

AWS_NITRO_ROOT_G1_PEM = b"""-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
"""

AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


class TrustRoot:
    """One root certificate that attestation chains must end at."""

    def __init__(self, der: bytes, name: str) -> None:
        """A root from its DER bytes; ``name`` appears in error messages."""
        if not isinstance(der, (bytes, bytearray, memoryview)):
            raise ShieldNitroError("usage", f"trust root {name}: DER bytes expected, got {type(der).__name__}")
        self.der = bytes(der)
        self.name = name
        try:
            self.cert = x509.load_der_x509_certificate(self.der)
        except ValueError as e:
            raise ShieldNitroError("format", f"trust root {name}: not a DER certificate ({e})") from None

    @classmethod
    def aws(cls) -> "TrustRoot":
        """AWS Nitro Enclaves Root G1, checked against its DER pin."""
        der = x509.load_pem_x509_certificate(AWS_NITRO_ROOT_G1_PEM).public_bytes(Encoding.DER)
        if hashlib.sha256(der).hexdigest() != AWS_NITRO_ROOT_G1_SHA256:
            raise ShieldNitroError("internal", "the embedded AWS Nitro root does not match its pin")
        return cls(der, "AWS Nitro Enclaves Root G1")

    @classmethod
    def from_pem(cls, pem: Union[bytes, str], name: str = "explicit root") -> "TrustRoot":
        """A root given by the caller, e.g. the simulator's DIR/root.pem contents."""
        if not isinstance(pem, (bytes, str)):
            raise ShieldNitroError("usage", f"trust root {name}: PEM text expected, got {type(pem).__name__}")
        try:
            cert = x509.load_pem_x509_certificate(pem if isinstance(pem, bytes) else pem.encode())
        except ValueError as e:
            raise ShieldNitroError("format", f"trust root {name}: not a PEM certificate ({e})") from None
        return cls(cert.public_bytes(Encoding.DER), name)

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "TrustRoot":
        """A root read from a PEM or DER file (e.g. the simulator's DIR/root.pem)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise io_error(path, e) from None
        return cls.from_pem(data, str(path)) if b"-----BEGIN" in data else cls(data, str(path))

    def sha256(self) -> str:
        """The SHA-256 of the root's DER, lowercase hex (compare with a published pin)."""
        return hashlib.sha256(self.der).hexdigest()
