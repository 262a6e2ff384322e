"""make demo, part 3: an unmodified Python app in a (simulated) Nitro Enclave, end to end, narrated.

"Bring your image, get an enclave": an ordinary HTTP inference server (app/server.py: standard
library + numpy + stock botocore) is packed into an image from this machine's Debian files, and
`shield-nitro eif build --image app.tar --runtime runtime.yaml` adds the supervisor and the measured
runtime config. Under `sim run`, the supervisor (`shield-nitro-enclave run`) brings up loopback,
gets credentials from the host agent (`shield-nitro host run`), streams the sealed model in from
the host, has KMS release its key only to this attested image, decrypts it into a tmpfs, and
starts the app with a KMS endpoint, container credentials and an egress proxy. A client on the
parent classifies the test set through the ingress port. Then the refusals: a URL off the egress
allowlist, a one-line change of the runtime config (PCR2 differs: no key, the app never starts),
and a host that substitutes another sealed file. The same app is also reached through attested
TLS (the enclave terminates TLS with a key its attestation document names): `attest tls`, curl
with the printed pin, and the Python, C++ and Node clients classify through it; a parent that puts
its own TLS endpoint in front of the ingress (a relay with a certificate it made) is refused by all
four, and so are wrong PCRs.

usage: demo.py BUILD_DIR WORK_DIR [--record DIR]

--record DIR keeps every byte the parent relays (host link, KMS proxy, both ingresses) for
tests/examples/python_inference_e2e_test.py's parent-blindness check.

Needs root (the simulator creates namespaces).
"""
import argparse
import hashlib
import http.server
import importlib.util
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "python"))
from shield_nitro.testing import CommandFailed, ProcessStack, RecordingRelay, free_port, port_open  # noqa: E402

_spec = importlib.util.spec_from_file_location("model_inference_demo", REPO / "examples" / "model-inference" / "demo.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)
DemoFailed, step, say, check, wait_until = base.DemoFailed, base.step, base.say, base.check, base.wait_until

ACCOUNT, REGION, ROLE, ADMIN_ROLE, INSTANCE_ID = base.ACCOUNT, base.REGION, base.ROLE, base.ADMIN_ROLE, base.INSTANCE_ID
KMS_HOST = base.KMS_HOST
CID, HOST_PORT, KMS_PROXY_PORT, INGRESS_VSOCK, TLS_VSOCK, APP_PORT = 16, 7000, 8000, 5000, 5001, 8080
EGRESS_PORT, KMS_API_PORT = 3128, 9100
CA_IN_IMAGE = "/etc/shield-nitro/kms-ca.pem"
CONTEXT = {"app": "digits", "artifact": "model"}
RECORD_SHIFT = 10  # --record: the host agent reaches the enclave's ingress ports through relays this many ports up
ALLOWED_HOST = "127.0.0.2"


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """The outside world the app may reach: one allowlisted HTTP server on the parent."""

    def do_GET(self):
        body = b"hello from the allowlisted server\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TlsInterceptor:
    """A dishonest parent's man in the middle of the attested-TLS ingress: it listens in the
    ingress's place with a certificate it made (its own key), opens its own TLS connection to the
    enclave for each client, and relays the plaintext between them, reading all of it. The
    attestation requests it passes on get genuine, fresh documents, which name the enclave's key,
    not the key of the connection the client is on."""

    def __init__(self, folder, upstream_port):
        folder.mkdir(parents=True, exist_ok=True)
        _, cert, key = base.make_ca_and_server_cert(folder, ["localhost"], "127.0.0.1")
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert, key)
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.check_hostname, self.client_ctx.verify_mode = False, ssl.CERT_NONE
        self.upstream = ("127.0.0.1", upstream_port)
        self.seen = bytearray()  # the plaintext the clients sent through it
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return  # closed
            t = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, raw):
        raw.settimeout(30)
        try:
            with self.server_ctx.wrap_socket(raw, server_side=True) as down, \
                    self.client_ctx.wrap_socket(socket.create_connection(self.upstream, timeout=30)) as up:
                self._pump(down, up)
        except (OSError, ssl.SSLError):
            pass  # a client that refuses this certificate ends the handshake: the point of the demo
        finally:
            raw.close()

    def _pump(self, down, up):
        while True:
            ready = [s for s in (down, up) if s.pending()] or select.select([down, up], [], [], 30)[0]
            if not ready:
                return
            for s in ready:
                data = s.recv(65536)
                if not data:
                    if s is up:
                        down.unwrap()  # the enclave closed: close the client's side cleanly too
                    return
                if s is down:
                    with self.lock:
                        self.seen += data
                (up if s is down else down).sendall(data)

    def close(self):
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.server.close()
        for t in self.threads:
            t.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AppDemo:
    def __init__(self, build, work, record=None):
        self.build, self.work = Path(build).resolve(), Path(work).resolve()
        self.cli = self.build / "shield-nitro"
        self.client_cpp = self.build / "examples" / "python-inference" / "client-cpp"
        self.enclave_bin = self.build / "shield-nitro-enclave"
        self.model_dir = self.build / "examples" / "model-inference" / "model"
        self.state = self.work / "enclave"
        self.vsock = self.state / "vsock"
        self.record = Path(record).resolve() if record else None
        self.stack = None
        self.servers = []
        self.relays = []
        self.data_key = b""   # learnt only with --record, for the parent-blindness check
        self.vsock_shift = RECORD_SHIFT if record else 0  # --record: the host agent's ingress goes via a recording relay

    def run(self):
        for path in [self.cli, self.enclave_bin, self.client_cpp, self.model_dir / "mlp.weights"]:
            check(path.exists(), f"{path} is missing: build shield-nitro shield-nitro-enclave client-cpp model_artifacts first")
        shutil.rmtree(self.work, ignore_errors=True)
        (self.work / "logs").mkdir(parents=True)
        saved = os.environ.get("SHIELD_NITRO_VSOCK_DIR")
        os.environ["SHIELD_NITRO_VSOCK_DIR"] = str(self.vsock)
        self.stack = ProcessStack(self.cli, self.work / "logs", echo=say)
        try:
            self.prepare_kms()
            self.seal_model()
            self.build_image()
            self.make_key_policy()
            self.start_host_agent()
            self.run_enclave()
            self.classify()
            self.attested_tls()
            self.kms_and_egress()
            self.refuse_changed_config()
            self.refuse_substituted_artifact()
            step("Terminate everything")
            self.stop_enclave()
        finally:
            self.stack.close()
            for s in self.servers:
                s.shutdown()
            for r in self.relays:
                r.close()
            if saved is None:
                os.environ.pop("SHIELD_NITRO_VSOCK_DIR", None)
            else:
                os.environ["SHIELD_NITRO_VSOCK_DIR"] = saved

    # -- the producer's side ----------------------------------------------------------------
    def prepare_kms(self):
        step("A local KMS over TLS, trusting the simulated NSM's root (as AWS KMS trusts the Nitro root)")
        tls = self.work / "tls"
        tls.mkdir()
        self.ca_pem, cert, key = base.make_ca_and_server_cert(tls, [KMS_HOST], "127.0.0.1")
        self.stack.run("nsm-sim", "init", self.state / "nsm", "--pcr", "0=" + "11" * 48)  # creates the chain; sim run measures the EIF
        self.kms_port = free_port()
        kms_dir = self.work / "kms"
        self.stack.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{self.kms_port}", "--state", kms_dir,
                         "--tls-cert", cert, "--tls-key", key, "--trust-root", self.state / "nsm" / "root.pem",
                         "--account", ACCOUNT, "--region", REGION, ready=port_open(self.kms_port))
        self.credentials_file = kms_dir / "credentials"
        demo_creds = base.from_shared_file(str(self.credentials_file), "admin")
        self.kms = self.kms_client(demo_creds)
        self.key_arn = self.kms.create_key(Description="python-inference model")["KeyMetadata"]["Arn"]
        say(f"key {self.key_arn}")

    def kms_client(self, creds):
        import botocore.session
        return botocore.session.Session().create_client(
            "kms", region_name=REGION, endpoint_url=f"https://127.0.0.1:{self.kms_port}", verify=str(self.ca_pem),
            aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key)

    def producer_env(self):
        return {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_file), "AWS_PROFILE": "admin"}

    def seal_model(self):
        step("The model owner seals the weights: one self-describing file (key id, wrapped data key, context)")
        self.sealed = self.work / "model.sealed"
        ctx = [a for k, v in CONTEXT.items() for a in ("--encryption-context", f"{k}={v}")]
        out = self.stack.run("seal", "--key-id", self.key_arn, *ctx, "--endpoint", f"https://127.0.0.1:{self.kms_port}",
                             "--region", REGION, "--kms-ca", self.ca_pem, "--json",
                             self.model_dir / "mlp.weights", "-o", self.sealed, env=self.producer_env())
        # The runtime config's pin: the SHA-256 of the file's headers (its first PrefixBytes bytes, up to the
        # first record), checked by the enclave before it asks KMS; nothing else needs hashing.
        summary = json.loads(out)
        self.sealed_pin = summary["HeaderSha256"]
        prefix = self.sealed.read_bytes()[:summary["PrefixBytes"]]
        check(hashlib.sha256(prefix).hexdigest() == self.sealed_pin,
              "seal's HeaderSha256 is not the SHA-256 of the file's first PrefixBytes bytes")
        say(f"model.sealed: {self.sealed.stat().st_size} bytes, header_sha256 {self.sealed_pin[:32]}... "
            f"(its first {len(prefix)} bytes); the data key was wiped, only KMS can unwrap it")
        # Another file of the same producer under the same key and context (the test set): what a dishonest
        # host could try to pass off as the model later.
        self.other_sealed = self.work / "other.sealed"
        self.other_pin = json.loads(self.stack.run(
            "seal", "--key-id", self.key_arn, *ctx, "--endpoint", f"https://127.0.0.1:{self.kms_port}",
            "--region", REGION, "--kms-ca", self.ca_pem, "--json", self.model_dir / "testset.bin",
            "-o", self.other_sealed, env=self.producer_env()))["HeaderSha256"]
        header = json.loads(self.stack.run("unseal", "--show", "--json", self.sealed))
        if self.record:  # the test's needle: the data key, which the admin may still unwrap before the policy
            import base64
            self.data_key = self.kms.decrypt(CiphertextBlob=base64.b64decode(header["CiphertextBlob"]),
                                             EncryptionContext=CONTEXT)["Plaintext"]
        say(f"header: KeyId {header['KeyId']}, EncryptionContext {json.dumps(header['EncryptionContext'])}")

    def runtime_yaml(self, allow_port, extra=""):
        return f"""version: 1
app:
  user: "1000:1000"
  workdir: /app
  env: {{MODEL_PATH: /run/shield/model.bin, PORT: "{APP_PORT}", AWS_REGION: {REGION}}}
  restart: on-failure
  max_restarts: 2
host: {{cid: 3, port: {HOST_PORT}}}
kms:
  region: {REGION}
  endpoint: https://{KMS_HOST}
  proxy_port: {KMS_PROXY_PORT}
  ca_file: {CA_IN_IMAGE}
  api_port: {KMS_API_PORT}
storage: {{path: /run/shield, size_mib: 64}}
artifacts:
  - name: model
    source: host
    path: /run/shield/model.bin
    key_id: {self.key_arn}
    encryption_context: {json.dumps(CONTEXT)}
    header_sha256: {self.sealed_pin}
egress:
  proxy_port: {EGRESS_PORT}
  allow: ["{ALLOWED_HOST}:{allow_port}"]
ingress:
  - {{vsock_port: {INGRESS_VSOCK}, app_port: {APP_PORT}, mode: passthrough}}
  - {{vsock_port: {TLS_VSOCK}, app_port: {APP_PORT}, mode: attested-tls}}
logs: {{buffer_kib: 1024}}
{extra}"""

    def build_image(self):
        step("Build the app's image from this machine's Debian files (no Docker), then the EIF with the supervisor")
        self.image = self.work / "app.tar"
        subprocess.run([sys.executable, HERE / "make_image.py", "-o", self.image,
                        "--file", f"{self.ca_pem}:{CA_IN_IMAGE}"], check=True)
        # 127.0.0.2: the parent's loopback, but not the enclave's NO_PROXY (localhost, 127.0.0.1), so the app's
        # requests to it go through the egress proxy, as they would to a host on the internet.
        self.allowed = http.server.ThreadingHTTPServer((ALLOWED_HOST, 0), QuietHandler)
        self.servers.append(self.allowed)
        threading.Thread(target=self.allowed.serve_forever, daemon=True).start()
        self.runtime = self.work / "runtime.yaml"
        self.runtime.write_text(self.runtime_yaml(self.allowed.server_address[1]))
        say(f"runtime.yaml: the app runs as 1000:1000, one artifact pinned by key, context and header_sha256, egress to "
            f"{ALLOWED_HOST}:{self.allowed.server_address[1]} only, ingress vsock {INGRESS_VSOCK} -> app port {APP_PORT}")
        self.blobs = self.kernel_blobs()
        self.eif, self.pcrs = self.make_eif("app", self.runtime)

    def kernel_blobs(self):
        blobs = self.work / "blobs"
        self.stack.run("eif", "blobs", "--stand-in", "-o", blobs)
        return blobs

    def make_eif(self, name, runtime):
        eif = self.work / f"{name}.eif"
        built = json.loads(self.stack.run("eif", "build", "--blobs", self.blobs, "--image", self.image,
                                          "--runtime", runtime, "--name", "python-inference", "--version", "1",
                                          "-o", eif))
        pcrs = {i: built["Measurements"][f"PCR{i}"] for i in (0, 1, 2)}
        say(f"{eif.name}: {eif.stat().st_size >> 20} MiB, PCR2 {pcrs[2][:32]}...")
        return eif, pcrs

    def make_key_policy(self):
        step("The key's policy: Decrypt only for an attestation of exactly this EIF on this parent")
        pcr3 = hashlib.sha384(bytes(48) + ROLE.encode()).hexdigest()
        policy = self.stack.run("policy", "--eif", self.eif, "--pcr", f"3={pcr3}", "--role-arn", ROLE,
                                "--admin-arn", ADMIN_ROLE, "--account", ACCOUNT).decode()
        self.kms.put_key_policy(KeyId=self.key_arn, PolicyName="default", Policy=policy)
        say("PCR0/1/2 of app.eif (so also its runtime config) and PCR3 of the parent's role")

    # -- the parent's side ------------------------------------------------------------------
    def host_yaml(self, runtime, sealed):
        self.ingress_port = free_port()
        self.tls_port = free_port()
        self.metrics_port = free_port()
        return f"""enclaves:
  - name: app
    cid: {CID}
    runtime: {runtime}
    artifacts: {{model: {sealed}}}
    ingress:
      - {{listen: "tcp://127.0.0.1:{self.ingress_port}", vsock_port: {INGRESS_VSOCK + self.vsock_shift}}}
      - {{listen: "tcp://127.0.0.1:{self.tls_port}", vsock_port: {TLS_VSOCK + self.vsock_shift}}}
    logs: file:{self.work / 'logs' / 'app.jsonl'}
kms:
  target: 127.0.0.1:{self.kms_port}
credentials: file:{self.credentials_file}
metrics: "tcp://127.0.0.1:{self.metrics_port}"
"""

    def start_host_agent(self, runtime=None, sealed=None, name="host"):
        if runtime is None:
            step("The host agent on the parent: host link, KMS proxy, egress relay, ingress, logs, metrics")
        self.vsock.mkdir(parents=True, exist_ok=True)  # the simulator's vsock: unix sockets in this folder
        runtime = runtime or self.runtime
        if self.record:
            runtime = self.recorded_runtime(runtime, name)
        host = self.work / f"{name}.yaml"
        host.write_text(self.host_yaml(runtime, sealed or self.sealed))
        env = {**os.environ, "AWS_PROFILE": "enclave", "SHIELD_NITRO_VSOCK_CID": "3"}
        self.host_proc = self.stack.start(name, "host", "run", "--config", host, env=env,
                                          ready=port_open(self.metrics_port))
        via = f" (recorded on the way, via vsock ports +{self.vsock_shift})" if self.vsock_shift else ""
        say(f"ingress tcp://127.0.0.1:{self.ingress_port} -> vsock://{CID}:{INGRESS_VSOCK} (passthrough), "
            f"tcp://127.0.0.1:{self.tls_port} -> vsock://{CID}:{TLS_VSOCK} (attested TLS){via}; metrics on "
            f"127.0.0.1:{self.metrics_port}; the role's credentials from kms-local's credentials file")

    def recorded_runtime(self, runtime, name):
        """--record: the host agent listens one port up, behind relays that keep every byte the enclave
        sends to or gets from the parent (host link: credentials, artifacts, logs, egress; the KMS proxy),
        and reaches the enclave's two ingress ports through relays RECORD_SHIFT ports up that keep what
        the clients and the app exchange through the parent (passthrough: in the clear; attested TLS:
        TLS records only)."""
        copy = self.work / ("recorded-" + Path(runtime).name)
        shift = self.vsock_shift
        copy.write_text(Path(runtime).read_text()
                        .replace(f"port: {HOST_PORT}}}", f"port: {HOST_PORT + 1}}}")
                        .replace(f"proxy_port: {KMS_PROXY_PORT}", f"proxy_port: {KMS_PROXY_PORT + 1}")
                        .replace(f"vsock_port: {INGRESS_VSOCK},", f"vsock_port: {INGRESS_VSOCK + shift},")
                        .replace(f"vsock_port: {TLS_VSOCK},", f"vsock_port: {TLS_VSOCK + shift},"))
        for r in self.relays:
            r.close()
        self.relays = [RecordingRelay(self.vsock / f"3_{HOST_PORT}.sock", self.vsock / f"3_{HOST_PORT + 1}.sock",
                                      self.record / f"{name}-host-link"),
                       RecordingRelay(self.vsock / f"3_{KMS_PROXY_PORT}.sock",
                                      self.vsock / f"3_{KMS_PROXY_PORT + 1}.sock", self.record / f"{name}-kms"),
                       RecordingRelay(self.vsock / f"{CID}_{INGRESS_VSOCK + shift}.sock",
                                      self.vsock / f"{CID}_{INGRESS_VSOCK}.sock", self.record / f"{name}-ingress-passthrough"),
                       RecordingRelay(self.vsock / f"{CID}_{TLS_VSOCK + shift}.sock",
                                      self.vsock / f"{CID}_{TLS_VSOCK}.sock", self.record / f"{name}-ingress-tls")]
        return copy

    def run_enclave(self, eif=None):
        if eif is None and not hasattr(self, "log_mark"):
            step("Run the EIF under the simulator: the supervisor prepares everything, then starts the app")
        args = ["sim", "run", eif or self.eif, "--state", self.state, "--cid", CID, "--memory", 1024,
                "--cpus", min(2, os.cpu_count() or 1), "--role-arn", ROLE, "--instance-id", INSTANCE_ID]
        self.app_log = self.work / "logs" / "app.jsonl"
        self.log_mark = len(self.app_log.read_text().splitlines()) if self.app_log.exists() else 0
        self.stack.run(*args)
        self.stack.defer(lambda: self.stack.call("sim", "terminate", "--state", self.state), "sim terminate")

    def events(self):
        """The host agent's log records of the current enclave run (those after self.log_mark)."""
        if not self.app_log.exists():
            return []
        out = []
        for line in self.app_log.read_text().splitlines()[self.log_mark:]:
            try:
                out.append(json.loads(line[line.index("{"):]))
            except ValueError:
                pass
        return out

    def wait_for_app(self):
        wait_until(lambda: any(e.get("event") == "app_started" for e in self.events())
                   or any(e.get("event") == "start_failed" for e in self.events()), "the app to start", timeout=120)
        for e in self.events():
            if e.get("source") == "supervisor":
                say(f"[supervisor] {e.get('line', '')}")
        failed = [e for e in self.events() if e.get("event") == "start_failed"]
        check(not failed, f"the supervisor did not start the app: {failed[0].get('line') if failed else ''}")

    def classify(self):
        self.wait_for_app()
        step("A client on the parent classifies the test set through the ingress port")
        url = f"http://127.0.0.1:{self.ingress_port}"
        wait_until(lambda: self.get(url + "/healthz") is not None, "the app's /healthz through ingress", timeout=60)
        result = subprocess.run([sys.executable, HERE / "client.py", "--url", url, "--testset",
                                 self.model_dir / "testset.bin", "--reference", self.model_dir / "reference.json"],
                                capture_output=True, text=True)
        check(result.returncode == 0, f"classification failed: {result.stdout}{result.stderr}")
        summary = json.loads(result.stdout)
        say(f"{summary['images']} images, accuracy {summary['accuracy']}: identical to the plaintext model's answers")

    def attested_tls(self):
        step("The same app through attested TLS: the enclave holds the TLS key, its document names it")
        url = f"https://127.0.0.1:{self.tls_port}"
        root = self.state / "nsm" / "root.pem"
        pcr_args = [a for i in (0, 1, 2) for a in ("--pcr", f"{i}={self.pcrs[i]}")]
        verified = json.loads(self.stack.run("attest", "tls", url, *pcr_args, "--root", root, "--json"))
        self.tls_pin = verified["pin"]
        pin = self.tls_pin.removeprefix("sha256//")
        say(f"the enclave's TLS key: sha256//{pin} (bound to PCR0/1/2 by a fresh document on that connection)")
        curl = subprocess.run(["curl", "-sk", "--pinnedpubkey", f"sha256//{pin}", url + "/healthz"],
                              capture_output=True, text=True, timeout=30)
        check(curl.returncode == 0 and '"ok": true' in curl.stdout, f"curl with the pin failed: {curl.returncode} {curl.stderr}")
        say(f"$ curl -k --pinnedpubkey sha256//{pin[:12]}... {url}/healthz  ->  {curl.stdout.strip()}")
        say("(-k: the certificate is self-signed; the pin, checked against the attested key, is the trust)")
        wrong = subprocess.run(["curl", "-sk", "--pinnedpubkey", "sha256//" + "A" * 43 + "=", url + "/healthz"],
                               capture_output=True, text=True, timeout=30)
        check(wrong.returncode == 90, f"curl with another pin was not refused (exit {wrong.returncode})")
        say("curl with any other pin: refused (exit 90)")
        testset = (self.model_dir / "testset.bin").read_bytes()
        count = int.from_bytes(testset[8:12], "little")
        labels = testset[len(testset) - count:]
        reference = json.loads((self.model_dir / "reference.json").read_text())["predictions"]
        plain_accuracy = round(sum(p == l for p, l in zip(reference, labels)) / count, 4)
        for name, argv, _ in self.tls_clients(url, self.pcrs):
            if name == "curl":
                continue
            result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            check(result.returncode == 0, f"the {name} client through attested TLS failed: {result.stdout}{result.stderr}")
            summary = json.loads(result.stdout.splitlines()[-1])
            check(summary["matches_reference"] and summary["accuracy"] == plain_accuracy,
                  f"the {name} client's answers differ from the plaintext model's: {summary}")
            # client-cpp sends every batch on one keep-alive connection, verified once.
            check(name != "C++" or (summary["connections"], summary["verifications"]) == (1, 1),
                  f"client-cpp did not keep its one attested connection alive: {summary}")
            say(f"{name + ':':8}{self.TLS_CLIENT_HOW[name]}: {summary['images']} images, accuracy "
                f"{summary['accuracy']} = the plaintext model's, every answer the same")
        if not self.node_ready():
            say("Node client skipped: run `npm ci` in js/ first (make test does)")
        self.refuse_wrong_pcrs(url)
        self.refuse_man_in_the_middle(url)

    TLS_CLIENT_HOW = {"Python": "shield_nitro.attested_tls, pinned urllib",
                      "C++": "client-cpp, parent::AttestedTlsClient, keep-alive over pinned OpenSSL",
                      "Node": "js/ @shield-nitro/verify, pinned https.Agent"}

    def node_ready(self):
        return shutil.which("node") and (REPO / "js" / "node_modules").is_dir()

    def tls_clients(self, url, pcrs):
        """The attested-TLS clients as (name, argv, exit code when refused): curl with the pin `attest tls`
        printed, then the Python, C++ and Node clients, which verify the document themselves (under pcrs)."""
        model, root = self.model_dir, self.state / "nsm" / "root.pem"
        data = ["--testset", model / "testset.bin", "--reference", model / "reference.json"]
        pcr_args = [a for i in (0, 1, 2) for a in ("--pcr", f"{i}={pcrs[i]}")]
        clients = [("curl", ["curl", "-sk", "--pinnedpubkey", self.tls_pin, url + "/healthz"], 90),
                   ("Python", [sys.executable, HERE / "client.py", "--url", url, *data, "--root", root, *pcr_args], 1),
                   ("C++", [self.client_cpp, "--url", url, *pcr_args, "--root", root, *data, "--json"], 1)]
        if self.node_ready():
            clients.append(("Node", [shutil.which("node"), HERE / "client.mjs", url, model / "testset.bin",
                                     model / "reference.json", root, *[f"{i}={pcrs[i]}" for i in (0, 1, 2)]], 1))
        return clients

    def refuse_wrong_pcrs(self, url):
        wrong = dict(self.pcrs)
        wrong[2] = "00" * 48 if self.pcrs[2] != "00" * 48 else "11" * 48
        refused = []
        for name, argv, code in self.tls_clients(url, wrong)[1:]:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            check(result.returncode == code and not result.stdout.strip(),
                  f"the {name} client expecting another PCR2 was not refused (exit {result.returncode}): {result.stdout}{result.stderr}")
            refused.append(name)
        say(f"expecting another PCR2 (another image or runtime config): {', '.join(refused)} refuse it (exit 1), "
            f"no image sent")

    def refuse_man_in_the_middle(self, url):
        step("Refusal: the parent puts its own TLS endpoint in front of the ingress (a relay with a certificate it made)")
        with TlsInterceptor(self.work / "mitm", self.tls_port) as mitm:
            murl = f"https://127.0.0.1:{mitm.port}"
            naive = subprocess.run(["curl", "-sk", murl + "/healthz"], capture_output=True, text=True, timeout=30)
            check(naive.returncode == 0 and '"ok": true' in naive.stdout, f"the relay does not relay: {naive.returncode} {naive.stderr}")
            check(b"GET /healthz" in mitm.seen, "the relay did not read the unpinned client's request")
            first_line = bytes(mitm.seen).split(b"\r\n")[0].decode()
            say(f"a client that checks nothing (curl -k, no pin) gets through, and the relay reads its request: "
                f"{first_line!r}")
            attestations = mitm.seen.count(b"/.well-known/shield-nitro/attestation")
            for name, argv, code in self.tls_clients(murl, self.pcrs):
                result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                why = (result.stderr.strip().splitlines() or [""])[-1]
                check(result.returncode == code, f"{name} through the parent's relay was not refused "
                                                 f"(exit {result.returncode}, expected {code}): {result.stdout}{result.stderr}")
                say(f"{name + ':':8}refused (exit {code}){': ' + why if why else ': its key is not the pinned one'}")
            asked = mitm.seen.count(b"/.well-known/shield-nitro/attestation") - attestations
            check(asked >= 2, f"the SDK clients did not ask for a document through the relay ({asked} requests)")
            check(b"/classify" not in mitm.seen, "an image reached the parent's relay")
            say(f"the relay passed {asked} attestation requests to the enclave and back: genuine documents, but for the "
                f"enclave's key, not this connection's; no client sent it a single image")

    def get(self, url):
        """The app's JSON answer (errors included), or None when it cannot be reached."""
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)
        except (OSError, ValueError):
            return None

    def kms_and_egress(self):
        step("Inside the enclave, the app's stock botocore calls KMS; its HTTP client goes out through egress")
        url = f"http://127.0.0.1:{self.ingress_port}"
        r = self.get(url + "/random?bytes=16")
        check(r and len(r.get("random", "")) == 32, f"GenerateRandom through the enclave's KMS endpoint failed: {r}")
        say(f"GenerateRandom: {r['random']} (with Recipient: the plaintext exists only inside the enclave)")
        allowed = f"http://{ALLOWED_HOST}:{self.allowed.server_address[1]}/"
        r = self.get(url + "/fetch?url=" + urllib.request.quote(allowed, safe=""))
        check(r and r.get("status") == 200, f"allowlisted fetch failed: {r}")
        say(f"GET {allowed}: {r['status']}, {r['bytes']} bytes (allowlisted)")
        denied = f"http://{ALLOWED_HOST}:{self.kms_port}/"
        r = self.get(url + "/fetch?url=" + urllib.request.quote(denied, safe=""))
        check(r and "403" in r.get("error", ""), f"a URL off the allowlist was not refused: {r}")
        say(f"GET {denied}: refused by the enclave's egress proxy ({r['error']})")

    def stop_enclave(self):
        self.stack.call("sim", "terminate", "--state", self.state)

    def refuse_changed_config(self):
        step("Refusal: the same image with a one-line change in its runtime config (another egress port)")
        self.stop_enclave()
        changed = self.work / "runtime-changed.yaml"
        changed.write_text(self.runtime_yaml(self.allowed.server_address[1] + 1))
        eif, pcrs = self.make_eif("changed", changed)
        check(pcrs[2] != self.pcrs[2], "PCR2 did not change with the runtime config")
        self.run_enclave(eif)
        wait_until(lambda: any(e.get("event") in ("start_failed", "app_started") for e in self.events()),
                   "the supervisor to give up", timeout=120)
        check(not any(e.get("event") == "app_started" for e in self.events()), "the app started with a changed config")
        reason = next(e for e in self.events() if e.get("event") == "start_failed")
        say(f"KMS refused the key: {reason.get('line', reason)}")
        say("the app never started")
        self.stop_enclave()

    def refuse_substituted_artifact(self):
        step("Refusal: a host that serves another sealed file (same key) in place of the model")
        other = self.other_sealed
        # A dishonest host edits its own copy of the runtime config to match the file it serves.
        lying = self.work / "runtime-host-copy.yaml"
        lying.write_text(self.runtime.read_text().replace(self.sealed_pin, self.other_pin))
        self.host_proc.terminate()
        self.host_proc.wait(10)
        self.start_host_agent(runtime=lying, sealed=other, name="host-dishonest")
        self.run_enclave()
        wait_until(lambda: any(e.get("event") in ("start_failed", "app_started") for e in self.events()),
                   "the supervisor to give up", timeout=120)
        check(not any(e.get("event") == "app_started" for e in self.events()), "the app started on a substituted file")
        reason = next(e for e in self.events() if e.get("event") == "start_failed")
        line = reason.get("line", "")
        check(f"header_sha256 {self.sealed_pin}" in line, f"refused for another reason than the pin: {line}")
        check(not any(e.get("event") == "artifact_ready" for e in self.events()), "the substituted file was placed")
        say(f"the enclave refused it on its header_sha256, before asking KMS: {line or reason}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("work")
    parser.add_argument("--record", help="keep every byte the host relays in this folder")
    a = parser.parse_args(argv)
    try:
        AppDemo(a.build, a.work, record=a.record).run()
    except (DemoFailed, CommandFailed) as e:
        print(f"demo: FAILED: {e}", file=sys.stderr)
        return 1
    print("\ndemo (run any app): every step behaved as shown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
