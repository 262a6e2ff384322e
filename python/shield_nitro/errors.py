"""The one exception type of the SDK.

Every failure is a ShieldNitroError carrying a short stable code string, the same names
the C++ side puts on the wire (docs/protocol.md): "usage", "io", "environment", "timeout",
"auth", "verify", "policy", "expired", "format", "unsupported", "not_found", "remote",
"internal". Callers branch on ``err.code``; ``err.message`` is one line for humans.
"""

CODES = (
    "usage", "io", "environment", "timeout", "auth", "verify", "policy", "expired",
    "format", "unsupported", "not_found", "remote", "internal",
)


class ShieldNitroError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __repr__(self):
        return f"ShieldNitroError({self.code!r}, {self.message!r})"
