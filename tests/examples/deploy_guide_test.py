"""Runs the commands of docs/deploy-aws.md that can run on this machine, as written.

A fenced block is run when the line before it (blank lines aside) is one of:

    <!-- test: runs here -->            a shell block, run in order in one bash session
    <!-- test: background -->           a long-running service: started, checked alive after a
                                        second (it passed its start-up checks), then stopped
    <!-- test: file PATH -->            the block's text is written to PATH first
    <!-- test: not here: REASON -->     not run (AWS-only); REASON is required

Every shell block that calls `shield-nitro` must carry one of these marks, so a new command in
the guide cannot go untested by accident. AWS paths become local ones (SUBSTITUTIONS): the CLI
from the build, stand-in kernel blobs, a temporary folder for /etc/nitro_enclaves and /tmp/enc.
Then a few results are checked (the EIF, the policy pins PCR0 and the role's PCR3, the enclave
ran under the simulator and was terminated).

usage: deploy_guide_test.py BUILD_DIR    (ctest: deploy_guide; the simulator needs root: 77 = skipped)
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GUIDE = REPO / "docs" / "deploy-aws.md"
sys.path.insert(0, str(REPO / "python"))
from shield_nitro.testing import Checklist  # noqa: E402

MARK = re.compile(r"^<!-- test: (runs here|background|file (\S+)|not here: .+) -->$")
FENCE = re.compile(r"^```(\w*)\s*$")
ROLE = "arn:aws:iam::111122223333:role/enclave-parent"


def blocks(text):
    """[(line number, language, mark or None, body)] for every fenced block of the guide."""
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


def main():
    if os.geteuid() != 0:
        print("SKIPPED: the guide's simulator steps need root (namespaces)")
        return 77
    build = Path(sys.argv[1]).resolve()
    cli = build / "shield-nitro"
    tmp = Path(tempfile.mkdtemp(prefix="sn-guide-"))
    checklist = Checklist()
    expect, failures = checklist.expect, checklist.failures
    try:
        bin_dir, blobs, etc = tmp / "bin", tmp / "blobs", tmp / "etc-nitro_enclaves"
        for d in (bin_dir, etc):
            d.mkdir()
        (bin_dir / "shield-nitro").symlink_to(cli)
        subprocess.run([str(cli), "eif", "blobs", "--stand-in", "-o", str(blobs)], capture_output=True, check=True)
        substitutions = {"/usr/local/bin/shield-nitro": str(cli), "/usr/share/nitro_enclaves/blobs": str(blobs),
                         "/etc/nitro_enclaves": str(etc), "/tmp/enc": str(tmp / "enc")}

        def local(text):
            for k, v in substitutions.items():
                text = text.replace(k, v)
            return text

        script = ["set -euo pipefail"]
        ran = 0
        for line, lang, mark, body in blocks(GUIDE.read_text()):
            if lang == "sh" and "shield-nitro " in body and mark is None:
                expect(False, f"docs/deploy-aws.md:{line}: a shield-nitro block without a test mark")
            if mark is None or mark.startswith("not here"):
                continue
            ran += 1
            script.append(f"echo '### docs/deploy-aws.md:{line}' >&2")
            if mark.startswith("file "):
                path = Path(local(mark[5:]))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
            elif mark == "background":
                script.append(f"( {local(body).strip()} ) & svc=$!; sleep 1; kill -0 $svc; kill $svc; wait $svc || true")
            else:
                script.append(local(body))
        expect(ran >= 6, f"{ran} marked blocks of the guide run here")
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
        env["SHIELD_NITRO_VSOCK_DIR"] = str(tmp / "parent-vsock")   # vsock as unix sockets: no AF_VSOCK needed
        (tmp / "parent-vsock").mkdir()
        proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp, env=env, capture_output=True, timeout=240)
        sys.stdout.write(proc.stdout.decode(errors="replace"))
        sys.stdout.write(proc.stderr.decode(errors="replace"))
        expect(proc.returncode == 0, f"the guide's commands ran (exit {proc.returncode})")

        described = json.loads(subprocess.run([str(cli), "eif", "describe", str(tmp / "app.eif")],
                                              capture_output=True, check=True).stdout)["Measurements"]
        policy = (tmp / "policy.json").read_text()
        pcr3 = hashlib.sha384(bytes(48) + ROLE.encode()).hexdigest()
        expect(described["PCR0"] in policy, "policy.json pins the EIF's PCR0 (ImageSha384)")
        expect(pcr3 in policy, "policy.json pins PCR3, the parent role's measurement")
        states = json.loads(subprocess.run([str(cli), "sim", "describe", "--state", str(tmp / "enc"), "--json"],
                                           capture_output=True, check=True).stdout)
        expect(bool(states) and states[0]["State"] == "TERMINATED", "the simulated enclave ran and was terminated")
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        subprocess.run([str(cli), "sim", "terminate", "--state", str(tmp / "enc")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return checklist.exit_code()


if __name__ == "__main__":
    sys.exit(main())
