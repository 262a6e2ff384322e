"""EnclaveClient against an in-process fake enclave (the real service is exercised in test_e2e)."""
import io
import os
import time

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from doc_ca import DocCa
from fake_server import FakeServer
from shield_nitro import EnclaveClient, Policy, Shield, ShieldNitroError
from shield_nitro import channel as ch
from shield_nitro.credentials import Credentials

DATA_KEY = bytes(range(32))


class FakeEnclave:
    def __init__(self, ca, pcrs):
        self.ca, self.pcrs = ca, pcrs
        self.key = X25519PrivateKey.generate()
        self.pending, self.sessions = {}, {}
        self.creds = None
        self.pushes = 0
        self.artifacts = {}
        self.refresh_hint = False
        self.seen_plain = []

    def spki(self):
        return self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def __call__(self, op, body, parts):
        self.seen_plain.append(op)
        out = self.dispatch(op, body, parts, in_channel=False)
        if self.refresh_hint:
            out["refresh_credentials"] = True
        return out

    def dispatch(self, op, body, parts, in_channel):
        if op in ("invoke", "decrypt") and not in_channel:
            raise ShieldNitroError("policy", f"'{op}' is answered only inside the attested channel")
        return getattr(self, "op_" + op.replace("-", "_"))(body, parts)

    def op_describe(self, body, parts):
        return {"version": "test", "module_id": "i-0sim-enc0", "digest": "SHA384", "pcrs": self.pcrs}

    def op_attest(self, body, parts):
        doc = self.ca.document(nonce=body["nonce"], public_key=self.spki(), pcrs=self.pcrs,
                               user_data=body.get("user_data"), timestamp_ms=int(time.time() * 1000))
        self.pending[body["nonce"]] = doc
        return {"document": doc}

    def op_channel_open(self, body, parts):
        doc = self.pending.pop(body["nonce"])
        shared = ch.agree(self.key, body["client_public"])
        keys = ch.derive_session_keys(shared, ch.transcript_hash(body["nonce"], doc, body["client_public"]))
        self.sessions[keys.session_id] = ch.SealedBox(keys, ch.ENCLAVE)
        return {"session": keys.session_id}

    def op_sealed(self, body, parts):
        box = self.sessions[body["session"]]
        req = cbor2.loads(box.open(body["data"]))
        try:
            out = {"ok": True, "body": self.dispatch(req["op"], req["body"], [], in_channel=True)}
        except ShieldNitroError as e:
            out = {"ok": False, "error": {"code": e.code, "message": e.message}}
        return {"data": box.seal(cbor2.dumps(out))}

    def op_set_credentials(self, body, parts):
        self.creds = body
        self.pushes += 1
        return {"expires_at": body.get("expiration")}

    def op_load_key(self, body, parts):
        if self.creds is None:
            raise ShieldNitroError("environment", "no AWS credentials")
        return {"handle": "key-1", "key_id": body.get("key_id", "arn")}

    def op_load_artifact(self, body, parts):
        blob = b"".join(p.get("data", b"") for p in parts)
        if "size" in body and body["size"] != len(blob):   # as the enclave refuses it
            raise ShieldNitroError("format", f"artifact is {len(blob)} bytes, announced {body['size']}")
        plain = Shield.with_key(DATA_KEY, max_age_ms=None).decrypt(blob)
        handle = f"art-{len(self.artifacts) + 1}"
        self.artifacts[handle] = plain
        return {"handle": handle, "kind": body["kind"], "name": body["name"], "size": len(plain),
                "parts": len(parts), "announced": body.get("size")}

    def op_invoke(self, body, parts):
        return {"output": self.artifacts[body["artifact"]] + b":" + body["input"]}

    def op_encrypt(self, body, parts):
        return {"ciphertext": Shield.with_key(DATA_KEY).encrypt(body["plaintext"])}

    def op_decrypt(self, body, parts):
        return {"plaintext": Shield.with_key(DATA_KEY).decrypt(body["ciphertext"])}

    def op_unload(self, body, parts):
        if self.artifacts.pop(body["handle"], None) is None:
            raise ShieldNitroError("not_found", "no such handle")
        return {}


PCRS = {i: bytes([i + 1]) * 48 for i in range(16)}


@pytest.fixture
def enclave(tmp_path):
    fake = FakeEnclave(DocCa(), PCRS)
    server = FakeServer(str(tmp_path / "enclave.sock"), fake)
    yield fake, server.endpoint
    server.close()


def test_full_flow_through_the_channel(enclave):
    fake, endpoint = enclave
    creds = Credentials("AKIA", "SECRET", "TOKEN", int(time.time()) + 3600)
    with EnclaveClient.connect(endpoint, chunk_size=4096) as client:
        assert client.describe()["module_id"] == "i-0sim-enc0"
        with pytest.raises(ShieldNitroError) as e:
            client.invoke("art-1", b"x")
        assert e.value.code == "usage"
        chan = client.open_channel(Policy(pcrs={0: PCRS[0], 3: PCRS[3]}), root=fake.ca.root)
        assert len(chan.session_id) == 16
        with pytest.raises(ShieldNitroError) as e:     # KMS needs credentials: none and no provider
            client.load_key(b"blob", key_id="arn:k")
        assert e.value.code == "environment"
        assert client.push_credentials(creds) == creds.expiration
        key = client.load_key(b"blob", key_id="arn:k", encryption_context={"app": "demo"})
        artifact = os.urandom(50_000)
        blob = Shield.with_key(DATA_KEY).encrypt(artifact)
        model = client.load_artifact(key["handle"], io.BytesIO(blob), kind="model", name="m")
        assert model["size"] == len(artifact) and model["parts"] == -(-len(blob) // 4096) + 1
        out = client.invoke(model["handle"], b"input")
        assert out == artifact + b":input"
        ct = client.encrypt(key["handle"], b"secret text")
        assert client.decrypt(key["handle"], ct) == b"secret text"
        with pytest.raises(ShieldNitroError) as e:
            client.unload("art-99")
        assert e.value.code == "not_found"
    # invoke/decrypt never crossed the parent in the clear.
    assert "invoke" not in fake.seen_plain and "decrypt" not in fake.seen_plain


def test_load_artifact_from_path(enclave, tmp_path):
    fake, endpoint = enclave
    path = tmp_path / "model.shield"
    path.write_bytes(Shield.with_key(DATA_KEY).encrypt(b"weights"))
    with EnclaveClient.connect(endpoint) as client:
        loaded = client.load_artifact("key-1", path)
        assert loaded["name"] == "model.shield"
        assert loaded["announced"] == path.stat().st_size   # a regular file announces its size
        prefixed = tmp_path / "prefixed.bin"                # what is left of a file read in part
        prefixed.write_bytes(b"abc" + path.read_bytes())
        with open(prefixed, "rb") as f:
            f.read(3)
            assert client.load_artifact("key-1", f)["announced"] == path.stat().st_size
        # A pipe or in-memory stream has no size to announce.
        assert client.load_artifact("key-1", io.BytesIO(path.read_bytes()))["announced"] is None
        with pytest.raises(ShieldNitroError):
            client.load_artifact("key-1", path, kind="binary")


def test_policy_mismatch_refuses_channel(enclave):
    fake, endpoint = enclave
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(ShieldNitroError) as e:
            client.open_channel(Policy(pcrs={0: bytes(48)}), root=fake.ca.root)
        assert e.value.code == "policy"
        with pytest.raises(ShieldNitroError) as e:      # default root: AWS, so the test CA fails
            client.open_channel(Policy())
        assert e.value.code == "verify"
        assert client.channel is None
        doc, claims = client.attest_and_verify(Policy(pcrs={4: PCRS[4]}), root=fake.ca.root, user_data=b"ud")
        assert claims.user_data == b"ud" and len(claims.nonce) == 32


def test_credentials_pushed_on_refresh_hint_and_missing(enclave):
    fake, endpoint = enclave
    creds = Credentials("AKIA", "SECRET", None, int(time.time()) + 60)
    with EnclaveClient.connect(endpoint, credentials=creds) as client:
        client.load_key(b"blob")                     # "environment" -> push -> retry
        assert fake.pushes == 1
        fake.refresh_hint = True
        client.describe()
        assert fake.pushes >= 2 and fake.creds["access_key_id"] == "AKIA"


def test_enclave_with_wrong_session_is_refused(enclave, monkeypatch):
    fake, endpoint = enclave
    original = fake.op_channel_open

    def lying_open(body, parts):
        original(body, parts)
        return {"session": bytes(16)}
    monkeypatch.setattr(fake, "op_channel_open", lying_open)
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(ShieldNitroError) as e:
            client.open_channel(Policy(), root=fake.ca.root)
        assert e.value.code == "verify"
