"""make demo, part 2: encrypted model inference in an attested enclave, end to end, narrated.

Runs on one machine with embedded defaults: a simulated NSM (PCR0 = the measured app), the
local KMS server, `shield-nitro enclave serve` on a unix socket, and the Python parent SDK.
Exit 0 only if every step behaves as shown, including the refusals at the end.

usage: demo.py CLI MODEL_DIR PLUGIN_SO WORKDIR
"""
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
from shield_nitro import EnclaveClient, Policy, ShieldNitroError, TrustRoot  # noqa: E402
from shield_nitro.credentials import from_shared_file  # noqa: E402

ACCOUNT = "111122223333"
ENCLAVE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-enclave"
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-admin"


def step(text):
    print(f"\n==> {text}", flush=True)


def fail(text):
    print(f"demo: FAILED: {text}", file=sys.stderr)
    sys.exit(1)


class Procs:
    def __init__(self, cli, work):
        self.cli, self.work, self.procs = cli, work, []

    def run(self, *args):
        print("    $ shield-nitro " + " ".join(args), flush=True)
        p = subprocess.run([self.cli, *args], capture_output=True, timeout=120)
        if p.returncode != 0:
            fail(f"{args[0]} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
        return p.stdout

    def start(self, name, *args, ready):
        print(f"    $ shield-nitro {' '.join(args)} &", flush=True)
        log = open(self.work / f"{name}.log", "wb")
        p = subprocess.Popen([self.cli, *args], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        deadline = time.monotonic() + 30
        while not ready():
            if p.poll() is not None or time.monotonic() > deadline:
                fail(f"{name} did not start: {(self.work / f'{name}.log').read_text()}")
            time.sleep(0.05)
        return p

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def port_open(port):
    def probe():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    return probe


def read_testset(path):
    data = path.read_bytes()
    magic, version, count, dim = struct.unpack_from("<4sIII", data)
    assert magic == b"SNTS" and version == 1
    feats = data[16:16 + count * dim * 4]
    labels = data[16 + count * dim * 4:16 + count * dim * 4 + count]
    return count, dim, feats, labels


def main():
    cli, model_dir, plugin_so, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    import json
    import botocore.session
    procs = Procs(cli, work)
    try:
        step("The app's measurement: PCR0 as Nitro would report it for the enclave image")
        pcr0 = hashlib.sha384(plugin_so.read_bytes() + (model_dir / "mlp.weights").read_bytes()).digest()
        print(f"    PCR0 = {pcr0.hex()[:32]}… (simulated NSM; `shield-nitro sim run APP.eif` measures a real EIF)")
        nsm = work / "nsm"
        procs.run("nsm-sim", "init", str(nsm), "--pcr", f"0={pcr0.hex()}")
        procs.start("nsm-sim", "nsm-sim", "serve", str(nsm), ready=(nsm / "nsm.sock").exists)

        step("A local KMS (speaks the real KMS protocol; trusts the simulator's root)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        kms_dir = work / "kms"
        procs.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{port}", "--state", str(kms_dir),
                    "--trust-root", str(nsm / "root.pem"), "--account", ACCOUNT, ready=port_open(port))
        url = f"http://127.0.0.1:{port}"
        admin = from_shared_file(str(kms_dir / "credentials"), "admin")
        kms = botocore.session.Session().create_client(
            "kms", region_name="us-east-1", endpoint_url=url, aws_access_key_id=admin.access_key_id,
            aws_secret_access_key=admin.secret_access_key)

        step("KMS key whose policy releases it only to an enclave with this PCR0 (shield-nitro policy)")
        key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        policy = procs.run("policy", "--pcr", f"0={pcr0.hex()}", "--role-arn", ENCLAVE_ROLE,
                           "--admin-arn", ADMIN_ROLE, "--account", ACCOUNT).decode()
        dk = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256", EncryptionContext={"app": "digits"})
        kms.put_key_policy(KeyId=key_arn, PolicyName="default", Policy=policy)
        (work / "data.key").write_bytes(dk["Plaintext"])
        print(f"    key {key_arn}; data key wrapped by KMS ({len(dk['CiphertextBlob'])} bytes)")

        step("Seal the model weights and the inference plugin as Shield streams under the data key")
        procs.run("encrypt", "--key-file", str(work / "data.key"), "--stream", str(model_dir / "mlp.weights"),
                  str(work / "mlp.weights.snst"))
        procs.run("encrypt", "--key-file", str(work / "data.key"), "--stream", str(plugin_so), str(work / "mlp_plugin.snst"))
        os.remove(work / "data.key")
        print("    the plaintext data key is gone; from here on only KMS and the enclave can open the artifacts")

        step("Start the enclave service (simulated NSM, KMS through its endpoint)")
        sock = work / "enclave.sock"
        procs.start("enclave", "enclave", "serve", "--listen", f"unix:{sock}", "--nsm", f"sim:{nsm}",
                    "--kms-endpoint", url, ready=sock.exists)

        step("Parent (Python SDK): attest, verify against the PCR policy, open the channel, load, classify")
        count, dim, feats, labels = read_testset(model_dir / "testset.bin")
        reference = json.loads((model_dir / "reference.json").read_text())
        creds = from_shared_file(str(kms_dir / "credentials"), "enclave")
        with EnclaveClient.connect(f"unix:{sock}", credentials=creds) as client:
            ch = client.open_channel(Policy(pcrs={0: pcr0}), root=TrustRoot.from_file(nsm / "root.pem"))
            print(f"    attested module {ch.claims.module_id}, PCR0 matches; channel open")
            client.push_credentials()
            key = client.load_key(dk["CiphertextBlob"], key_id=key_arn, encryption_context={"app": "digits"})
            print(f"    KMS released the data key to the enclave: handle {key['handle']}")
            weights = client.load_artifact(key["handle"], work / "mlp.weights.snst", kind="model", name="mlp.weights")
            code = client.load_artifact(key["handle"], work / "mlp_plugin.snst", kind="code", name="mlp",
                                        models=[weights["handle"]])
            print(f"    loaded model {weights['handle']} ({weights['size']} bytes) and plugin {code['handle']}")
            t0 = time.monotonic()
            lat = []
            preds = []
            batch = 36
            for i in range(0, count, batch):
                n = min(batch, count - i)
                req = struct.pack("<4sIII", b"SNMI", n, dim, 0) + feats[i * dim * 4:(i + n) * dim * 4]
                t = time.monotonic()
                out = client.invoke(code["handle"], req)
                lat.append(time.monotonic() - t)
                magic, cnt, sdim = struct.unpack_from("<4sII", out)
                preds += list(struct.unpack_from(f"<{cnt}I", out, 12))
            elapsed = time.monotonic() - t0
            acc = sum(int(p == l) for p, l in zip(preds, labels)) / count
            lat.sort()
            print(f"    accuracy {acc:.4f} on {count} images (plaintext model: {reference['accuracy']:.4f})")
            print(f"    {count / elapsed:.0f} images/s; per batch of {batch}: p50 {lat[len(lat)//2]*1e3:.2f} ms")
            if preds != reference["predictions"]:
                fail("predictions differ from the plaintext model")

        step("Refusal 1: an enclave with a different image (PCR0 changed by one byte) gets no key")
        bad = bytearray(pcr0)
        bad[0] ^= 1
        nsm2 = work / "nsm-tampered"  # same simulated AWS chain, different measurement
        shutil.copytree(nsm, nsm2, ignore=shutil.ignore_patterns("nsm.sock"))
        procs.run("nsm-sim", "init", str(nsm2), "--pcr", f"0={bytes(bad).hex()}")
        procs.start("nsm-sim-2", "nsm-sim", "serve", str(nsm2), ready=(nsm2 / "nsm.sock").exists)
        sock2 = work / "enclave2.sock"
        procs.start("enclave-2", "enclave", "serve", "--listen", f"unix:{sock2}", "--nsm", f"sim:{nsm2}",
                    "--kms-endpoint", url, ready=sock2.exists)
        with EnclaveClient.connect(f"unix:{sock2}", credentials=creds) as client:
            client.push_credentials()
            try:
                client.load_key(dk["CiphertextBlob"], key_id=key_arn, encryption_context={"app": "digits"})
                fail("KMS released the key to a tampered image")
            except ShieldNitroError as e:
                print(f"    refused: {e}")
                if "AccessDenied" not in str(e):
                    fail("expected AccessDeniedException")
            try:
                client.open_channel(Policy(pcrs={0: pcr0}), root=TrustRoot.from_file(nsm2 / "root.pem"))
                fail("the client accepted a tampered image")
            except ShieldNitroError as e:
                print(f"    and the client refuses its channel: {e}")

        step("Refusal 2: the role's credentials without an attested enclave (explicit Deny in the policy)")
        enc = botocore.session.Session().create_client(
            "kms", region_name="us-east-1", endpoint_url=url, aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key)
        try:
            enc.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"app": "digits"})
            fail("KMS decrypted without attestation")
        except enc.exceptions.ClientError as e:
            print(f"    refused: {e.response['Error']['Code']}")
        print("\ndemo: every step behaved as shown")
    finally:
        procs.close()


if __name__ == "__main__":
    main()
