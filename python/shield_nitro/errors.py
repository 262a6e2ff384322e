"""The SDK's one exception type and its subclasses, one per kind of failure.

Every failure is a ShieldNitroError carrying a short stable code string, the same names
the C++ side puts on the wire (docs/protocol.md): "usage", "io", "environment", "timeout",
"auth", "verify", "policy", "expired", "format", "unsupported", "not_found", "remote",
"internal". Callers branch on ``err.code`` or catch a subclass; ``err.message`` is one line
for humans. ``ShieldNitroError(code, message)`` builds the subclass that matches ``code``:

    UsageError         usage                          (also a ValueError: the caller's mistake)
    VerificationError  verify, policy, expired, auth  (refused: not the enclave or data wanted)
    FormatError        format, unsupported            (malformed input or answer)
    IoError            io, timeout, environment       (connection, file, credentials, time)
    RemoteError        not_found, remote, internal    (the enclave reported a failure)
"""
from __future__ import annotations

import os
from typing import Dict, Tuple, Type

CODES: Tuple[str, ...] = (
    "usage", "io", "environment", "timeout", "auth", "verify", "policy", "expired",
    "format", "unsupported", "not_found", "remote", "internal",
)


class ShieldNitroError(Exception):
    """A failure of the SDK or of the enclave; ``code`` says which kind (see the module doc)."""

    code: str
    message: str

    def __new__(cls, code: str, message: str = "") -> "ShieldNitroError":
        if cls is ShieldNitroError:
            cls = _SUBCLASS.get(code, RemoteError)
        return super().__new__(cls)

    def __init__(self, code: str, message: str = "") -> None:
        if code not in CODES:
            message, code = f"{code}: {message}", "remote"
        prefix = f"{code}: "
        while message.startswith(prefix):  # "format: format: x" says nothing more than once
            message = message[len(prefix):]
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class UsageError(ShieldNitroError, ValueError):
    """The caller passed something the SDK cannot use (code "usage")."""


class VerificationError(ShieldNitroError):
    """Refused: a signature, chain, policy, freshness or authentication check failed."""


class FormatError(ShieldNitroError):
    """Malformed or unsupported bytes: a document, message, file or answer."""


class IoError(ShieldNitroError):
    """The connection, a file, the credential sources or a timeout failed."""


class RemoteError(ShieldNitroError):
    """The enclave answered with a failure of its own (e.g. an unknown handle)."""


_SUBCLASS: Dict[str, Type[ShieldNitroError]] = {
    "usage": UsageError,
    "verify": VerificationError, "policy": VerificationError, "expired": VerificationError,
    "auth": VerificationError,
    "format": FormatError, "unsupported": FormatError,
    "io": IoError, "timeout": IoError, "environment": IoError,
    "not_found": RemoteError, "remote": RemoteError, "internal": RemoteError,
}


def prefixed(op: str, message: str) -> str:
    """``"op: message"`` unless the message already names ``op`` first (no "attest: attest: ...")."""
    return message if message == op or message.startswith(f"{op}:") else f"{op}: {message}"


def io_error(what: object, err: OSError) -> ShieldNitroError:
    """A ShieldNitroError for an OSError on ``what`` (a path): not_found is "io" like the rest."""
    return ShieldNitroError("io", f"{os.fspath(what) if isinstance(what, os.PathLike) else what}: "
                                  f"{err.strerror or err}")
