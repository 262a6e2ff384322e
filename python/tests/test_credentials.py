import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from shield_nitro import credentials as cr
from shield_nitro.errors import ShieldNitroError


class Imds(BaseHTTPRequestHandler):
    token = "tok-123"
    role = "enclave-role"
    expiration = "2030-01-01T00:00:00Z"
    calls = []

    def log_message(self, *args):
        pass

    def _reply(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        self.calls.append(("PUT", self.path))
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._reply(200, self.token)
        self._reply(400, "")

    def do_GET(self):
        self.calls.append(("GET", self.path))
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            return self._reply(401, "")
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path == base:
            return self._reply(200, self.role + "\n")
        if self.path == base + self.role:
            return self._reply(200, json.dumps({"Code": "Success", "AccessKeyId": "ASIAEXAMPLE",
                                                "SecretAccessKey": "secret", "Token": "session",
                                                "Expiration": self.expiration}))
        self._reply(404, "")


@pytest.fixture
def imds():
    server = HTTPServer(("127.0.0.1", 0), Imds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Imds.calls = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_environment():
    assert cr.from_environment({}) is None
    c = cr.from_environment({"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "SECRETX",
                             "AWS_SESSION_TOKEN": "TOKENX", "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"})
    assert (c.access_key_id, c.secret_access_key, c.session_token, c.expiration) == \
        ("AKIA", "SECRETX", "TOKENX", 1893456000)
    assert "SECRETX" not in repr(c) and "TOKENX" not in repr(c)
    assert c.to_body() == {"access_key_id": "AKIA", "secret_access_key": "SECRETX", "session_token": "TOKENX",
                           "expiration": 1893456000}


def test_shared_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s1\n\n"
                    "[other]\naws_access_key_id=AKIA2\naws_secret_access_key=s2\naws_session_token=t2\n"
                    "[broken]\naws_access_key_id=AKIA3\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path)}
    assert cr.from_shared_file(environ=env).access_key_id == "AKIA1"
    other = cr.from_shared_file(environ=dict(env, AWS_PROFILE="other"))
    assert (other.access_key_id, other.session_token) == ("AKIA2", "t2")
    assert cr.from_shared_file(environ=dict(env, AWS_PROFILE="missing")) is None
    with pytest.raises(ShieldNitroError):
        cr.from_shared_file(environ=dict(env, AWS_PROFILE="broken"))
    assert cr.from_shared_file(environ={"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}) is None


def test_imds_v2(imds):
    c = cr.from_imds(environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds})
    assert (c.access_key_id, c.secret_access_key, c.session_token, c.expiration) == \
        ("ASIAEXAMPLE", "secret", "session", 1893456000)
    assert Imds.calls[0] == ("PUT", "/latest/api/token")
    assert ("GET", "/latest/meta-data/iam/security-credentials/enclave-role") in Imds.calls


def test_imds_unreachable_and_errors(imds, monkeypatch):
    with pytest.raises(ShieldNitroError) as e:
        cr.from_imds(endpoint="http://127.0.0.1:1", timeout=0.5)
    assert e.value.code == "environment"
    monkeypatch.setattr(Imds, "role", "")
    with pytest.raises(ShieldNitroError):
        cr.from_imds(endpoint=imds)


def test_chain_order(tmp_path, imds):
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id=FILE\naws_secret_access_key=s\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds}
    assert cr.default_provider(environ=dict(env, AWS_ACCESS_KEY_ID="ENV", AWS_SECRET_ACCESS_KEY="s")).get() \
        .access_key_id == "ENV"
    assert cr.default_provider(environ=env).get().access_key_id == "FILE"
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    assert cr.default_provider(environ=env).get().access_key_id == "ASIAEXAMPLE"
    with pytest.raises(ShieldNitroError):
        cr.default_provider(environ=dict(env, AWS_EC2_METADATA_DISABLED="true")).get()


def test_provider_refreshes_before_expiry():
    now = [1000.0]
    issued = []

    def fetch():
        issued.append(cr.Credentials("K%d" % len(issued), "s", "t", int(now[0]) + 3600))
        return issued[-1]
    p = cr.CredentialsProvider(fetch, refresh_margin_s=300, clock=lambda: now[0])
    assert p.get().access_key_id == "K0"
    now[0] += 3000
    assert p.get().access_key_id == "K0"
    now[0] += 301
    assert p.get().access_key_id == "K1"
    assert p.get(force=True).access_key_id == "K2"


def test_bad_expiration():
    with pytest.raises(ShieldNitroError):
        cr.parse_iso8601("tomorrow")
