"""Shield v4 messages (spec: shield-v4.md), byte-compatible with the C++ core and Guard8 Shield.

    s = Shield.with_key(key32)
    msg = s.encrypt(b"hello")
    assert s.decrypt(msg) == b"hello"           # ShieldNitroError("auth") if tampered

Wire: key mode ``0x13 | suite | nonce(12) | AEAD(inner)``, password mode
``0x03 | suite | salt(16) | nonce(12) | AEAD(inner)``; AAD is every byte before the nonce;
inner = ``u64le(timestamp_ms) | pad_len | padding | plaintext``.

Decrypt enforces a freshness window (default 60 s old, 5 s ahead) because v4 messages are for
transport; pass ``max_age_ms=None`` for data at rest. The window is not replay protection.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import OrderedDict
from typing import Callable, Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from .errors import ShieldNitroError

VERSION_PASSWORD = 0x03
VERSION_KEY = 0x13
SUITE_AES_256_GCM = 0x01
SUITE_CHACHA20_POLY1305 = 0x02
KEY_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
INNER_HEADER_SIZE = 9
MIN_PADDING = 32
MAX_PADDING = 128
PBKDF2_ITERATIONS = 600000
HKDF_AEAD_INFO = b"shield/aead/v4"
DEFAULT_MAX_AGE_MS = 60000
FUTURE_SKEW_MS = 5000

_AEADS = {SUITE_AES_256_GCM: AESGCM, SUITE_CHACHA20_POLY1305: ChaCha20Poly1305}
_MIN_LEN = {VERSION_PASSWORD: 2 + SALT_SIZE + NONCE_SIZE + TAG_SIZE, VERSION_KEY: 2 + NONCE_SIZE + TAG_SIZE}


def derive_master_key(password: Union[str, bytes], salt: bytes, service: Union[str, bytes],
                      iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """PBKDF2-HMAC-SHA256(password, salt || service) -> 32-byte master key (password mode)."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=bytes(salt) + _utf8(service),
                     iterations=iterations)
    return kdf.derive(_utf8(password))


def derive_aead_key(master: bytes) -> bytes:
    """HKDF-SHA256-Expand only (no Extract), info "shield/aead/v4", 32 bytes."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=KEY_SIZE, info=HKDF_AEAD_INFO).derive(bytes(master))


def draw_pad_len(random_bytes: Callable[[int], bytes] = os.urandom) -> int:
    """Uniform in [32, 128] by rejection sampling one byte at a time, as upstream does."""
    while True:
        v = random_bytes(1)[0]
        if v < 194:
            return MIN_PADDING + v % 97


def _utf8(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _now_ms():
    return time.time_ns() // 1_000_000


class _SaltCache:
    """Bounded LRU salt -> AEAD key, filled only after a tag verified (spec §9)."""

    def __init__(self, capacity):
        self._capacity = capacity
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get(self, salt):
        with self._lock:
            key = self._entries.get(salt)
            if key is not None:
                self._entries.move_to_end(salt)
            return key

    def put(self, salt, key):
        if self._capacity == 0:
            return
        with self._lock:
            self._entries[salt] = key
            self._entries.move_to_end(salt)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self):
        with self._lock:
            return len(self._entries)


class Shield:
    """One Shield instance: a key (key mode) or a password + service + own salt (password mode).

    Build with :meth:`with_key` or :meth:`with_password`. Thread-safe.
    Parameters starting with ``_`` are test seams that reproduce the conformance vectors;
    never use them on a production path.
    """

    def __init__(self, *, version: int, suite: int, max_age_ms: Optional[int], future_skew_ms: int,
                 clock: Optional[Callable[[], int]], aead_key: Optional[bytes] = None,
                 password: Optional[bytes] = None, service: Optional[bytes] = None, salt: Optional[bytes] = None,
                 iterations: int = PBKDF2_ITERATIONS, salt_cache_entries: int = 64) -> None:
        if suite not in _AEADS:
            raise ShieldNitroError("usage", f"shield: unknown suite 0x{suite:02x}")
        self._version = version
        self._suite = suite
        self.max_age_ms = max_age_ms
        self.future_skew_ms = future_skew_ms
        self._clock = clock or _now_ms
        self._aead_key = aead_key
        self._password = password
        self._service = service
        self._salt = salt
        self._iterations = iterations
        self._own_lock = threading.Lock()
        self._cache = _SaltCache(salt_cache_entries)

    @classmethod
    def with_key(cls, key: bytes, *, suite: int = SUITE_AES_256_GCM, max_age_ms: Optional[int] = DEFAULT_MAX_AGE_MS,
                 future_skew_ms: int = FUTURE_SKEW_MS, _clock: Optional[Callable[[], int]] = None) -> "Shield":
        """Key mode (0x13) with a 32-byte key; ``max_age_ms=None`` for data at rest."""
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise ShieldNitroError("usage", f"shield: a key must be {KEY_SIZE} bytes, got {type(key).__name__}")
        key = bytes(key)
        if len(key) != KEY_SIZE:
            raise ShieldNitroError("usage", f"shield: a key must be {KEY_SIZE} bytes, got {len(key)}")
        return cls(version=VERSION_KEY, suite=suite, max_age_ms=max_age_ms, future_skew_ms=future_skew_ms,
                   clock=_clock, aead_key=derive_aead_key(key))

    @classmethod
    def with_password(cls, password: Union[str, bytes], service: Union[str, bytes], *, suite: int = SUITE_AES_256_GCM,
                      max_age_ms: Optional[int] = DEFAULT_MAX_AGE_MS, future_skew_ms: int = FUTURE_SKEW_MS,
                      salt_cache_entries: int = 64, _salt: Optional[bytes] = None,
                      _iterations: int = PBKDF2_ITERATIONS, _clock: Optional[Callable[[], int]] = None) -> "Shield":
        """Password mode (0x03): PBKDF2 over password and service, a fresh 16-byte salt of its own."""
        if not isinstance(password, (str, bytes)) or not isinstance(service, (str, bytes)):
            raise ShieldNitroError("usage", "shield: password and service must be text or bytes")
        salt = bytes(_salt) if _salt is not None else os.urandom(SALT_SIZE)
        if len(salt) != SALT_SIZE:
            raise ShieldNitroError("usage", f"shield: a salt must be {SALT_SIZE} bytes")
        return cls(version=VERSION_PASSWORD, suite=suite, max_age_ms=max_age_ms, future_skew_ms=future_skew_ms,
                   clock=_clock, password=_utf8(password), service=_utf8(service), salt=salt,
                   iterations=_iterations, salt_cache_entries=salt_cache_entries)

    @property
    def suite(self) -> int:
        """The AEAD suite byte (0x01 AES-256-GCM, 0x02 ChaCha20-Poly1305)."""
        return self._suite

    @property
    def password_mode(self) -> bool:
        """True for password mode (0x03), False for key mode (0x13)."""
        return self._version == VERSION_PASSWORD

    def cached_salts(self) -> int:
        """How many peers' salts have a derived key cached (password mode)."""
        return len(self._cache)

    # -- encryption ---------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, *, _nonce: Optional[bytes] = None, _timestamp_ms: Optional[int] = None,
                _padding: Optional[bytes] = None) -> bytes:
        """A fresh v4 message for ``plaintext`` (bytes-like)."""
        if not isinstance(plaintext, (bytes, bytearray, memoryview)):
            raise ShieldNitroError("usage", f"shield: plaintext must be bytes, got {type(plaintext).__name__}")
        nonce = bytes(_nonce) if _nonce is not None else os.urandom(NONCE_SIZE)
        if _padding is None:
            _padding = os.urandom(draw_pad_len())
        padding = bytes(_padding)
        if len(nonce) != NONCE_SIZE or not MIN_PADDING <= len(padding) <= MAX_PADDING:
            raise ShieldNitroError("usage", "shield: bad injected nonce or padding")
        ts = self._clock() if _timestamp_ms is None else _timestamp_ms
        inner = struct.pack("<QB", ts & 0xFFFFFFFFFFFFFFFF, len(padding)) + padding + bytes(plaintext)
        aad = self._header()
        return aad + nonce + _AEADS[self._suite](self._own_key()).encrypt(nonce, inner, aad)

    def _header(self):
        head = bytes((self._version, self._suite))
        return head + self._salt if self.password_mode else head

    def _own_key(self):
        if not self.password_mode:
            return self._aead_key
        with self._own_lock:
            if self._aead_key is None:
                self._aead_key = derive_aead_key(
                    derive_master_key(self._password, self._salt, self._service, self._iterations))
            return self._aead_key

    # -- decryption ---------------------------------------------------------------------
    def decrypt(self, message: bytes) -> bytes:
        """The plaintext of a v4 message, or ShieldNitroError (format/unsupported/auth/expired)."""
        if not isinstance(message, (bytes, bytearray, memoryview)):
            raise ShieldNitroError("usage", f"shield: a message must be bytes, got {type(message).__name__}")
        msg = bytes(message)
        if not msg:
            raise ShieldNitroError("format", "shield: empty message")
        version = msg[0]
        if version not in _MIN_LEN:
            raise ShieldNitroError("unsupported", f"shield: unknown version byte 0x{version:02x} (only v4 0x03/0x13)")
        if len(msg) < _MIN_LEN[version]:
            raise ShieldNitroError("format", f"shield: message of {len(msg)} bytes is truncated")
        suite = msg[1]
        if suite not in _AEADS:
            raise ShieldNitroError("unsupported", f"shield: unknown suite 0x{suite:02x}")
        if version == VERSION_PASSWORD and not self.password_mode:
            raise ShieldNitroError("format", "shield: password-mode message given to a key-mode instance")
        head_len = 2 + (SALT_SIZE if version == VERSION_PASSWORD else 0)
        aad, nonce, body = msg[:head_len], msg[head_len:head_len + NONCE_SIZE], msg[head_len + NONCE_SIZE:]
        salt = msg[2:head_len] if version == VERSION_PASSWORD else None
        key = self._key_for(salt)
        try:
            inner = _AEADS[suite](key).decrypt(nonce, body, aad)
        except InvalidTag:
            raise ShieldNitroError("auth", "shield: authentication failed") from None
        if salt is not None and salt != self._salt:
            self._cache.put(salt, key)
        return self._unwrap_inner(inner)

    def _key_for(self, salt):
        if salt is None or salt == self._salt:
            return self._own_key()
        cached = self._cache.get(salt)
        if cached is not None:
            return cached
        return derive_aead_key(derive_master_key(self._password, salt, self._service, self._iterations))

    def _unwrap_inner(self, inner):
        if len(inner) < INNER_HEADER_SIZE:
            raise ShieldNitroError("auth", "shield: inner plaintext too short")
        ts, pad_len = struct.unpack_from("<QB", inner)
        if not MIN_PADDING <= pad_len <= MAX_PADDING or INNER_HEADER_SIZE + pad_len > len(inner):
            raise ShieldNitroError("auth", "shield: bad padding length")
        self._check_fresh(ts - (1 << 64) if ts >= 1 << 63 else ts)
        return inner[INNER_HEADER_SIZE + pad_len:]

    def _check_fresh(self, ts):
        if self.max_age_ms is None:
            return
        age = self._clock() - ts
        if age < -self.future_skew_ms:
            raise ShieldNitroError("expired", "shield: message timestamp is in the future")
        if age > self.max_age_ms:
            raise ShieldNitroError("expired", f"shield: message is {age} ms old (max {self.max_age_ms})")


def quick_encrypt(key: bytes, data: bytes) -> bytes:
    """Key mode, AES-256-GCM."""
    return Shield.with_key(key).encrypt(data)


def quick_decrypt(key: bytes, message: bytes, *, max_age_ms: Optional[int] = DEFAULT_MAX_AGE_MS) -> bytes:
    """Key mode; refuses messages older than ``max_age_ms`` (None: no window)."""
    return Shield.with_key(key, max_age_ms=max_age_ms).decrypt(message)

