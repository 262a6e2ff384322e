"""End to end against the real processes: nsm-sim + kms-local + `shield-nitro-enclave serve`, driven by the SDK.

attest -> verify (simulator root, PCR0 policy) -> channel -> push credentials -> load-key (KMS
releases the data key only to the attested enclave) -> load a model (Shield stream) and a code
plugin (Shield v4) -> invoke and decrypt through the channel.

The ``stack`` fixture starts everything under a temp dir and always stops it (a
``shield_nitro.testing.ProcessStack``); it skips with the reason when the CLI (run outside ctest)
or one of its commands is missing. The EIF + simulator + proxy flow, with byte recording, is
tests/examples/e2e_test.py.
"""
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO
from shield_nitro import EnclaveClient, Policy, Shield, ShieldNitroError, TrustRoot
from shield_nitro.credentials import from_shared_file
from shield_nitro.testing import ProcessStack, free_port, port_open

ACCOUNT = "111122223333"
ENCLAVE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-enclave"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-admin"
REGION = "us-east-1"

# A plugin whose output proves it saw both its model and the input: input XOR model (cycled).
PLUGIN_C = r"""
#include <stdlib.h>
#include <string.h>
#include "shield_nitro/plugin_abi.h"
typedef struct { uint8_t* model; size_t len; } st;
int sn_plugin_abi_version(void) { return SN_PLUGIN_ABI_VERSION; }
int sn_plugin_init(const sn_artifact* a, size_t n, void** state, char* err, size_t err_len) {
  if (n != 1 || a[0].len == 0) { strncpy(err, "need one non-empty model", err_len); return 1; }
  st* s = malloc(sizeof *s); s->model = malloc(a[0].len); s->len = a[0].len;
  memcpy(s->model, a[0].data, a[0].len); *state = s; return 0;
}
int sn_plugin_invoke(void* state, const uint8_t* in, size_t len, uint8_t** out, size_t* out_len, char* err, size_t el) {
  st* s = state; uint8_t* o = malloc(len ? len : 1);
  for (size_t i = 0; i < len; i++) o[i] = in[i] ^ s->model[i % s->len];
  *out = o; *out_len = len; return 0;
}
void sn_plugin_free_output(void* state, uint8_t* out, size_t len) { free(out); }
void sn_plugin_fini(void* state) { st* s = state; memset(s->model, 0, s->len); free(s->model); free(s); }
"""


def command_available(cli, *words):
    """CLI11 prints the top-level help (exit 0) for unknown subcommands, so check the usage line."""
    proc = subprocess.run([cli, *words, "--help"], capture_output=True, timeout=30)
    return proc.returncode == 0 and f"Usage: shield-nitro {' '.join(words)}".encode() in proc.stdout


def make_kms_key(endpoint, credentials_file, pcr0_hex, stack, before_policy=None):
    """A key only the attested enclave may use; before_policy(key_id) runs while the admin still
    may (e.g. GenerateDataKey for sealing)."""
    botocore_session = pytest.importorskip("botocore.session", reason="python3-botocore drives kms-local")
    admin = from_shared_file(str(credentials_file), "admin")
    kms = botocore_session.Session().create_client(
        "kms", region_name=REGION, endpoint_url=endpoint, aws_access_key_id=admin.access_key_id,
        aws_secret_access_key=admin.secret_access_key, aws_session_token=admin.session_token)
    key_id = kms.create_key()["KeyMetadata"]["Arn"]
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext={"app": "e2e"})
    if before_policy:
        before_policy(key_id)
    policy = stack.run("policy", "--pcr", f"0={pcr0_hex}", "--role-arn", ENCLAVE_ROLE, "--admin-arn", ADMIN_ROLE,
                       "--account", ACCOUNT).decode()
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    return key_id, data_key["Plaintext"], data_key["CiphertextBlob"]


def build_plugin(tmp, source_dir):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler to build the test plugin")
    (tmp / "plugin.c").write_text(PLUGIN_C)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", str(source_dir / "include"), "-o", str(tmp / "plugin.so"),
                    str(tmp / "plugin.c")], check=True, capture_output=True, timeout=120)
    return (tmp / "plugin.so").read_bytes()


@pytest.fixture(scope="module")
def stack(cli, tmp_path_factory):
    enclave_program = Path(cli).parent / "shield-nitro-enclave"
    if not enclave_program.exists():
        pytest.skip(f"{enclave_program} is not built")
    for words in (("nsm-sim", "init"), ("nsm-sim", "serve"), ("kms-local",), ("policy",)):
        if not command_available(cli, *words):
            pytest.skip(f"`shield-nitro {' '.join(words)}` is not in this CLI yet")
    tmp = tmp_path_factory.mktemp("e2e")
    st = ProcessStack(cli, tmp)
    try:
        pcr0 = os.urandom(48)
        nsm_dir = tmp / "nsm"
        st.run("nsm-sim", "init", str(nsm_dir), "--pcr", f"0={pcr0.hex()}")
        st.start("nsm-sim", "nsm-sim", "serve", str(nsm_dir), ready=lambda: (nsm_dir / "nsm.sock").exists())
        port = free_port()
        kms_dir = tmp / "kms"
        st.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{port}", "--state", str(kms_dir),
                 "--trust-root", str(nsm_dir / "root.pem"), "--account", ACCOUNT, ready=port_open(port))
        kms_url = f"http://127.0.0.1:{port}"
        key_id, data_key, blob = make_kms_key(kms_url, kms_dir / "credentials", pcr0.hex(), st)
        sock = tmp / "enclave.sock"
        st.start("enclave", "serve", "--listen", f"unix:{sock}", "--nsm", f"sim:{nsm_dir}",
                 "--kms-endpoint", kms_url, "--kms-region", REGION, ready=sock.exists, program=enclave_program)
        yield SimpleNamespace(
            stack=st, tmp=tmp, endpoint=f"unix:{sock}", pcr0=pcr0, kms_url=kms_url, kms_dir=kms_dir, root=TrustRoot.from_file(nsm_dir / "root.pem"),
            key_id=key_id, data_key=data_key, blob=blob,
            enclave_creds=from_shared_file(str(kms_dir / "credentials"), "enclave"))
    finally:
        st.close()


def test_attest_channel_key_artifacts_invoke(stack):
    model = os.urandom(4096)
    (stack.tmp / "data.key").write_bytes(stack.data_key)
    (stack.tmp / "model.bin").write_bytes(model)
    stack.stack.run("encrypt", "--key-file", str(stack.tmp / "data.key"), "--stream", str(stack.tmp / "model.bin"),
                    str(stack.tmp / "model.snst"))
    plugin = build_plugin(stack.tmp, REPO)
    (stack.tmp / "plugin.shield").write_bytes(Shield.with_key(stack.data_key).encrypt(plugin))

    with EnclaveClient.connect(stack.endpoint, credentials=stack.enclave_creds, chunk_size=1000) as client:
        described = client.describe()
        assert described.pcrs[0] == stack.pcr0 and described.module_id
        chan = client.open_channel(Policy(pcrs={0: stack.pcr0}), root=stack.root)
        assert chan.claims.pcrs[0] == stack.pcr0
        client.push_credentials()
        key = client.load_key(stack.blob, key_id=stack.key_id, encryption_context={"app": "e2e"})
        assert key.key_id and key.handle.startswith("key-")
        m = client.load_artifact(key.handle, stack.tmp / "model.snst", kind="model", name="weights")
        assert m.size == len(model) and m.kind == "model" and m.name == "weights"
        code = client.load_artifact(key.handle, stack.tmp / "plugin.shield", kind="code", name="xor",
                                    models=[m.handle])
        data = os.urandom(10_000)
        assert client.invoke(code.handle, data) == bytes(b ^ model[i % len(model)] for i, b in enumerate(data))
        ct = client.encrypt(key.handle, b"only inside")
        assert Shield.with_key(stack.data_key).decrypt(ct) == b"only inside"
        assert client.decrypt(key.handle, ct) == b"only inside"
        with pytest.raises(ShieldNitroError) as e:      # plaintext ops refused outside the channel
            client.connection.call("decrypt", {"key": key.handle, "ciphertext": ct})
        assert e.value.code == "policy"
        assert client.stats().requests["invoke"] >= 1
        assert {a.handle for a in client.describe().artifacts} >= {m.handle, code.handle}


def test_policy_mismatch_refuses_the_channel(stack):
    with EnclaveClient.connect(stack.endpoint) as client:
        with pytest.raises(ShieldNitroError) as e:
            client.open_channel(Policy(pcrs={0: bytes(48)}), root=stack.root)
        assert e.value.code == "policy"
        with pytest.raises(ShieldNitroError) as e:      # simulator documents never pass the AWS root
            client.open_channel(Policy(pcrs={0: stack.pcr0}))
        assert e.value.code == "verify"


def test_a_sealed_model_loads_without_a_key_handle(stack):
    """`shield-nitro seal` (GenerateDataKey at kms-local) writes files that name their own key; the
    enclave releases it from the header (Decrypt with a Recipient) during load_artifact."""
    if not command_available(stack.stack.cli, "seal"):
        pytest.skip("`shield-nitro seal` is not in this CLI yet")
    model = os.urandom(300_000)
    plugin = build_plugin(stack.tmp, REPO)
    (stack.tmp / "sealed-model.bin").write_bytes(model)
    (stack.tmp / "xor.so").write_bytes(plugin)
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=str(stack.kms_dir / "credentials"))

    def seal(key_id):
        for src, out, chunk in (("sealed-model.bin", "model.sealed", "65536"), ("xor.so", "xor.sealed", "1048576")):
            stack.stack.run("seal", "--key-id", key_id, "--encryption-context", "app=e2e", "--endpoint", stack.kms_url,
                            "--region", REGION, "--profile", "admin", "--chunk-size", chunk, str(stack.tmp / src),
                            "-o", str(stack.tmp / out), env=env)

    make_kms_key(stack.kms_url, stack.kms_dir / "credentials", stack.pcr0.hex(), stack.stack, before_policy=seal)
    with EnclaveClient.connect(stack.endpoint, credentials=stack.enclave_creds) as client:
        client.open_channel(Policy(pcrs={0: stack.pcr0}), root=stack.root)
        client.push_credentials()
        m = client.load_artifact(None, stack.tmp / "model.sealed", kind="model", name="sealed-weights")
        assert m.size == len(model) and m.name == "sealed-weights"
        code = client.load_artifact(None, stack.tmp / "xor.sealed", kind="code", name="xor", models=[m.handle])
        data = os.urandom(5000)
        assert client.invoke(code.handle, data) == bytes(b ^ model[i % len(model)] for i, b in enumerate(data))
        tampered = bytearray((stack.tmp / "model.sealed").read_bytes())
        tampered[-7] ^= 1
        (stack.tmp / "bad.sealed").write_bytes(bytes(tampered))
        with pytest.raises(ShieldNitroError) as e:
            client.load_artifact(None, stack.tmp / "bad.sealed")
        assert e.value.code == "auth"
