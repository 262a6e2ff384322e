"""EnclaveClient against an in-process fake enclave (the real service is exercised in test_e2e)."""
import io
import os
import threading
import time

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from doc_ca import DocCa
from fake_server import FakeServer
from shield_nitro import (ArtifactInfo, EnclaveClient, IoError, KeyHandle, Policy, Shield, ShieldNitroError,
                          UsageError)
from shield_nitro import channel as ch
from shield_nitro.credentials import Credentials
from shield_nitro.errors import FormatError

DATA_KEY = bytes(range(32))


class FakeEnclave:
    def __init__(self, ca, pcrs):
        self.ca, self.pcrs = ca, pcrs
        self.key = X25519PrivateKey.generate()
        self.pending, self.sessions = {}, {}
        self.creds = None
        self.pushes = 0
        self.sealed_pushes = 0
        self.artifacts = {}
        self.uploads = []
        self.keys = []
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
        if op == "set-credentials" and in_channel:
            self.sealed_pushes += 1
        return getattr(self, "op_" + op.replace("-", "_"))(body, parts)

    def op_describe(self, body, parts):
        return {"version": "test", "module_id": "i-0sim-enc0", "digest": "SHA384", "pcrs": self.pcrs,
                "keys": self.keys,
                "artifacts": [{"handle": h, "kind": "model", "name": "m", "size": len(p)}
                              for h, p in self.artifacts.items()],
                "credentials": {"present": self.creds is not None, "expires_at": None, "refresh_needed": False}}

    def op_attest(self, body, parts):
        doc = self.ca.document(nonce=body["nonce"], public_key=self.spki(), pcrs=self.pcrs,
                               user_data=body.get("user_data"), timestamp_ms=int(time.time() * 1000))
        self.pending[body["nonce"]] = doc
        return {"document": doc}

    def op_channel_open(self, body, parts):
        doc = self.pending.pop(body["nonce"])
        version, pad = ch.negotiate(body.get("versions") or [], body.get("pad") or 0)
        shared = ch.agree(self.key, body["client_public"])
        keys = ch.derive_session_keys(shared, ch.transcript_hash(body["nonce"], doc, body["client_public"], version, pad),
                                      pad)
        self.sessions[keys.session_id] = ch.SealedBox(keys, ch.ENCLAVE)
        return {"session": keys.session_id, "version": version, "pad": pad}

    def op_sealed(self, body, parts):
        box = self.sessions[body["session"]]
        plain, seq = box.open_request(body["data"])
        req = cbor2.loads(plain)
        try:
            out = {"ok": True, "body": self.dispatch(req["op"], req["body"], [], in_channel=True)}
        except ShieldNitroError as e:
            out = {"ok": False, "error": {"code": e.code, "message": e.message}}
        return {"data": box.seal_reply(seq, cbor2.dumps(out))}

    def op_set_credentials(self, body, parts):
        self.creds = body
        self.pushes += 1
        return {"expires_at": body.get("expiration")}

    def op_load_key(self, body, parts):
        if self.creds is None:
            raise ShieldNitroError("environment", "no AWS credentials")
        self.keys = [{"handle": "key-1", "key_id": body.get("key_id", "arn")}]
        return self.keys[0]

    def op_load_artifact(self, body, parts):
        blob = b"".join(p.get("data", b"") for p in parts)
        if "size" in body and body["size"] != len(blob):   # as the enclave refuses it
            raise ShieldNitroError("format", f"artifact is {len(blob)} bytes, announced {body['size']}")
        # A stream container (which this fake cannot open) is kept as it came.
        plain = blob if blob[:4] in (b"SNST", b"SNSL") else Shield.with_key(DATA_KEY, max_age_ms=None).decrypt(blob)
        handle = f"art-{len(self.artifacts) + 1}"
        self.artifacts[handle] = plain
        self.uploads.append({"parts": len(parts), "announced": body.get("size"), "models": body.get("models"), "key": body.get("key"),
                             "sizes": [len(p["data"]) for p in parts if "data" in p], "blob": blob})
        return {"handle": handle, "kind": body["kind"], "name": body["name"], "size": len(plain)}

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
        assert client.describe().module_id == "i-0sim-enc0"
        with pytest.raises(ShieldNitroError) as e:
            client.invoke("art-1", b"x")
        assert e.value.code == "usage"
        chan = client.open_channel(Policy(pcrs={0: PCRS[0], 3: PCRS[3]}), root=fake.ca.root)
        assert len(chan.session_id) == 16
        with pytest.raises(ShieldNitroError) as e:     # KMS needs credentials: none and no provider
            client.load_key(b"blob", key_id="arn:k")
        assert e.value.code == "environment"
        assert client.push_credentials(creds) == creds.expiration
        assert fake.sealed_pushes == 1   # once the channel is open, credentials travel sealed
        key = client.load_key(b"blob", key_id="arn:k", encryption_context={"app": "demo"})
        artifact = os.urandom(50_000)
        blob = Shield.with_key(DATA_KEY).encrypt(artifact)
        assert key == KeyHandle("key-1", "arn:k")
        model = client.load_artifact(key, io.BytesIO(blob), kind="model", name="m")
        assert model == ArtifactInfo("art-1", "model", "m", len(artifact))
        assert fake.uploads[-1]["parts"] == -(-len(blob) // 4096) + 1
        code = client.load_artifact(key.handle, io.BytesIO(blob), kind="code", name="c", models=[model])
        assert fake.uploads[-1]["models"] == ["art-1"]
        out = client.invoke(model.handle, b"input")
        assert out == artifact + b":input" and client.invoke(code, b"") == artifact + b":"
        ct = client.encrypt(key.handle, b"secret text")
        assert client.decrypt(key, ct) == b"secret text"
        described = client.describe()
        assert described.keys == (key,) and described.artifacts[0] == model and described.credentials.present
        assert described.pcrs[0] == PCRS[0] and described.pcrs_hex()[0] == PCRS[0].hex()
        assert PCRS[1].hex() in repr(described)          # PCRs show as lowercase hex
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
        assert loaded.name == "model.shield"
        assert fake.uploads[-1]["announced"] == path.stat().st_size   # a regular file announces its size
        prefixed = tmp_path / "prefixed.bin"                # what is left of a file read in part
        prefixed.write_bytes(b"abc" + path.read_bytes())
        with open(prefixed, "rb") as f:
            f.read(3)
            client.load_artifact("key-1", f)
            assert fake.uploads[-1]["announced"] == path.stat().st_size
        # A pipe or in-memory stream has no size to announce.
        client.load_artifact("key-1", io.BytesIO(path.read_bytes()))
        assert fake.uploads[-1]["announced"] is None
        with pytest.raises(UsageError):
            client.load_artifact("key-1", path, kind="binary")
        with pytest.raises(IoError) as e:                    # not a bare FileNotFoundError
            client.load_artifact("key-1", tmp_path / "missing.shield")
        assert e.value.code == "io" and "missing.shield" in e.value.message
        with pytest.raises(UsageError):
            client.load_artifact("key-1", io.StringIO("text"))


def fake_stream(chunk, records, last, password=False):
    """Bytes shaped like a stream container (docs/stream-format.md): header, then records."""
    header = b"SNST\x01\x01" + bytes([0x03 if password else 0x13]) + chunk.to_bytes(4, "big")
    header += os.urandom((66 if password else 50) - len(header))
    return header + os.urandom((chunk + 16) * records + last)


@pytest.mark.parametrize("password", [False, True])
def test_a_stream_goes_one_record_per_part_by_sendfile_or_reads(enclave, tmp_path, monkeypatch, password):
    fake, endpoint = enclave
    blob = fake_stream(100, 5, 40, password)
    header = 66 if password else 50
    path = tmp_path / "model.snst"
    path.write_bytes(b"xyz" + blob)
    calls = []
    real_sendfile = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(a) or real_sendfile(*a))
    with EnclaveClient.connect(endpoint, chunk_size=64) as client:
        with open(path, "rb") as f:          # a regular file, read in part: sendfile from where it stands
            f.read(3)
            client.load_artifact("key-1", f)
            assert f.tell() == 3 + len(blob)
        up = fake.uploads[-1]
        assert up["blob"] == blob and up["announced"] == len(blob)
        assert up["sizes"] == [header] + [116] * 5 + [40]
        assert len(calls) >= 7               # every part's bytes went by sendfile
        calls.clear()
        client.load_artifact("key-1", io.BytesIO(blob))   # no file: read, cut the same way
        assert fake.uploads[-1]["blob"] == blob and fake.uploads[-1]["sizes"] == [header] + [116] * 5 + [40]
        assert not calls
        client.connection._sock.settimeout(30)              # a socket with a timeout: parts are read
        with open(path, "rb") as f:
            f.read(3)
            client.load_artifact("key-1", f)
        assert not calls and fake.uploads[-1]["sizes"] == [header] + [116] * 5 + [40]
        client.connection._sock.settimeout(None)
        # A v4 message (or anything else) goes in chunk_size parts, both ways.
        v4 = Shield.with_key(DATA_KEY).encrypt(os.urandom(1000))
        (tmp_path / "m.shield").write_bytes(v4)
        client.load_artifact("key-1", tmp_path / "m.shield")
        assert fake.uploads[-1]["sizes"] == [64] * (len(v4) // 64) + [len(v4) % 64] * (len(v4) % 64 > 0)
        client.load_artifact("key-1", io.BytesIO(v4))
        assert fake.uploads[-1]["sizes"] == [64] * (len(v4) // 64) + [len(v4) % 64] * (len(v4) % 64 > 0)


def test_a_sealed_file_goes_without_a_key_cut_after_its_sealed_header(enclave, tmp_path):
    fake, endpoint = enclave
    sealed_header = b"SNSL\x01" + (300).to_bytes(4, "big") + os.urandom(291)
    blob = sealed_header + fake_stream(1000, 3, 500)
    (tmp_path / "m.sealed").write_bytes(blob)
    with EnclaveClient.connect(endpoint) as client:
        for source in (tmp_path / "m.sealed", io.BytesIO(blob)):
            client.load_artifact(None, source)
            up = fake.uploads[-1]
            assert up["key"] is None and up["blob"] == blob
            assert up["sizes"] == [300 + 50, 1016, 1016, 1016, 500]
        client.load_artifact("key-1", tmp_path / "m.sealed")   # the enclave refuses this pairing, not the SDK
        assert fake.uploads[-1]["key"] == "key-1"
        with pytest.raises(UsageError):
            client.load_artifact("", tmp_path / "m.sealed")   # an empty handle is a mistake, not "sealed"


def test_a_file_part_is_the_frame_a_read_part_would_be(tmp_path):
    from shield_nitro import transport
    a, b = __import__("socket").socketpair()
    with a, b:
        conn = transport.Connection(a)
        data = os.urandom(70_000)
        (tmp_path / "f").write_bytes(b"..." + data)
        with open(tmp_path / "f", "rb") as f:
            conn._send_file_part(7, "data", f.fileno(), 3, len(data))
        expected = transport.encode_frame(transport.encode_request(7, None, {"data": data}, more=True))
        got = b""
        while len(got) < len(expected):
            got += b.recv(len(expected) - len(got))
        assert got == expected
        conn.close()


def test_policy_mismatch_refuses_channel(enclave):
    fake, endpoint = enclave
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(ShieldNitroError) as e:
            client.open_channel(Policy(pcrs={0: bytes(48)}), root=fake.ca.root)
        assert e.value.code == "policy"
        with pytest.raises(ShieldNitroError) as e:      # default root: AWS, so the test CA fails
            client.open_channel(Policy(pcrs={0: PCRS[0]}))
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
            client.open_channel(Policy(pcrs={8: PCRS[8]}), root=fake.ca.root)
        assert e.value.code == "verify"


def test_channel_refused_unless_the_policy_pins_the_enclave(enclave):
    fake, endpoint = enclave
    with EnclaveClient.connect(endpoint) as client:
        for unpinned in (None, Policy(), Policy(pcrs={3: PCRS[3]}), Policy(allow_debug=True)):
            with pytest.raises(UsageError) as e:
                client.open_channel(unpinned, root=fake.ca.root)
            assert "PCR0" in e.value.message and isinstance(e.value, ValueError)
        with pytest.raises(UsageError):
            client.open_channel(root=fake.ca.root)
        assert client.channel is None and "attest" not in fake.seen_plain   # refused before any request
        with pytest.raises(UsageError):
            client.invoke("art-1", b"x")
        assert client.open_channel(Policy(pcrs={8: [bytes(48), PCRS[8]]}), root=fake.ca.root).claims.pcrs[8] == PCRS[8]
        chan = client.open_channel(Policy.accept_any_enclave(), root=fake.ca.root)   # loud opt-out
        assert chan.claims.module_id and client.channel is chan


def test_attest_nonce_of_1_to_512_bytes(enclave):
    fake, endpoint = enclave
    with EnclaveClient.connect(endpoint) as client:
        for size in (1, 33, 512):
            nonce = os.urandom(size)
            doc, claims = client.attest_and_verify(Policy(pcrs={0: PCRS[0]}), root=fake.ca.root, nonce=nonce)
            assert claims.nonce == nonce
        assert sorted(len(n) for n in fake.pending) == [1, 33, 512]
        for bad in (b"", os.urandom(513), "00" * 32, 32):
            with pytest.raises(UsageError):
                client.attest(bad)
        assert len(fake.pending) == 3                     # refused before sending anything
        before = set(fake.pending)
        client.attest()
        assert [len(n) for n in set(fake.pending) - before] == [32]   # 32 random bytes by default


def test_typed_results_refuse_malformed_answers(enclave, monkeypatch):
    fake, endpoint = enclave
    monkeypatch.setattr(fake, "op_load_key", lambda body, parts: {"handle": 7})
    fake.creds = {}
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(FormatError) as e:
            client.load_key(b"blob")
        assert e.value.message == "load-key: response lacks handle (str)"


def test_remote_error_messages_name_the_op_once(enclave, monkeypatch):
    fake, endpoint = enclave

    def refuse(body, parts):
        raise ShieldNitroError("format", "attest: nonce must be 32 bytes")
    monkeypatch.setattr(fake, "op_attest", refuse)
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(FormatError) as e:
            client.attest(b"n")
        assert str(e.value) == "format: attest: nonce must be 32 bytes"


def test_concurrent_calls_in_a_padded_channel(enclave, monkeypatch):
    """Threads share one channel: the fake enclave answers each request on its own thread and
    accepts them only in seq order, so this passes only if seal+send is atomic per request and
    each reply is matched to its own request. pad=128 makes every record a multiple of 128."""
    fake, endpoint = enclave
    sizes = []
    original = fake.op_sealed
    monkeypatch.setattr(fake, "op_sealed", lambda body, parts: sizes.append(len(body["data"])) or original(body, parts))
    with EnclaveClient.connect(endpoint) as client:
        chan = client.open_channel(Policy(pcrs={0: PCRS[0]}), root=fake.ca.root, pad=128)
        results = []

        def worker():
            for _ in range(10):
                results.append(chan.call("describe")["module_id"])
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["i-0sim-enc0"] * 40
        assert len(sizes) == 40 and all((n - ch.HEADER_SIZE - ch.TAG_SIZE) % 128 == 0 for n in sizes)
        with pytest.raises(ShieldNitroError) as e:
            client.open_channel(Policy(pcrs={0: PCRS[0]}), root=fake.ca.root, pad=70000)
        assert e.value.code == "usage"


def test_old_enclave_refusal_reaches_the_caller(enclave, monkeypatch):
    """An enclave refusing the offered versions: the SDK surfaces its message unchanged."""
    fake, endpoint = enclave
    monkeypatch.setattr(fake, "op_channel_open", lambda body, parts: ch.negotiate([1]))
    with EnclaveClient.connect(endpoint) as client:
        with pytest.raises(ShieldNitroError, match="upgrade the SDK") as e:
            client.open_channel(Policy(pcrs={0: PCRS[0]}), root=fake.ca.root)
        assert e.value.code == "verify" and client.channel is None
