"""make demo, part 2: encrypted model inference in a (simulated) Nitro Enclave, end to end, narrated.

The flow of a real deployment, on one machine: an EIF built by `shield-nitro eif build` runs
under `shield-nitro sim run` (its own namespaces, vsock as unix sockets, a simulated NSM that
attests with the EIF's measured PCRs); `kms-local` (the KMS protocol, over TLS) holds a key whose
policy comes from `shield-nitro policy --eif`; the enclave reaches it only through the parent's
`shield-nitro proxy` (allowlisted); the Python parent SDK attests, verifies, opens the channel,
pushes credentials and loads the sealed model and code. Then the refusals: an EIF with one byte
of the app changed, and the honest EIF in debug mode. Exit 0 only if every step behaved as shown.

usage: demo.py BUILD_DIR WORK_DIR [--images N] [--record DIR] [--no-cxx]

  --images N    classify only the first N test images (tests use a shortened set)
  --record DIR  keep every byte that crosses the parent: the KMS proxy's (DIR/kms) and the
                parent <-> enclave traffic through a recording relay (DIR/enclave)
  --no-cxx      skip the C++ SDK's classification

Needs root (the simulator creates namespaces). tests/examples/e2e_test.py runs it with
--images and --record and checks that nothing secret crossed the parent.
"""
import argparse
import ctypes
import datetime
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
from shield_nitro import EnclaveClient, Policy, ShieldNitroError, TrustRoot  # noqa: E402
from shield_nitro.credentials import from_shared_file  # noqa: E402
from shield_nitro.testing import CommandFailed, ProcessStack, RecordingRelay, free_port, port_open  # noqa: E402

ACCOUNT = "111122223333"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-enclave"       # the parent instance's role (PCR3)
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/shield-admin"
INSTANCE_ID = "i-0123456789abcdef0"                          # the parent instance (PCR4)
KMS_HOST = f"kms.{REGION}.amazonaws.com"
CONTEXT = {"app": "digits"}
CID, PORT, KMS_PROXY_PORT = 16, 5000, 8000
CA_IN_IMAGE = "/etc/shield-nitro/kms-ca.pem"
NITRO_BLOBS = Path("/usr/share/nitro_enclaves/blobs")
BATCH = 36

# Applicants for the sealed scoring function: income (k/year), debt-to-income, years employed,
# late payments in 24 months, credit utilisation.
APPLICANTS = [(42.0, 0.35, 2.0, 1.0, 0.6), (85.0, 0.20, 6.0, 0.0, 0.25), (23.5, 0.55, 0.5, 4.0, 0.9),
              (120.0, 0.10, 12.0, 0.0, 0.1), (60.0, 0.30, 4.0, 2.0, 0.45), (310.0, 0.05, 20.0, 0.0, 0.05)]


class DemoFailed(Exception):
    pass


def step(text):
    print(f"\n==> {text}", flush=True)


def say(text):
    print(f"    {text}", flush=True)


def check(condition, what):
    if not condition:
        raise DemoFailed(what)


def wait_until(probe, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Result:
    """What the run produced, for tests: secrets to look for in what crossed the parent."""
    data_key: bytes = b""
    wrapped_key: bytes = b""
    plaintexts: Dict[str, bytes] = field(default_factory=dict)   # artifacts before sealing
    invoke_io: List[bytes] = field(default_factory=list)         # plaintext invoke inputs and outputs
    sealed: List[Path] = field(default_factory=list)             # what the parent stores
    record: Optional[Path] = None
    accuracy: float = 0.0
    figures: Dict[str, float] = field(default_factory=dict)


class Demo:
    def __init__(self, build, work, images=None, record=None, cxx=True):
        self.build, self.work = Path(build).resolve(), Path(work).resolve()
        self.cli = self.build / "shield-nitro"
        self.enclave_bin = self.build / "shield-nitro-enclave"   # the trusted program the EIF runs
        example = self.build / "examples" / "model-inference"
        self.model_dir, self.classify_bin = example / "model", example / "classify"
        self.plugins = {"mlp": example / "mlp_plugin.so", "score": example / "score_plugin.so"}
        self.images, self.cxx = images, cxx
        self.state = self.work / "enclave"        # one simulated enclave slot, as on an instance
        self.vsock = self.state / "vsock"
        self.result = Result(record=Path(record).resolve() if record else None)
        self.stack = None
        self.relay = None
        self.terminate_deferred = False

    # -- the run --------------------------------------------------------------------------
    def run(self):
        for path in [self.cli, self.enclave_bin, self.model_dir / "mlp.weights", *self.plugins.values()]:
            check(path.exists(), f"{path} is missing: build the targets shield-nitro shield-nitro-enclave mlp_plugin "
                                 "score_plugin model_artifacts first")
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        # The parent side of the simulator: vsock://CID:PORT is the unix socket STATE/vsock/CID_PORT.sock,
        # for this process (the SDK), the proxy and classify alike.
        saved_vsock_dir = os.environ.get("SHIELD_NITRO_VSOCK_DIR")
        os.environ["SHIELD_NITRO_VSOCK_DIR"] = str(self.vsock)
        self.stack = ProcessStack(self.cli, self.work / "logs", echo=say)
        try:
            self.make_tls()
            self.build_image()
            self.run_enclave(self.eif)
            self.start_kms()
            self.make_key()
            self.seal()
            self.start_proxy()
            self.classify()
            self.encrypted_code()
            self.classify_cxx()
            self.refuse_tampered_image()
            self.refuse_debug_mode()
            step("Terminate everything")
            self.stack.run("sim", "terminate", "--state", self.state)
        finally:
            if self.relay:
                self.relay.close()
            self.stack.close()
            if saved_vsock_dir is None:
                os.environ.pop("SHIELD_NITRO_VSOCK_DIR", None)
            else:
                os.environ["SHIELD_NITRO_VSOCK_DIR"] = saved_vsock_dir
        self.check_all_gone()
        return self.result

    # -- steps ----------------------------------------------------------------------------
    def make_tls(self):
        step("TLS for the local KMS: a private CA stands in for the public CAs of kms.us-east-1.amazonaws.com")
        tls = self.work / "tls"
        tls.mkdir(exist_ok=True)
        self.ca_pem, self.kms_cert, self.kms_key = make_ca_and_server_cert(tls, [KMS_HOST], "127.0.0.1")
        say(f"kms-local serves {KMS_HOST} with a certificate from {self.ca_pem.name}; the enclave image trusts that")
        say("CA (its system store on Nitro), so TLS runs end to end inside the enclave and the proxy sees ciphertext")

    def build_image(self):
        step("Build the enclave image: the trusted program `shield-nitro-enclave serve` alone in a minimal root "
             "filesystem, as an EIF")
        self.blobs = self.kernel_blobs()
        self.eif, self.pcrs = self.make_eif("app", self.enclave_bin)
        for i in (0, 1, 2):
            say(f"PCR{i} = {self.pcrs[i].hex()[:48]}...")
        say("the PCRs are the EIF's own measurements (the same that `nitro-cli describe-eif` prints)")

    def kernel_blobs(self):
        kernel = "Image" if os.uname().machine == "aarch64" else "bzImage"
        if all((NITRO_BLOBS / f).exists() for f in (kernel, "cmdline", "init", "nsm.ko")):
            say(f"kernel and bootstrap: nitro-cli's blobs in {NITRO_BLOBS}")
            return NITRO_BLOBS
        blobs = self.work / "blobs"
        say(f"no nitro-cli blobs here ({NITRO_BLOBS} does not exist): the EIF gets a STAND-IN kernel, cmdline,")
        self.stack.run("eif", "blobs", "--stand-in", "-o", blobs)
        say(f"init and nsm.ko ({blobs}, a few KiB, labelled as such). The simulator does")
        say("not boot the kernel; the PCRs are still measured from what the EIF really contains (PCR0 and PCR1")
        say("differ from a build with nitro-cli's blobs; PCR2, the app, does not)")
        return blobs

    def make_eif(self, name, binary):
        rootfs = self.work / f"{name}-rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        self.stack.run("eif", "rootfs", "--binary", binary, "--dest", "/bin/shield-nitro-enclave",
                       "--file", f"{self.ca_pem}:{CA_IN_IMAGE}", "-o", rootfs)
        cmd = ["/bin/shield-nitro-enclave", "serve", "--listen", f"vsock://ANY:{PORT}",
               "--kms-via", f"vsock://3:{KMS_PROXY_PORT}", "--kms-region", REGION, "--kms-ca", CA_IN_IMAGE]
        eif = self.work / f"{name}.eif"
        built = json.loads(self.stack.run("eif", "build", "--blobs", self.blobs, "--rootfs", rootfs,
                                          "--cmd", json.dumps(cmd, separators=(",", ":")), "--name", "digits-app",
                                          "--version", "1", "-o", eif))
        described = json.loads(self.stack.run("eif", "describe", eif))["Measurements"]
        pcrs = {i: bytes.fromhex(described[f"PCR{i}"]) for i in (0, 1, 2)}
        check(all(built["Measurements"][f"PCR{i}"] == described[f"PCR{i}"] for i in (0, 1, 2)),
              "eif build and eif describe disagree")
        say(f"{eif.name}: {eif.stat().st_size >> 20} MiB; /cmd = {' '.join(cmd)}")
        return eif, pcrs

    def run_enclave(self, eif, debug=False):
        args = ["sim", "run", eif, "--state", self.state, "--cid", CID, "--memory", 512,
                "--cpus", min(2, os.cpu_count() or 1), "--role-arn", ROLE, "--instance-id", INSTANCE_ID]
        if debug:
            args.append("--debug-mode")
        first = not self.terminate_deferred
        if first:
            step("Run it as an enclave under the simulator (CID 16; PCR3/PCR4 from the parent's role and instance)")
        started = json.loads(self.stack.run(*args))
        if not self.terminate_deferred:  # whatever happens next, close() terminates the enclave
            self.stack.defer(lambda: self.stack.call("sim", "terminate", "--state", self.state), "sim terminate")
            self.terminate_deferred = True
        console = self.state / "console.log"
        wait_until(lambda: console.exists() and b"serving on" in console.read_bytes(), "the enclave service")
        say(f"enclave {started['EnclaveID']}: CID {started['EnclaveCID']}, {started['NumberOfCPUs']} CPUs, "
            f"{started['MemoryMiB']} MiB; console: {console.read_text().strip().splitlines()[-1]}")
        if first:
            say(f"no network inside: the parent reaches it at vsock://{CID}:{PORT} = {self.vsock}/{CID}_{PORT}.sock")
            say(f"(parent side: SHIELD_NITRO_VSOCK_DIR={self.vsock}, for the SDK, the proxy and classify)")

    def start_kms(self):
        step("A local KMS (the real KMS protocol over TLS; trusts the simulator's attestation root)")
        port = free_port()
        kms_dir = self.work / "kms"
        self.stack.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{port}", "--state", kms_dir,
                         "--tls-cert", self.kms_cert, "--tls-key", self.kms_key,
                         "--trust-root", self.state / "nsm" / "root.pem", "--account", ACCOUNT, "--region", REGION,
                         ready=port_open(port))
        self.kms_port = port
        say(f"{self.state}/nsm/root.pem plays the AWS Nitro root: KMS accepts only documents signed under it")
        self.admin = from_shared_file(str(kms_dir / "credentials"), "admin")
        self.role_creds = from_shared_file(str(kms_dir / "credentials"), "enclave")

    def kms_client(self, creds):
        import botocore.session
        return botocore.session.Session().create_client(
            "kms", region_name=REGION, endpoint_url=f"https://127.0.0.1:{self.kms_port}", verify=str(self.ca_pem),
            aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key)

    def make_key(self):
        step("A KMS key that releases data keys only to this image on this parent (shield-nitro policy --eif)")
        kms = self.kms_client(self.admin)
        self.key_arn = kms.create_key(Description="digits model")["KeyMetadata"]["Arn"]
        dk = kms.generate_data_key(KeyId=self.key_arn, KeySpec="AES_256", EncryptionContext=CONTEXT)
        self.result.data_key, self.result.wrapped_key = dk["Plaintext"], dk["CiphertextBlob"]
        say(f"key {self.key_arn}")
        say(f"GenerateDataKey (the model owner, once): a 32-byte data key and its KMS-wrapped form "
            f"({len(dk['CiphertextBlob'])} bytes)")
        self.pcr3 = hashlib.sha384(bytes(48) + ROLE.encode()).digest()
        policy = self.stack.run("policy", "--eif", self.eif, "--pcr", f"3={self.pcr3.hex()}", "--role-arn", ROLE,
                                "--admin-arn", ADMIN_ROLE, "--account", ACCOUNT).decode()
        kms.put_key_policy(KeyId=self.key_arn, PolicyName="default", Policy=policy)
        pinned = sorted({k.split(":")[-1] for st in json.loads(policy)["Statement"] if st["Effect"] == "Allow"
                         for cond in st.get("Condition", {}).values() for k in cond if "RecipientAttestation" in k})
        say(f"policy in force: Decrypt only with an attestation whose {', '.join(pinned)} match")
        say(f"(PCR3 = SHA384(0^48 || {ROLE}), the parent's role, as AWS measures it)")
        try:
            self.kms_client(self.role_creds).decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=CONTEXT)
            raise DemoFailed("KMS decrypted for the role without attestation")
        except Exception as e:  # botocore's ClientError
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            check(code == "AccessDeniedException", f"expected AccessDeniedException, got {e}")
            say(f"the role's own credentials without an enclave: {code} (explicit Deny)")

    def seal(self):
        step("Seal the model weights and both plugins as Shield streams under the data key")
        key_file = self.work / "data.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.result.data_key)
        sources = {"mlp.weights": self.model_dir / "mlp.weights", "mlp_plugin.so": self.plugins["mlp"],
                   "score_plugin.so": self.plugins["score"]}
        self.sealed = {}
        for name, src in sources.items():
            out = self.work / (Path(name).stem + ".snst")
            self.stack.run("encrypt", "--key-file", key_file, "--stream", src, out)
            self.result.plaintexts[name] = src.read_bytes()
            self.result.sealed.append(out)
            self.sealed[name] = out
        key_file.unlink()
        say("data.key deleted: the parent keeps only *.snst and the wrapped key; only the attested enclave")
        say("can have KMS unwrap it")

    def start_proxy(self):
        step("The parent's KMS proxy: the enclave's only way out, allowlisted to the KMS endpoint")
        allow = self.work / "vsock-proxy.yaml"
        allow.write_text(f"allowlist:\n- {{address: 127.0.0.1, port: {self.kms_port}}}\n")
        say(f"allowlist: {allow.read_text().splitlines()[1]}")
        self.stack.run("proxy", "--listen", f"vsock://3:{KMS_PROXY_PORT}", "--to", "127.0.0.1:9",
                       "--allowlist", allow, expect=1)
        say("refused to start for a destination that is not on the allowlist (exit 1)")
        args = ["proxy", "--listen", f"vsock://3:{KMS_PROXY_PORT}", "--to", f"127.0.0.1:{self.kms_port}",
                "--allowlist", allow]
        if self.result.record:
            (self.result.record / "kms").mkdir(parents=True, exist_ok=True)
            args += ["--record", self.result.record / "kms"]
        self.stack.start("proxy", *args, ready=(self.vsock / f"3_{KMS_PROXY_PORT}.sock").exists)
        say(f"listening on vsock://3:{KMS_PROXY_PORT} = {self.vsock}/3_{KMS_PROXY_PORT}.sock")
        if self.result.record:
            self.relay = RecordingRelay(self.result.record / "parent.sock", self.vsock / f"{CID}_{PORT}.sock",
                                        self.result.record / "enclave")
            say(f"recording: KMS traffic in {self.result.record}/kms, parent <-> enclave in "
                f"{self.result.record}/enclave (a relay the SDK connects through)")

    def endpoint(self):
        return f"unix:{self.result.record / 'parent.sock'}" if self.result.record else f"vsock://{CID}:{PORT}"

    def root(self):
        return TrustRoot.from_file(self.state / "nsm" / "root.pem")

    def honest_policy(self):
        return Policy(pcrs={**self.pcrs, 3: self.pcr3})

    def classify(self):
        step("Parent (Python SDK): attest, verify, open the channel, push credentials, load key and artifacts, classify")
        count, dim, feats, labels = read_testset(self.model_dir / "testset.bin")
        reference = json.loads((self.model_dir / "reference.json").read_text())
        n = count if self.images is None else max(1, min(self.images, count))
        self.client = EnclaveClient.connect(self.endpoint(), credentials=self.role_creds)
        client = self.client
        ch = client.open_channel(self.honest_policy(), root=self.root())
        say(f"connected to {self.endpoint()}; attestation verified: module {ch.claims.module_id}, PCR0/1/2 = "
            "`eif describe`, PCR3 = the role; channel open")
        client.push_credentials()
        say("pushed the role's credentials (on EC2: from IMDSv2)")
        t = time.monotonic()
        key = client.load_key(self.result.wrapped_key, key_id=self.key_arn, encryption_context=CONTEXT)
        release_ms = (time.monotonic() - t) * 1e3
        self.key_handle = key.handle
        say("load-key: the enclave called KMS Decrypt through the proxy with its attestation; KMS answered")
        say(f"CiphertextForRecipient (sealed to the enclave's key): data key handle {key.handle} "
            f"({release_ms:.0f} ms)")
        weights = client.load_artifact(key.handle, self.sealed["mlp.weights"], kind="model", name="mlp.weights")
        code = client.load_artifact(key.handle, self.sealed["mlp_plugin.so"], kind="code", name="mlp",
                                    models=[weights.handle])
        say(f"loaded model {weights.handle} ({weights.size} bytes) and code {code.handle} "
            "(decrypted and dlopen'ed from memory, inside)")
        preds, lat = [], []
        t0 = time.monotonic()
        for i in range(0, n, BATCH):
            k = min(BATCH, n - i)
            request = struct.pack("<4sIII", b"SNMI", k, dim, 0) + feats[i * dim * 4:(i + k) * dim * 4]
            t = time.monotonic()
            reply = client.invoke(code.handle, request)
            lat.append(time.monotonic() - t)
            self.result.invoke_io += [request, reply]
            magic, got, _ = struct.unpack_from("<4sII", reply)
            check(magic == b"SNMO" and got == k, "malformed reply from the plugin")
            preds += struct.unpack_from(f"<{k}I", reply, 12)
        elapsed = time.monotonic() - t0
        single = []
        for i in range(min(n, 50)):
            request = struct.pack("<4sIII", b"SNMI", 1, dim, 0) + feats[i * dim * 4:(i + 1) * dim * 4]
            t = time.monotonic()
            reply = client.invoke(code.handle, request)
            single.append(time.monotonic() - t)
            self.result.invoke_io += [request, reply]
            check(struct.unpack_from("<I", reply, 12)[0] == preds[i], "a single-image answer differs from its batch's")
        acc = sum(int(p == y) for p, y in zip(preds, labels)) / n
        ref_preds = reference["predictions"][:n]
        ref_acc = sum(int(p == y) for p, y in zip(ref_preds, labels)) / n
        lat.sort()
        single.sort()
        self.result.accuracy = acc
        self.result.figures = {"images": n, "images_per_s": n / elapsed, "batch_p50_ms": lat[len(lat) // 2] * 1e3,
                               "single_p50_ms": single[len(single) // 2] * 1e3,
                               "single_p95_ms": single[int(len(single) * 0.95)] * 1e3, "key_release_ms": release_ms}
        f = self.result.figures
        say(f"accuracy {acc:.4f} on {n} test images; the plaintext model (reference.json): {ref_acc:.4f}")
        say(f"{f['images_per_s']:.0f} images/s in batches of {BATCH} (p50 {f['batch_p50_ms']:.2f} ms per batch); "
            f"one image: p50 {f['single_p50_ms']:.2f} ms, p95 {f['single_p95_ms']:.2f} ms")
        check(preds == ref_preds, "predictions differ from the plaintext model's")
        if n == count:
            check(abs(acc - reference["accuracy"]) < 1e-12, "accuracy differs from reference.json's")
        say("every prediction equals the plaintext model's")

    def encrypted_code(self):
        step("Encrypted code: a proprietary scoring function shipped only as sealed score_plugin.snst")
        client = self.client
        code = client.load_artifact(self.key_handle, self.sealed["score_plugin.so"], kind="code", name="score")
        request = struct.pack("<4sI", b"SNSI", len(APPLICANTS)) + b"".join(struct.pack("<5f", *a) for a in APPLICANTS)
        reply = client.invoke(code.handle, request)
        self.result.invoke_io += [request, reply]
        expected = run_plugin_locally(self.plugins["score"], request)   # the vendor's own run, before sealing
        check(reply == expected, "the enclave's scores differ from the vendor's plaintext plugin's")
        count = struct.unpack_from("<I", reply, 4)[0]
        scores = [struct.unpack_from("<II", reply, 8 + 8 * i) for i in range(count)]
        say(f"the parent holds {self.sealed['score_plugin.so'].name} ({self.sealed['score_plugin.so'].stat().st_size} "
            "bytes of Shield ciphertext): the coefficients exist in plaintext only inside the enclave")
        say("income  DTI   years late util -> score decision")
        for a, (score, ok) in zip(APPLICANTS, scores):
            say(f"{a[0]:6.1f} {a[1]:5.2f} {a[2]:5.1f} {a[3]:4.0f} {a[4]:4.2f} -> {score:5d} {'approve' if ok else 'refer'}")
        say("identical to the vendor's own run of the plaintext plugin")
        client.close()
        self.client = None

    def classify_cxx(self):
        if not self.cxx:
            return
        if not self.classify_bin.exists():
            step("C++ parent SDK: skipped (build/examples/model-inference/classify was not built)")
            return
        step("The same classification through the C++ parent SDK (examples/model-inference/classify)")
        args = [self.classify_bin, "--enclave", self.endpoint(), "--root", self.state / "nsm" / "root.pem",
                "--model-dir", self.model_dir, "--weights", self.sealed["mlp.weights"],
                "--plugin", self.sealed["mlp_plugin.so"], "--key-id", self.key_arn,
                "--wrapped-key", self.write_wrapped_key(), "--context", "app=digits",
                "--credentials", self.work / "kms" / "credentials", "--profile", "enclave"]
        for i, v in {**self.pcrs, 3: self.pcr3}.items():
            args += ["--pcr", f"{i}={v.hex()}"]
        if self.images is not None:
            args += ["--images", self.images]
        say("$ classify " + " ".join(str(a) for a in args[1:]))
        proc = subprocess.run([str(a) for a in args], capture_output=True, timeout=300)
        for line in proc.stdout.decode(errors="replace").splitlines():
            say("  " + line)
        check(proc.returncode == 0, f"classify exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")

    def write_wrapped_key(self):
        path = self.work / "data.key.wrapped"
        path.write_bytes(self.result.wrapped_key)
        return path

    def refuse_tampered_image(self):
        step("Refusal 1: an EIF with one byte of the app changed")
        bad_bin = self.work / "tampered" / "shield-nitro-enclave"
        bad_bin.parent.mkdir(exist_ok=True)
        shutil.copy2(self.enclave_bin, bad_bin)
        offset = flip_comment_byte(bad_bin)
        say(f"shield-nitro-enclave with byte {offset} changed (in .comment, the compiler's version note: it still runs)")
        bad_eif, bad_pcrs = self.make_eif("tampered", bad_bin)
        same = [f"PCR{i}" for i in (0, 1, 2) if bad_pcrs[i] == self.pcrs[i]]
        differ = [f"PCR{i}" for i in (0, 1, 2) if bad_pcrs[i] != self.pcrs[i]]
        say(f"differ: {', '.join(differ)}; equal: {', '.join(same) or 'none'}")
        check(differ == ["PCR0", "PCR2"], "expected exactly PCR0 and PCR2 to change")
        self.stack.run("sim", "terminate", "--state", self.state)
        self.run_enclave(bad_eif)
        self.expect_sdk_refuses("the tampered image")
        with EnclaveClient.connect(self.endpoint(), credentials=self.role_creds) as client:
            client.open_channel(Policy(pcrs={0: bad_pcrs[0]}), root=self.root())
            say("a parent that trusts the changed image anyway opens a channel and pushes the role's credentials;")
            client.push_credentials()
            self.expect_refused_by_kms(client)
            self.expect_no_inference(client)

    def refuse_debug_mode(self):
        step("Refusal 2: the honest EIF in debug mode (PCR0/1/2 read as zeros inside)")
        self.stack.run("sim", "terminate", "--state", self.state)
        self.run_enclave(self.eif, debug=True)
        described = json.loads(self.stack.run("sim", "describe", "--state", self.state, "--json"))[0]
        check(described["Flags"] == "DEBUG_MODE", "sim describe does not say DEBUG_MODE")
        check(described["Measurements"]["PCR0"] == self.pcrs[0].hex(), "describe should show the image's PCR0")
        say("sim describe: Flags DEBUG_MODE, Measurements = the image's (like nitro-cli describe-enclaves)")
        self.expect_sdk_refuses("a debug enclave")
        with EnclaveClient.connect(self.endpoint(), credentials=self.role_creds) as client:
            # A parent that knowingly trusts this debug enclave pins what it reports: PCR0 = 0^48.
            ch = client.open_channel(Policy(pcrs={0: bytes(48), 3: self.pcr3}, allow_debug=True), root=self.root())
            check(ch.claims.pcrs[0] == bytes(48) and ch.claims.pcrs[3] == self.pcr3, "debug PCRs are not as on Nitro")
            say("pinned to PCR0 = 0^48 with allow_debug: its document carries exactly that (PCR3 kept); "
                "credentials pushed;")
            client.push_credentials()
            self.expect_refused_by_kms(client)
            self.expect_no_inference(client)

    def expect_sdk_refuses(self, what):
        """The SDK, pinned to the honest image's PCRs, must refuse the running enclave's channel."""
        with EnclaveClient.connect(self.endpoint(), credentials=self.role_creds) as client:
            try:
                client.open_channel(self.honest_policy(), root=self.root())
                raise DemoFailed(f"the SDK accepted {what}")
            except ShieldNitroError as e:
                say(f"the SDK refuses it: {e}")

    def expect_refused_by_kms(self, client):
        """KMS must refuse with AccessDenied: the policy's PCRs do not match (a debug enclave's
        document is valid, as on AWS, but its zero PCRs match no pin)."""
        try:
            client.load_key(self.result.wrapped_key, key_id=self.key_arn, encryption_context=CONTEXT)
            raise DemoFailed("KMS released the key")
        except ShieldNitroError as e:
            check("AccessDeniedException" in str(e), f"expected KMS to refuse (AccessDeniedException), got: {e}")
            say(f"load-key: {short(e, 200)}")

    def expect_no_inference(self, client):
        try:
            client.load_artifact(self.key_handle, self.sealed["mlp.weights"], kind="model", name="mlp.weights")
            raise DemoFailed("the enclave opened the model without a key")
        except ShieldNitroError as e:
            say(f"no key, so no model and no inference: load-artifact: {short(e)}")

    def check_all_gone(self):
        described = json.loads(self.stack.call("sim", "describe", "--state", self.state, "--json").stdout)
        check(described and described[0]["State"] == "TERMINATED", "the enclave is still running")
        left = sorted(p.name for p in self.vsock.glob("*.sock")) if self.vsock.exists() else []
        check(not left, f"sockets left behind: {left}")
        say("enclave TERMINATED, proxy and kms-local stopped, no socket left")


# -- helpers -------------------------------------------------------------------------------
def short(e, limit=160):
    text = str(e)
    return text if len(text) <= limit else text[:limit] + "..."


def read_testset(path):
    data = path.read_bytes()
    magic, version, count, dim = struct.unpack_from("<4sIII", data)
    check(magic == b"SNTS" and version == 1, f"{path}: not an SNTS v1 test set")
    feats = data[16:16 + count * dim * 4]
    labels = data[16 + count * dim * 4:16 + count * dim * 4 + count]
    return count, dim, feats, labels


def make_ca_and_server_cert(folder, dns_names, ip):
    """A throwaway CA and a server certificate for dns_names and ip (EC P-256, valid one day)."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shield-nitro demo CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    srv = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
           .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
           .add_extension(x509.SubjectAlternativeName([*(x509.DNSName(d) for d in dns_names),
                                                       x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
           .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "kms.pem", folder / "kms.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(srv.public_bytes(pem))
    fd = os.open(paths[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(srv_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def elf_section(path, wanted):
    """(offset, size) of an ELF64 little-endian file's section, from its section headers."""
    data = path.read_bytes()
    check(data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not an ELF64 LE file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):  # name, type, flags, addr, offset, size, ...
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
    names = header(shstrndx)[4]
    for i in range(shnum):
        h = header(i)
        start = names + h[0]
        if data[start:data.index(b"\0", start)] == wanted:
            return h[4], h[5]
    raise DemoFailed(f"{path}: no {wanted.decode()} section")


def flip_comment_byte(path):
    """Changes one letter of the compiler's note in .comment (never loaded, so the program runs)."""
    offset, size = elf_section(path, b".comment")
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + size):
        if chr(data[i]).isalpha():
            data[i] ^= 0x20   # upper <-> lower case
            path.write_bytes(data)
            return i
    raise DemoFailed(f"{path}: .comment has no letter to change")


def run_plugin_locally(so_path, request):
    """One invoke of a code plugin in this process (the vendor's check before sealing it)."""
    lib = ctypes.CDLL(str(so_path))
    u8p = ctypes.POINTER(ctypes.c_uint8)
    lib.sn_plugin_init.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p),
                                   ctypes.c_char_p, ctypes.c_size_t]
    lib.sn_plugin_invoke.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(u8p),
                                     ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p, ctypes.c_size_t]
    lib.sn_plugin_free_output.argtypes = [ctypes.c_void_p, u8p, ctypes.c_size_t]
    lib.sn_plugin_fini.argtypes = [ctypes.c_void_p]
    state, err = ctypes.c_void_p(), ctypes.create_string_buffer(256)
    check(lib.sn_plugin_init(None, 0, ctypes.byref(state), err, 256) == 0, f"plugin init: {err.value.decode()}")
    out, out_len = u8p(), ctypes.c_size_t()
    rc = lib.sn_plugin_invoke(state, request, len(request), ctypes.byref(out), ctypes.byref(out_len), err, 256)
    check(rc == 0, f"plugin invoke: {err.value.decode()}")
    reply = ctypes.string_at(out, out_len.value)
    lib.sn_plugin_free_output(state, out, out_len)
    lib.sn_plugin_fini(state)
    return reply


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", help="the CMake build folder (holds shield-nitro and the example's outputs)")
    parser.add_argument("work", help="a folder for this run's files (created)")
    parser.add_argument("--images", type=int, help="classify only the first N test images")
    parser.add_argument("--record", help="keep every byte that crosses the parent in this folder")
    parser.add_argument("--no-cxx", action="store_true", help="skip the C++ SDK's classification")
    a = parser.parse_args(argv)
    try:
        Demo(a.build, a.work, images=a.images, record=a.record, cxx=not a.no_cxx).run()
    except (DemoFailed, CommandFailed, ShieldNitroError) as e:
        print(f"demo: FAILED: {e}", file=sys.stderr)
        if os.geteuid() != 0:
            print("demo: the simulator needs root for its namespaces (try: sudo make demo)", file=sys.stderr)
        return 1
    print("\ndemo: every step behaved as shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
