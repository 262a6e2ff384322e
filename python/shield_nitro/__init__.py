"""shield-nitro parent SDK (Python)."""
from .errors import ShieldNitroError
from .shield import Shield

__all__ = ["ShieldNitroError", "Shield"]
