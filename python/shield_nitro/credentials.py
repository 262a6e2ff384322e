"""AWS credentials for the enclave's KMS calls, pushed with ``set-credentials``.

Sources, in the order ``default_provider()`` tries them (like the AWS SDKs):
  1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
     AWS_CREDENTIAL_EXPIRATION (ISO 8601, optional);
  2. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, section
     AWS_PROFILE (default "default");
  3. EC2 instance metadata, IMDSv2 only: PUT /latest/api/token, then the role name and its
     credentials under /latest/meta-data/iam/security-credentials/. The endpoint is
     AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254); AWS_EC2_METADATA_DISABLED=true
     skips it.

Temporary credentials carry an expiry; a provider hands out cached credentials until they are
within ``refresh_margin_s`` of it, then fetches new ones.
"""

from __future__ import annotations

import configparser
import datetime as _dt
import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Union

from .errors import ShieldNitroError, io_error

IMDS_DEFAULT_ENDPOINT = "http://169.254.169.254"
IMDS_TOKEN_TTL_S = 21600
_IMDS_ROLE_PATH = "/latest/meta-data/iam/security-credentials/"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: Optional[str] = None
    expiration: Optional[int] = None      # Unix seconds; None: long-term keys
    source: str = ""

    def __repr__(self) -> str:  # never print the secret or the token
        return (f"Credentials(access_key_id={self.access_key_id!r}, expiration={self.expiration}, "
                f"source={self.source!r})")

    def expires_within(self, seconds: float, now: Optional[float] = None) -> bool:
        """True when these credentials expire less than ``seconds`` from ``now`` (default: now)."""
        return self.expiration is not None and self.expiration - (now or time.time()) < seconds

    def to_body(self) -> Dict[str, Union[str, int]]:
        """The ``set-credentials`` request body (docs/enclave-api.md)."""
        body = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        if self.session_token:
            body["session_token"] = self.session_token
        if self.expiration is not None:
            body["expiration"] = int(self.expiration)
        return body


def parse_iso8601(text: str) -> int:
    """'2024-05-01T12:00:00Z' (or with an offset / fraction) -> Unix seconds."""
    try:
        value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ShieldNitroError("format", f"credentials: bad expiration time {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return int(value.timestamp())


def from_environment(environ: Optional[Mapping[str, str]] = None) -> Optional[Credentials]:
    """AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and token, expiration); None when unset."""
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    expiry = env.get("AWS_CREDENTIAL_EXPIRATION")
    return Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None,
                       parse_iso8601(expiry) if expiry else None, "environment")


def from_shared_file(path: Union[None, str, "os.PathLike[str]"] = None, profile: Optional[str] = None,
                     environ: Optional[Mapping[str, str]] = None) -> Optional[Credentials]:
    """A profile of the shared credentials file; None when the file or the profile is absent."""
    env = os.environ if environ is None else environ
    path = path or env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    profile = profile or env.get("AWS_PROFILE") or "default"
    if not os.path.exists(path):
        return None
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise io_error(path, e) from None
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ShieldNitroError("format", f"credentials file {path}: {e}") from None
    if not parser.has_section(profile):
        return None
    section = parser[profile]
    key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not key or not secret:
        raise ShieldNitroError("format", f"credentials file {path}: profile {profile} lacks the key id or secret")
    return Credentials(key.strip(), secret.strip(), (section.get("aws_session_token") or "").strip() or None,
                       None, f"shared file {path} [{profile}]")


def _imds_call(url, method="GET", headers=None, timeout=2.0):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read(1 << 20).decode("utf-8")
    except urllib.error.HTTPError as e:
        raise ShieldNitroError("environment", f"IMDS {method} {url}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ShieldNitroError("environment", f"IMDS {method} {url}: {getattr(e, 'reason', e)}") from None


def from_imds(endpoint: Optional[str] = None, timeout: float = 2.0,
              environ: Optional[Mapping[str, str]] = None) -> Credentials:
    """Role credentials from the instance metadata service (IMDSv2 session token required)."""
    env = os.environ if environ is None else environ
    base = (endpoint or env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS_DEFAULT_ENDPOINT).rstrip("/")
    token = _imds_call(base + "/latest/api/token", "PUT",
                       {"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_S)}, timeout)
    auth = {"X-aws-ec2-metadata-token": token.strip()}
    roles = _imds_call(base + _IMDS_ROLE_PATH, headers=auth, timeout=timeout).split()
    if not roles:
        raise ShieldNitroError("environment", "IMDS: the instance has no IAM role")
    doc = _imds_call(base + _IMDS_ROLE_PATH + roles[0], headers=auth, timeout=timeout)
    try:
        data = json.loads(doc)
    except ValueError:
        raise ShieldNitroError("format", "IMDS: role credentials are not JSON") from None
    if not isinstance(data, dict) or data.get("Code", "Success") != "Success":
        raise ShieldNitroError("environment", f"IMDS: role credentials unavailable ({data.get('Code')!r})")
    try:
        return Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token"),
                           parse_iso8601(data["Expiration"]) if data.get("Expiration") else None,
                           f"IMDS role {roles[0]}")
    except (KeyError, TypeError):
        raise ShieldNitroError("format", "IMDS: role credentials lack AccessKeyId/SecretAccessKey") from None


class CredentialsProvider:
    """Caches credentials from ``fetch`` (a callable) and refetches them before they expire."""

    def __init__(self, fetch: Callable[[], Optional[Credentials]], refresh_margin_s: float = 300,
                 clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self.refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached = None

    def get(self, force: bool = False) -> Credentials:
        """Cached credentials, fetched anew when absent, near expiry, or ``force``."""
        with self._lock:
            if force or self._cached is None or self._cached.expires_within(self.refresh_margin_s, self._clock()):
                creds = self._fetch()
                if creds is None:
                    raise ShieldNitroError("environment", "no AWS credentials found")
                self._cached = creds
            return self._cached


def static_provider(creds: Credentials) -> CredentialsProvider:
    """A provider that always hands out ``creds``."""
    return CredentialsProvider(lambda: creds)


def _chain(environ=None):
    env = os.environ if environ is None else environ
    for source in (from_environment, from_shared_file):
        creds = source(environ=env)
        if creds is not None:
            return creds
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    return from_imds(environ=env)


def default_provider(refresh_margin_s: float = 300,
                     environ: Optional[Mapping[str, str]] = None) -> CredentialsProvider:
    """Environment, then the shared file, then IMDSv2; refreshed before expiry."""
    return CredentialsProvider(lambda: _chain(environ), refresh_margin_s)
