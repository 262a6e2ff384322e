"""shield-nitro parent SDK (Python): talk to an enclave service, verify its attestation,
and exchange sealed data with it over the attested channel. See README.md."""
from .attestation import Claims, Policy, verify
from .channel import SealedBox
from .client import Channel, EnclaveClient
from .credentials import Credentials, CredentialsProvider, default_provider
from .errors import FormatError, IoError, RemoteError, ShieldNitroError, UsageError, VerificationError
from .results import ArtifactInfo, CredentialState, Description, KeyHandle, Stats
from .roots import TrustRoot
from .shield import Shield
from .transport import Connection, Endpoint

__version__ = "0.1.0"
__all__ = ["ArtifactInfo", "Channel", "Claims", "Connection", "CredentialState", "Credentials", "CredentialsProvider",
           "Description", "EnclaveClient", "Endpoint", "FormatError", "IoError", "KeyHandle", "Policy", "RemoteError",
           "SealedBox", "Shield", "ShieldNitroError", "Stats", "TrustRoot", "UsageError", "VerificationError",
           "default_provider", "verify"]
