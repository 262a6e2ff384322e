"""Strict CBOR well-formedness checks for untrusted bytes (attestation documents).

cbor2 is a lenient decoder: it keeps the last of duplicate map keys and ignores trailing
bytes. ``check(data, ...)`` walks the encoding first and refuses everything a genuine Nitro
document never contains (spec attestation.md §3); only then does ``loads`` hand the bytes to
cbor2 for the values.

Refused: truncation, trailing bytes, reserved additional-info values, indefinite-length byte
or text strings, tags (except an allowed outermost one), undefined / floats / other simple
values, maps with non-scalar or duplicate keys, more than ``max_entries`` map entries, and
nesting deeper than ``max_depth``.
"""

import cbor2

from .errors import ShieldNitroError


def _fail(why):
    raise ShieldNitroError("format", f"cbor: {why}")


class _Scanner:
    def __init__(self, data, max_depth, max_entries):
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.max_entries = max_entries

    def byte(self):
        if self.pos >= len(self.data):
            _fail("truncated input")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n):
        if n > len(self.data) - self.pos:
            _fail(f"a length of {n} overruns the input")
        start = self.pos
        self.pos += n
        return start

    def head(self):
        """(major, argument or None for indefinite, additional info)."""
        b = self.byte()
        major, info = b >> 5, b & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            start = self.take(1 << (info - 24))
            return major, int.from_bytes(self.data[start:self.pos], "big"), info
        if info == 31:
            return major, None, info
        _fail(f"reserved additional information {info}")

    def item(self, depth, allow_tag=False):
        if depth > self.max_depth:
            _fail(f"nesting deeper than {self.max_depth}")
        major, arg, info = self.head()
        if major in (0, 1):
            if arg is None:
                _fail("indefinite-length integer")
        elif major in (2, 3):
            if arg is None:
                _fail("indefinite-length (chunked) string")
            self.take(arg)
        elif major == 4:
            self.array(arg, depth)
        elif major == 5:
            self.map(arg, depth)
        elif major == 6:
            if not allow_tag or arg is None:
                _fail(f"unexpected tag {arg}")
            self.item(depth)
        else:
            self.simple(arg, info)

    def simple(self, arg, info):
        if info == 31:
            _fail("unexpected break")
        if info >= 25 or arg not in (20, 21, 22):
            _fail("only false, true and null simple values are allowed")

    def at_break(self):
        if self.pos < len(self.data) and self.data[self.pos] == 0xFF:
            self.pos += 1
            return True
        return False

    def array(self, n, depth):
        count = 0
        while (n is None and not self.at_break()) or (n is not None and count < n):
            self.item(depth + 1)
            count += 1

    def map(self, n, depth):
        keys = set()
        count = 0
        while (n is None and not self.at_break()) or (n is not None and count < n):
            count += 1
            if count > self.max_entries:
                _fail(f"a map with more than {self.max_entries} entries")
            key = self.key()
            if key in keys:
                _fail(f"duplicate map key {key[1]!r}")
            keys.add(key)
            self.item(depth + 1)

    def key(self):
        start = self.pos
        major, arg, _ = self.head()
        if major not in (0, 1, 2, 3) or arg is None:
            _fail("map keys must be integers or definite strings")
        if major in (2, 3):
            self.take(arg)
        # Compare decoded values: 0x01 and 0x1801 are the same key.
        return type(k := cbor2.loads(self.data[start:self.pos])), k


def check(data, *, max_depth=4, max_entries=64, allow_outer_tag=None):
    """Raise ShieldNitroError("format") unless ``data`` is exactly one strict CBOR item."""
    data = bytes(data)
    s = _Scanner(data, max_depth, max_entries)
    if allow_outer_tag is not None and data[:1] and data[0] >> 5 == 6:
        _, tag, _ = s.head()
        if tag != allow_outer_tag:
            _fail(f"unexpected tag {tag}")
    s.item(1)
    if s.pos != len(data):
        _fail(f"{len(data) - s.pos} trailing bytes")


def loads(data, **limits):
    """check() then decode with cbor2. Tags allowed by check() are stripped."""
    check(data, **limits)
    value = cbor2.loads(bytes(data))
    return value.value if isinstance(value, cbor2.CBORTag) else value
