"""Typed results of EnclaveClient operations (the C++ SDK's KeyHandle / ArtifactInfo twins).

Built from the enclave's response bodies; a body that lacks a field or has the wrong type is a
FormatError naming the operation, so callers never meet a KeyError or TypeError.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import ShieldNitroError


def _get(body: Mapping[str, Any], op: str, name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ShieldNitroError("format", f"{op}: response lacks {name} ({kind.__name__})")
    return value


def _uint(body: Mapping[str, Any], op: str, name: str) -> int:
    value = _get(body, op, name, int)
    if value < 0:
        raise ShieldNitroError("format", f"{op}: {name} is negative")
    return value


@dataclass(frozen=True)
class KeyHandle:
    """A data key released by KMS into the enclave: ``handle`` names it in later calls."""
    handle: str
    key_id: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any], op: str = "load-key") -> "KeyHandle":
        """From a load-key answer (or a describe entry)."""
        return cls(_get(body, op, "handle", str), _get(body, op, "key_id", str))

    def __str__(self) -> str:
        return self.handle


@dataclass(frozen=True)
class ArtifactInfo:
    """A model or code artifact decrypted inside the enclave; ``size`` is its plaintext bytes."""
    handle: str
    kind: str
    name: str
    size: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any], op: str = "load-artifact") -> "ArtifactInfo":
        """From a load-artifact answer (or a describe entry)."""
        return cls(_get(body, op, "handle", str), _get(body, op, "kind", str), _get(body, op, "name", str),
                   _uint(body, op, "size"))

    def __str__(self) -> str:
        return self.handle


@dataclass(frozen=True)
class CredentialState:
    """Whether the enclave holds AWS credentials, until when, and whether it wants new ones."""
    present: bool
    expires_at: Optional[int]
    refresh_needed: bool


@dataclass(frozen=True)
class Description:
    """The enclave's ``describe`` answer. PCRs are bytes; ``pcrs_hex()`` gives lowercase hex."""
    version: str
    module_id: str
    digest: str
    pcrs: Dict[int, bytes]
    keys: Tuple[KeyHandle, ...]
    artifacts: Tuple[ArtifactInfo, ...]
    credentials: CredentialState

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Description":
        """From a describe answer."""
        op = "describe"
        pcrs = _get(body, op, "pcrs", dict)
        if not all(isinstance(i, int) and isinstance(v, bytes) for i, v in pcrs.items()):
            raise ShieldNitroError("format", f"{op}: pcrs must map integers to byte strings")
        cred = _get(body, op, "credentials", dict)
        expires = cred.get("expires_at")
        return cls(_get(body, op, "version", str), _get(body, op, "module_id", str), _get(body, op, "digest", str),
                   dict(sorted(pcrs.items())),
                   tuple(KeyHandle.from_body(_map(k, op), op) for k in _get(body, op, "keys", list)),
                   tuple(ArtifactInfo.from_body(_map(a, op), op) for a in _get(body, op, "artifacts", list)),
                   CredentialState(cred.get("present") is True, expires if isinstance(expires, int) else None,
                                   cred.get("refresh_needed") is True))

    def pcrs_hex(self) -> Dict[int, str]:
        """The PCRs as lowercase hex, as `eif describe` and `nitro-cli` print them."""
        return {i: v.hex() for i, v in self.pcrs.items()}

    def __repr__(self) -> str:
        pcrs = ", ".join(f"{i}: {v}" for i, v in self.pcrs_hex().items())
        return (f"Description(version={self.version!r}, module_id={self.module_id!r}, pcrs={{{pcrs}}}, "
                f"keys={list(self.keys)!r}, artifacts={list(self.artifacts)!r}, credentials={self.credentials!r})")


@dataclass(frozen=True)
class Stats:
    """The enclave service's counters (``stats``): requests and errors per op, latency in µs."""
    uptime_ms: int
    connections: int
    sessions: int
    requests: Dict[str, int] = field(default_factory=dict)
    errors: Dict[str, int] = field(default_factory=dict)
    latency_us: Dict[str, Dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Stats":
        """From a stats answer."""
        op = "stats"
        return cls(_get(body, op, "uptime_ms", int), _uint(body, op, "connections"), _uint(body, op, "sessions"),
                   dict(_get(body, op, "requests", dict)), dict(_get(body, op, "errors", dict)),
                   dict(body.get("latency_us") or {}))


def _map(value: Any, op: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ShieldNitroError("format", f"{op}: list entries must be maps")
    return value
