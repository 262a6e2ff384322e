"""The example end to end under the simulator, and the parent-blindness check.

Runs examples/model-inference/demo.py in-process on a shortened test set with recording on
(the KMS proxy's bytes and the parent <-> enclave bytes through a recording relay): an EIF from
`eif build`, `sim run`, KMS through the proxy, classification equal to the plaintext model's,
the sealed scoring plugin, and both refusals (one byte of the app changed; debug mode). Then
it checks that nothing secret is in what the parent saw or keeps: neither the data key (raw,
hex, base64) nor any 32-byte window of the plaintext weights, plugins, or invoke inputs and
outputs appears in the recordings, the sealed files, the wrapped key or the logs and console.
A positive control shows the check finds planted secrets and that the recordings really hold
the traffic (the sealed artifacts' bytes are in them).

usage: e2e_test.py BUILD_DIR    (run by ctest as example_e2e; needs root: exit 77 = skipped)
"""
import base64
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "examples" / "model-inference"))
import demo  # noqa: E402
from shield_nitro.testing import Checklist  # noqa: E402

W = 32          # window size, bytes
IMAGES = 72     # two batches of 36


def windows(data):
    """Every 32-byte window of data, except trivial ones (at most two distinct byte values:
    zero runs and padding, which also occur in public framing and say nothing about a secret)."""
    out = {}
    for i in range(len(data) - W + 1):
        w = data[i:i + W]
        if len(set(w)) > 2:
            out.setdefault(hash(w), (w, i))
    return out


class Needles:
    """Secrets to look for: named byte strings, indexed by the hash of each 32-byte window."""

    def __init__(self):
        self.index, self.names = {}, {}

    def add(self, name, data):
        for h, (w, i) in windows(data).items():
            self.index.setdefault(h, (name, i, w))

    def find(self, haystack):
        """[(secret name, offset in secret, offset in haystack)] for every window of haystack found."""
        hits = []
        for j in range(len(haystack) - W + 1):
            hit = self.index.get(hash(haystack[j:j + W]))
            if hit and hit[2] == haystack[j:j + W]:
                hits.append((hit[0], hit[1], j))
        return hits


def data_key_forms(key):
    return {"raw": key, "hex": key.hex().encode(), "HEX": key.hex().upper().encode(),
            "base64": base64.b64encode(key), "base64url": base64.urlsafe_b64encode(key).rstrip(b"=")}


def key_leaks(data, key):
    """The forms of the data key found in data."""
    return [form for form, value in data_key_forms(key).items() if value in data]


def parent_view(result, work):
    """Every file holding what crossed or stays on the parent: recordings, sealed files, logs."""
    files = sorted(p for p in result.record.rglob("*") if p.is_file())
    files += list(result.sealed) + [work / "data.key.wrapped"]
    files += sorted((work / "logs").glob("*.log")) + [work / "enclave" / "console.log",
                                                      work / "enclave" / "supervisor.log"]
    return [f for f in files if f.exists()]


def main():
    if os.geteuid() != 0:
        print("SKIPPED: the simulator needs root (namespaces)")
        return 77
    build = Path(sys.argv[1]).resolve()
    work = Path(tempfile.mkdtemp(prefix="sn-e2e-"))
    checklist = Checklist()
    expect, failures = checklist.expect, checklist.failures
    try:
        result = demo.Demo(build, work / "run", images=IMAGES, record=work / "record", cxx=True).run()
        run = work / "run"
        expect(result.figures.get("images") == IMAGES, f"classified {IMAGES} images (accuracy {result.accuracy:.4f})")
        expect(len(result.data_key) == 32, "the demo produced a 32-byte data key")

        needles = Needles()
        for name, data in result.plaintexts.items():
            needles.add(name, data)
        for k, io in enumerate(result.invoke_io):
            needles.add(f"invoke message {k}", io)
        print(f"indexed {len(needles.index)} windows of {len(result.plaintexts)} plaintext artifacts "
              f"and {len(result.invoke_io)} invoke messages", flush=True)

        files = parent_view(result, run)
        kms_rec = sorted((result.record / "kms").glob("conn-*"))
        enc_rec = sorted((result.record / "enclave").glob("conn-*"))
        expect(len(kms_rec) >= 6, f"the KMS proxy recorded {len(kms_rec) // 2} connections (>= 3 load-key calls)")
        expect(len(enc_rec) >= 2, f"the relay recorded {len(enc_rec) // 2} parent <-> enclave connections")
        total = 0
        for f in files:
            data = f.read_bytes()
            total += len(data)
            hits, leaks = needles.find(data), key_leaks(data, result.data_key)
            expect(not hits and not leaks, f"no plaintext window, no data key in {f.relative_to(work)} ({len(data)} bytes)"
                   + (f": windows {hits[:3]}" if hits else "") + (f": data key as {leaks}" if leaks else ""))
        print(f"scanned {len(files)} files, {total} bytes", flush=True)

        # Positive controls: the same check finds planted secrets, and the recordings hold the traffic.
        some = enc_rec[0].read_bytes()
        weights = result.plaintexts["mlp.weights"]
        planted = some[:7] + weights[1000:1040] + some[7:5000] + result.data_key.hex().encode() + some[5000:]
        expect(any(h[0] == "mlp.weights" for h in needles.find(planted)),
               "control: 40 plaintext bytes planted at an odd offset are found")
        expect(key_leaks(planted, result.data_key) == ["hex"], "control: a planted hex data key is found")
        expect(not key_leaks(some, result.data_key) and not needles.find(some), "control: the unplanted recording is clean")
        io_planted = b"\x01" * 3 + result.invoke_io[1][12:12 + 40]
        expect(bool(needles.find(io_planted)), "control: a slice of a plaintext invoke reply is found")
        sealed = Needles()
        sealed_plugin = next(p for p in result.sealed if p.name == "mlp_plugin.snst").read_bytes()
        sealed.add("mlp_plugin.snst", sealed_plugin)
        seen = {h[1] for f in enc_rec for h in sealed.find(f.read_bytes())}
        share = len(seen) / max(1, len(sealed.index))
        expect(share > 0.9, f"control: the relay recording holds the sealed plugin's bytes "
               f"({share:.0%} of its windows): it captured what crossed")
        kms_up = b"".join(f.read_bytes() for f in kms_rec if f.suffix == ".up")
        expect(demo.KMS_HOST.encode() in kms_up, "control: the KMS recording holds the TLS ClientHello (SNI)")
        expect(result.wrapped_key not in kms_up, "the wrapped key crossed the KMS proxy only inside TLS")
    except Exception as e:  # noqa: BLE001 - one report for every failure
        import traceback
        traceback.print_exc()
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return checklist.exit_code()


if __name__ == "__main__":
    sys.exit(main())
