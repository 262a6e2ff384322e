"""Runs the shell and Python blocks of a document as written, then checks what they did.

A fenced block is run when the line before it (blank lines aside) is one of:

    <!-- test: runs here -->            a shell block, run in order in one bash session (set -euo
                                        pipefail); a line that starts a service with `... --listen EP &`
                                        is followed by a wait until EP accepts, and services still
                                        running at the end are stopped
    <!-- test: background -->           a long-running service: started, checked alive after a
                                        second (it passed its start-up checks), then stopped
    <!-- test: file PATH -->            the block's text is written to PATH first
    <!-- test: synopsis -->             a usage synopsis: each `shield-nitro ...` command (`a|b`
                                        alternatives expanded) exists, and every --option it shows
                                        is in the --help of one of them
    <!-- test: python -->               a Python block: the document's Python blocks run in order
                                        in one interpreter (the system one, the SDK from python/),
                                        after the shell blocks
    <!-- test: not here: REASON -->     not run (e.g. it needs AWS); REASON is required

Every shell and Python block and every block with a `shield-nitro` command line must carry one
of these marks, so a new command or example in a document cannot go untested by accident.

Each document has its setup here (DOCS), as small as its blocks need: the stand-in blobs
(`shield-nitro eif blobs --stand-in`), an EIF, an NSM simulator, kms-local, a running `enclave
serve`... Absolute paths of the document become local ones (a temporary folder, the build's CLI,
a free port) and the commands run in that folder with `shield-nitro` on PATH. Then a few results
are checked.

usage: docs_test.py BUILD_DIR DOC    (DOC relative to the repository, e.g. docs/kms.md;
                                      ctest: docs_*; 77 = skipped: the document needs root)
"""
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
from shield_nitro.testing import Checklist, ProcessStack, free_port, port_open  # noqa: E402

MARK = re.compile(r"^<!-- test: (runs here|background|synopsis|python|file (\S+)|not here: .+) -->$")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"sh", "bash", "shell"}
CODE = SHELL | {"python"}
# A line that starts a service in the background: `... --listen EP ... &  # comment`.
BACKGROUND = re.compile(r"[^&]&\s*(#.*)?$")
LISTEN = re.compile(r"--listen\s+(\S+)")
ACCOUNT = "111122223333"

PRELUDE = r"""set -euo pipefail
trap 'sn_jobs=$(jobs -p); [ -z "$sn_jobs" ] || kill $sn_jobs 2>/dev/null; wait 2>/dev/null' EXIT
sn_wait_listen() {  # $1: where the service started on the line before listens
  local ep=$1 a i
  for i in $(seq 200); do
    case $ep in
      unix:*) [ -S "${ep#unix:}" ] && return 0 ;;
      vsock://ANY:*) sleep 1; return 0 ;;
      vsock://*) a=${ep#vsock://}; [ -S "$SHIELD_NITRO_VSOCK_DIR/${a%%:*}_${a##*:}.sock" ] && return 0 ;;
      *) a=${ep#tcp://}; (exec 3<>"/dev/tcp/${a%%:*}/${a##*:}") 2>/dev/null && return 0 ;;
    esac
    kill -0 $! 2>/dev/null || { echo "docs test: the service started above exited" >&2; return 1; }
    sleep 0.05
  done
  echo "docs test: nothing listens on $ep after 10 s" >&2; return 1
}
"""


def blocks(text):
    """[(line number, language, mark or None, body)] for every fenced block of a document."""
    lines, out, mark, i = text.splitlines(), [], None, 0
    while i < len(lines):
        m = MARK.match(lines[i].strip())
        if m:
            mark = m.group(1)
        f = FENCE.match(lines[i])
        if f:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            out.append((start, f.group(1), mark, "\n".join(body) + "\n"))
            mark = None
        elif lines[i].strip() and not m:
            mark = None   # a mark applies to the very next block only
        i += 1
    return out


def needs_mark(lang, body):
    return lang in CODE or any(line.startswith("shield-nitro ") for line in body.splitlines())


def with_waits(body):
    """The block's lines, each background service followed by a wait until it listens."""
    out = []
    for line in body.splitlines():
        out.append(line)
        if BACKGROUND.search(line) and not line.lstrip().startswith("#"):
            m = LISTEN.search(line)
            out.append(f"sn_wait_listen '{m.group(1)}'" if m else "sleep 1")
    return "\n".join(out) + "\n"


def synopsis_problems(cli, body):
    """What a synopsis block shows that the CLI does not have (empty when it matches)."""
    commands, problems = [], []
    for line in body.splitlines():
        if line.startswith("shield-nitro "):
            commands.append(line)
        elif line[:1].isspace() and commands:
            commands[-1] += " " + line.strip()
    for command in commands:
        words = command.split()[1:]
        paths = [[]]
        for w in words:
            if not re.fullmatch(r"[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*", w):
                break
            paths = [p + [alt] for p in paths for alt in w.split("|")]
        helps = []
        for p in paths:
            proc = subprocess.run([str(cli), *p, "--help"], capture_output=True, text=True)
            if proc.returncode != 0 or f"Usage: shield-nitro {' '.join(p)} " not in proc.stdout:
                problems.append(f"`shield-nitro {' '.join(p)}` does not exist")
            helps.append(proc.stdout)
        for opt in sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command))):
            if not any(re.search(re.escape(opt) + r"(?![\w-])", h) for h in helps):
                problems.append(f"{opt} is not an option of `shield-nitro {' '.join(paths[0][:1])} "
                                f"{'|'.join(p[-1] for p in paths)}`")
    return problems


class Run:
    """One document's run: its temporary folder (the working directory), substitutions, environment."""

    def __init__(self, build, tmp, checklist):
        self.build, self.tmp, self.checklist = build, tmp, checklist
        self.cli = build / "shield-nitro"
        self.stack = ProcessStack(self.cli, tmp / "logs")
        self.subs = {"/usr/local/bin/shield-nitro": str(self.cli),
                     "/usr/local/bin/shield-nitro-enclave": str(build / "shield-nitro-enclave")}
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "shield-nitro").symlink_to(self.cli)
        # Debian's tools (python3, aws) as on a machine set up by scripts/bootstrap, whatever this
        # shell had before them.
        path = f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.env = dict(os.environ, PATH=path, AWS_EC2_METADATA_DISABLED="true",
                        AWS_CONFIG_FILE=str(tmp / "no-aws-config"))
        for k in ("SHIELD_NITRO_VSOCK_DIR", "SHIELD_NITRO_ENCLAVE", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
            self.env.pop(k, None)
        self.work = tmp / "work"
        self.work.mkdir()
        (tmp / "logs").mkdir()

    def expect(self, cond, what):
        self.checklist.expect(cond, what)

    def local(self, text):
        for k, v in self.subs.items():
            text = re.sub(re.escape(k) + r"(?![\w.-])", lambda _m: v, text)
        return text

    def sn(self, *args, expect=0):
        return self.stack.run(*args, expect=expect)

    def stand_in_blobs(self):
        blobs = self.tmp / "blobs"
        self.sn("eif", "blobs", "--stand-in", "-o", blobs)
        return blobs

    def app_eif(self, path, cmd, binary=None):
        """An EIF built from stand-in blobs: binary (or a placeholder /bin/app) and cmd as /cmd."""
        blobs = self.stand_in_blobs()
        rootfs = self.tmp / f"{path.stem}-rootfs"
        if binary:
            self.sn("eif", "rootfs", "--binary", binary, "-o", rootfs)
        else:
            (rootfs / "bin").mkdir(parents=True)
            (rootfs / "bin" / "app").write_text("#!/bin/sh\necho app\n")
        self.sn("eif", "build", "--blobs", blobs, "--rootfs", rootfs, "--cmd", json.dumps(cmd), "-o", path)
        return json.loads(self.sn("eif", "describe", path))["Measurements"]

    def nsm_sim(self, folder, pcr0, serve=False):
        self.sn("nsm-sim", "init", folder, "--pcr", f"0={pcr0}")
        if serve:
            self.stack.start("nsm-sim", "nsm-sim", "serve", folder, ready=(folder / "nsm.sock").exists)

    def kms_local(self, folder, trust_root):
        port = free_port()
        self.stack.start("kms-local", "kms-local", "--listen", f"127.0.0.1:{port}", "--state", folder,
                         "--trust-root", trust_root, "--account", ACCOUNT, ready=port_open(port))
        return port


# -- the documents ----------------------------------------------------------------------------

class Doc:
    root = False      # needs root (the simulator's namespaces)
    min_blocks = 1    # how many marked blocks must run: a document losing its marks fails

    def setup(self, run):
        pass

    def check(self, run):
        pass


class DeployAws(Doc):
    root, min_blocks = True, 6
    role = f"arn:aws:iam::{ACCOUNT}:role/enclave-parent"

    def setup(self, run):
        etc = run.tmp / "etc-nitro_enclaves"
        etc.mkdir()
        run.subs.update({"/usr/share/nitro_enclaves/blobs": str(run.stand_in_blobs()), "/etc/nitro_enclaves": str(etc),
                         "/tmp/enc": str(run.tmp / "enc")})
        run.env["SHIELD_NITRO_VSOCK_DIR"] = str(run.tmp / "parent-vsock")   # vsock as unix sockets
        (run.tmp / "parent-vsock").mkdir()
        run.stack.defer(lambda: run.stack.call("sim", "terminate", "--state", run.tmp / "enc"), "sim terminate")

    def check(self, run):
        described = json.loads(run.sn("eif", "describe", run.work / "app.eif"))["Measurements"]
        policy = (run.work / "policy.json").read_text()
        pcr3 = hashlib.sha384(bytes(48) + self.role.encode()).hexdigest()
        run.expect(described["PCR0"] in policy, "policy.json pins the EIF's PCR0 (ImageSha384)")
        run.expect(pcr3 in policy, "policy.json pins PCR3, the parent role's measurement")
        states = json.loads(run.sn("sim", "describe", "--state", run.tmp / "enc", "--json"))
        run.expect(bool(states) and states[0]["State"] == "TERMINATED", "the simulated enclave ran and was terminated")


class Simulator(Doc):
    root = True

    def setup(self, run):
        cmd = ["/bin/shield-nitro-enclave", "serve", "--listen", "vsock://ANY:5000", "--kms-via", "vsock://3:8000"]
        run.app_eif(run.work / "app.eif", cmd, binary=run.build / "shield-nitro-enclave")
        run.subs["/tmp/enc"] = str(run.tmp / "enc")
        run.stack.defer(lambda: run.stack.call("sim", "terminate", "--state", run.tmp / "enc"), "sim terminate")

    def check(self, run):
        states = json.loads(run.sn("sim", "describe", "--state", run.tmp / "enc", "--json"))
        run.expect(bool(states) and states[0]["State"] == "RUNNING", "the enclave runs under the simulator")
        run.expect((run.tmp / "enc" / "vsock" / "16_5000.sock").is_socket(),
                   "the enclave listens on vsock://16:5000 = /tmp/enc/vsock/16_5000.sock")
        run.sn("sim", "terminate", "--state", run.tmp / "enc")
        run.expect(not (run.tmp / "enc" / "vsock" / "16_5000.sock").exists(), "terminate removed the enclave's socket")


def serve_sealed_mlp(run, nsm, listen, env=None, images=8):
    """An enclave service (`shield-nitro-enclave serve`, simulated NSM in nsm, kms-local) and, in run.work, what a
    parent holds: data.key.enc (a data key for {"app": "demo"} under a key that only PCR0 of nsm
    may use), the example's MLP sealed as model.snst and plugin.snst, request.bin (images test
    images). Returns the plaintext model's predictions for them."""
    example = run.build / "examples" / "model-inference"
    kms = run.tmp / "kms"
    port = run.kms_local(kms, nsm / "root.pem")
    role = f"arn:aws:iam::{ACCOUNT}:role/shield-enclave"
    policy = run.sn("policy", "--pcr", f"0={run.pcr0}", "--role-arn", role, "--admin-arn",
                    f"arn:aws:iam::{ACCOUNT}:role/shield-admin", "--account", ACCOUNT).decode()
    import botocore.session
    from shield_nitro.credentials import from_shared_file
    admin = from_shared_file(str(kms / "credentials"), "admin")
    client = botocore.session.Session().create_client(
        "kms", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key)
    key = client.create_key()["KeyMetadata"]["Arn"]   # the owner makes the data key, then locks the key
    dk = client.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"app": "demo"})
    client.put_key_policy(KeyId=key, PolicyName="default", Policy=policy)
    (run.work / "data.key.enc").write_bytes(dk["CiphertextBlob"])
    key_file = run.tmp / "data.key"
    key_file.write_bytes(dk["Plaintext"])
    run.sn("encrypt", "--key-file", key_file, "--stream", example / "model" / "mlp.weights", run.work / "model.snst")
    run.sn("encrypt", "--key-file", key_file, "--stream", example / "mlp_plugin.so", run.work / "plugin.snst")
    data = (example / "model" / "testset.bin").read_bytes()
    _, _, _, dim = struct.unpack_from("<4sIII", data)
    (run.work / "request.bin").write_bytes(struct.pack("<4sIII", b"SNMI", images, dim, 0) + data[16:16 + images * dim * 4])
    run.stack.start("enclave", "serve", "--listen", listen, "--nsm", f"sim:{nsm}",
                    "--kms-endpoint", f"http://127.0.0.1:{port}", env=env, program=run.build / "shield-nitro-enclave",
                    ready=lambda: (run.tmp / "logs" / "enclave.log").read_bytes().find(b"serving on") >= 0)
    # The parent's credentials for load-key: the enclave role's, from kms-local's file.
    run.env.update(AWS_SHARED_CREDENTIALS_FILE=str(kms / "credentials"), AWS_PROFILE="enclave")
    return json.loads((example / "model" / "reference.json").read_text())["predictions"][:images]


class ParentSdk(Doc):
    """The scripted session against an enclave service on a unix socket."""
    images = 8

    def setup(self, run):
        run.pcr0 = secrets.token_hex(48)
        nsm = run.tmp / "nsm"
        run.nsm_sim(nsm, run.pcr0, serve=True)
        self.expected = serve_sealed_mlp(run, nsm, f"unix:{run.tmp / 'enclave.sock'}", images=self.images)
        run.subs.update({"/tmp/enclave.sock": str(run.tmp / "enclave.sock"), "/tmp/nsm": str(nsm)})
        run.env["PCR0"] = run.pcr0

    def check(self, run):
        reply = (run.work / "reply.bin").read_bytes() if (run.work / "reply.bin").exists() else b""
        ok = len(reply) >= 12 + 4 * self.images and reply[:4] == b"SNMO"
        got = list(struct.unpack_from(f"<{self.images}I", reply, 12)) if ok else []
        run.expect(got == self.expected, f"reply.bin holds the plaintext model's predictions {self.expected}")


class Kms(Doc):
    min_blocks = 2

    def setup(self, run):
        run.app_eif(run.work / "app.eif", ["/bin/app"])
        run.nsm_sim(run.tmp / "nsm", secrets.token_hex(48))
        self.port = free_port()
        run.subs.update({"/tmp/nsm": str(run.tmp / "nsm"), "/tmp/kms": str(run.tmp / "kms"),
                         "127.0.0.1:4566": f"127.0.0.1:{self.port}"})

    def check(self, run):
        pcr0 = json.loads(run.sn("eif", "describe", run.work / "app.eif"))["Measurements"]["PCR0"]
        policy = json.loads((run.work / "policy.json").read_text())
        run.expect(pcr0 in json.dumps(policy), "policy.json pins app.eif's PCR0")
        run.expect(any(s.get("Effect") == "Deny" for s in policy["Statement"]), "policy.json denies release without attestation")
        keys = list((run.tmp / "kms" / "keys").glob("*.json")) if (run.tmp / "kms" / "keys").exists() else []
        run.expect(len(keys) == 1, "`aws kms create-key` created a key in kms-local")


class Eif(Doc):
    min_blocks = 2

    def setup(self, run):
        blobs = run.stand_in_blobs()
        run.subs["/usr/share/nitro_enclaves/blobs"] = str(blobs)
        w = run.work
        arch = "arm64" if os.uname().machine == "aarch64" else "amd64"
        layer = self.tar(run.tmp / "layer.tar", {"bin/server": b"#!/bin/sh\n", "etc/app.conf": b"port=8000\n"})
        diff_id = "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/server"], "Env": ["PATH=/bin"]},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps([{"Config": "config.json", "RepoTags": ["app:1"], "Layers": ["layer.tar"]}]).encode()
        self.tar(w / "app.tar", {"config.json": config, "manifest.json": manifest, "layer.tar": layer.read_bytes()})
        self.tar(w / "export.tar", {"bin/server": b"#!/bin/sh\n"})
        (w / "build").mkdir()
        shutil.copy("/bin/true", w / "build" / "my-app")
        (w / "model.bin").write_bytes(bytes(range(256)) * 16)
        for name, dest in ((next(blobs.glob("*Image")).name, "bzImage"), ("cmdline", "cmdline")):
            shutil.copy(blobs / name, w / dest)
        run.sn("eif", "ramdisk", "--bootstrap", "--init", blobs / "init", "--nsm-ko", blobs / "nsm.ko", "-o", w / "boot.cpio")
        run.sn("eif", "ramdisk", "--rootfs-tar", w / "export.tar", "--cmd", '["/bin/server"]', "-o", w / "app.cpio")

    @staticmethod
    def tar(path, files):
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o755
                t.addfile(info, io.BytesIO(data))
        return path

    def check(self, run):
        described = json.loads(run.sn("eif", "describe", run.work / "app.eif"))
        run.expect(described["CheckCRC"] and "PCR2" in described["Measurements"], "app.eif describes")


class Runtime(Doc):
    """docs/runtime.md: its runtime config built into an EIF from a small `docker save` image."""
    min_blocks = 4

    def setup(self, run):
        run.subs["/usr/share/nitro_enclaves/blobs"] = str(run.stand_in_blobs())
        layer = Eif.tar(run.tmp / "rt-layer.tar", {"bin/server": b"#!/bin/sh\n", "opt/app/vocab.sealed": b"sealed"})
        config = json.dumps({"config": {"Entrypoint": ["/bin/server"], "Cmd": ["--port", "8080"], "Env": ["PATH=/bin"]}}).encode()
        manifest = json.dumps([{"Config": "config.json", "RepoTags": ["app:1"], "Layers": ["layer.tar"]}]).encode()
        Eif.tar(run.work / "app.tar", {"config.json": config, "manifest.json": manifest, "layer.tar": layer.read_bytes()})

    def check(self, run):
        shown = json.loads(run.sn("eif", "describe", run.work / "app.eif", "--runtime", "--json"))
        run.expect(shown.get("Supervised") and shown.get("App") == ["/bin/server", "--port", "8080"],
                   "app.eif runs the image's ENTRYPOINT + CMD under the supervisor")
        run.expect(shown.get("RuntimeConfig") == (run.work / "app.runtime.yaml").read_text(),
                   "the runtime config is in the image byte for byte")


class PythonReadme(Doc):
    """The install and test commands in the repository's top folder; the SDK examples against an
    enclave laid out as `sim run --state /tmp/enc` lays it out (vsock as STATE/vsock, the NSM in
    STATE/nsm), without the simulator's namespaces, so no root is needed."""
    min_blocks = 4

    def setup(self, run):
        (run.work / "python").symlink_to(REPO / "python")
        # `ctest --test-dir build` runs the build's Python tests but keeps its own Testing/ log
        # folder here, away from the ctest run this test is part of.
        (run.work / "build").mkdir()
        (run.work / "build" / "CTestTestfile.cmake").write_text(f'subdirs("{run.build / "tests" / "python"}")\n')
        run.env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"   # no .pytest_cache in the source tree
        state = run.tmp / "enc"
        run.pcr0 = run.app_eif(run.work / "app.eif", ["/bin/app"])["PCR0"]
        run.nsm_sim(state / "nsm", run.pcr0, serve=True)
        (state / "vsock").mkdir()
        vsock = {"SHIELD_NITRO_VSOCK_DIR": str(state / "vsock")}
        serve_sealed_mlp(run, state / "nsm", "vsock://ANY:5000", env=dict(run.env, SHIELD_NITRO_VSOCK_CID="16", **vsock))
        run.env.update(vsock)
        run.subs["/tmp/enc"] = str(state)

    def check(self, run):
        proc = subprocess.run([str(run.work / "venv" / "bin" / "python"), "-c", "import shield_nitro; print(shield_nitro.__file__)"],
                              capture_output=True, text=True, cwd=run.tmp)
        run.expect(proc.returncode == 0 and "venv" in proc.stdout, "the venv imports the installed shield_nitro")
        described = subprocess.run([str(run.cli), "parent", "describe", "--enclave", "vsock://16:5000", "--json"],
                                   capture_output=True, text=True, env=run.env)
        body = json.loads(described.stdout) if described.returncode == 0 else {}
        run.expect(len(body.get("keys", [])) == 1 and len(body.get("artifacts", [])) == 2,
                   "the Python example left one key and two artifacts in the enclave")


DOCS = {"docs/deploy-aws.md": DeployAws, "docs/simulator.md": Simulator, "docs/parent-sdk.md": ParentSdk,
        "docs/kms.md": Kms, "docs/eif.md": Eif, "docs/runtime.md": Runtime, "python/README.md": PythonReadme}


def script_for(run, doc_path, text):
    """The bash script of the document's marked blocks (the Python ones last, in one interpreter);
    unmarked code blocks are failures."""
    script, python, ran = [PRELUDE], [], 0
    for line, lang, mark, body in blocks(text):
        where = f"{doc_path}:{line}"
        if mark is None:
            if needs_mark(lang, body):
                run.expect(False, f"{where}: a command block without a test mark")
            continue
        if mark.startswith("not here"):
            continue
        ran += 1
        if mark == "python":
            python.append(f"print('### {where}', file=sys.stderr, flush=True)\n{run.local(body)}")
            continue
        if mark == "synopsis":
            problems = synopsis_problems(run.cli, body)
            run.expect(not problems, f"{where}: the synopsis matches the CLI" + "".join(f"\n  {p}" for p in problems))
            continue
        script.append(f"echo '### {where}' >&2")
        if mark.startswith("file "):
            path = Path(run.local(mark[5:]))
            path = path if path.is_absolute() else run.work / path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        elif mark == "background":
            script.append(f"( {run.local(body).strip()} ) & svc=$!; sleep 1; kill -0 $svc; kill $svc; wait $svc || true")
        else:
            script.append(with_waits(run.local(body)))
    if python:
        script.append(f"echo '### the Python blocks' >&2\nPYTHONPATH={REPO / 'python'} /usr/bin/python3 - <<'SN_PYTHON'\nimport sys\n"
                      + "\n".join(python) + "\nSN_PYTHON")
    return "\n".join(script), ran


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in DOCS:
        print(f"usage: docs_test.py BUILD_DIR DOC (one of {', '.join(DOCS)})", file=sys.stderr)
        return 2
    build, doc_path = Path(sys.argv[1]).resolve(), sys.argv[2]
    doc = DOCS[doc_path]()
    if doc.root and os.geteuid() != 0:
        print(f"SKIPPED: {doc_path} runs the simulator, which needs root (namespaces)")
        return 77
    checklist = Checklist()
    tmp = Path(tempfile.mkdtemp(prefix="sn-docs-"))
    run = None
    try:
        run = Run(build, tmp, checklist)
        doc.setup(run)
        script, ran = script_for(run, doc_path, (REPO / doc_path).read_text())
        run.expect(ran >= doc.min_blocks, f"{ran} marked blocks of {doc_path} run here (at least {doc.min_blocks})")
        proc = subprocess.run(["bash", "-c", script], cwd=run.work, env=run.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=240)
        sys.stdout.write(proc.stdout.decode(errors="replace"))
        run.expect(proc.returncode == 0, f"the commands of {doc_path} ran (exit {proc.returncode})")
        if proc.returncode == 0:
            doc.check(run)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        checklist.failures.append(f"{type(e).__name__}: {e}")
    finally:
        if run is not None:
            try:
                run.stack.close()
            except Exception as e:  # noqa: BLE001
                checklist.failures.append(str(e))
            if checklist.failures:
                for log in sorted((tmp / "logs").glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        shutil.rmtree(tmp, ignore_errors=True)
    return checklist.exit_code()


if __name__ == "__main__":
    sys.exit(main())
