"""The python-inference example (make demo's part 3) end to end, and the parent-blindness check.

Runs examples/python-inference/demo.py with recording on: every byte between the enclave and the
parent's host agent (host link: credentials, the streamed sealed model, logs, egress tunnels),
through the KMS proxy, and through both ingresses (what the host agent relays between the clients
and the enclave's ingress ports) is kept. The demo itself checks the classification (equal to the
plaintext model) in the clear and through attested TLS (curl, Python, C++, Node), KMS and egress
from the app, and the refusals (wrong PCRs; a parent relay with its own certificate, refused by
every client; a changed config; a substituted artifact). Then this test checks that neither the
model's plaintext (any 32-byte window) nor the data key (raw, hex, base64) is in anything the
parent saw or keeps: recordings, sealed files, configs, logs, the console; and that the clients'
inputs (the test images) and outputs (the app's answers) are in none of it either, except the
passthrough ingress's recording, which carries them in the clear by design. Positive controls show
the recordings hold the traffic (the sealed model's bytes, the KMS TLS ClientHello, the attested-TLS
ingress's TLS records for every image sent) and that the scan finds planted secrets and, run on the
passthrough ingress's recording, the images and answers (what it would find in the attested-TLS
recording if that ingress were passthrough).

usage: python_inference_e2e_test.py BUILD_DIR    (needs root: exit 77 = skipped)
"""
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "examples" / "python-inference"))
import e2e_test  # noqa: E402  (Needles, key_leaks: the same scan as the model-inference example's)
from shield_nitro.testing import Checklist  # noqa: E402

_spec = importlib.util.spec_from_file_location("python_inference_demo", REPO / "examples" / "python-inference" / "demo.py")
app_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(app_demo)


def main():
    if os.geteuid() != 0:
        print("SKIPPED: the simulator needs root (namespaces)")
        return 77
    build = Path(sys.argv[1]).resolve()
    work = Path(tempfile.mkdtemp(prefix="sn-app-e2e-"))
    checklist = Checklist()
    expect, failures = checklist.expect, checklist.failures
    try:
        demo = app_demo.AppDemo(build, work / "run", record=work / "record")
        demo.run()
        run, record = work / "run", work / "record"
        weights = (demo.model_dir / "mlp.weights").read_bytes()
        expect(len(demo.data_key) == 32, "the demo learnt the 32-byte data key (the needle)")
        needles = e2e_test.Needles()
        needles.add("mlp.weights", weights)
        # The clients' inputs and outputs: the test images as sent, and each answer as the app writes it
        # (every client sends batches of 40 and gets the reference's predictions, which the demo checked).
        testset = (demo.model_dir / "testset.bin").read_bytes()
        count, features = int.from_bytes(testset[8:12], "little"), int.from_bytes(testset[12:16], "little")
        images = testset[16:16 + count * features * 4]
        reference = json.loads((demo.model_dir / "reference.json").read_text())["predictions"]
        answers = [(json.dumps({"predictions": reference[i:i + 40]}) + "\n").encode() for i in range(0, count, 40)]
        traffic = e2e_test.Needles()
        traffic.add("test images", images)
        for i, a in enumerate(answers):
            traffic.add(f"answer {i}", a)
        needles.add("test images", images)
        for i, a in enumerate(answers):
            needles.add(f"answer {i}", a)
        http_words = [b"POST /classify", b"predictions", b"/.well-known/shield-nitro/attestation", b"HTTP/1.1 200"]

        link = sorted((record / "host-host-link").glob("conn-*"))
        kms = sorted((record / "host-kms").glob("conn-*"))
        expect(len(link) >= 8, f"the host link recorded {len(link) // 2} connections (credentials, artifact, logs, egress)")
        expect(len(kms) >= 2, f"the KMS proxy recorded {len(kms) // 2} connections")

        passthrough = sorted((record / "host-ingress-passthrough").glob("conn-*"))
        tls = sorted((record / "host-ingress-tls").glob("conn-*"))
        expect(len(passthrough) >= 2, f"the passthrough ingress recorded {len(passthrough) // 2} connections")
        expect(len(tls) >= 8, f"the attested-TLS ingress recorded {len(tls) // 2} connections "
               "(attest tls, curl, the SDK clients, the parent's relay)")
        for f in tls:  # the attested-TLS ingress: TLS records only, nothing of HTTP in the clear
            data = f.read_bytes()
            words = [w.decode() for w in http_words if w in data]
            expect(not words, f"no HTTP in the clear in {f.relative_to(work)} ({len(data)} bytes)"
                   + (f": {words}" if words else ""))
        files = sorted(p for p in record.rglob("*") if p.is_file() and p not in passthrough)
        files += sorted(p for p in run.rglob("*") if p.is_file() and p.suffix in (".sealed", ".yaml", ".log", ".jsonl"))
        total = 0
        for f in files:
            data = f.read_bytes()
            total += len(data)
            hits, leaks = needles.find(data), e2e_test.key_leaks(data, demo.data_key)
            expect(not hits and not leaks, f"no plaintext window, no data key in {f.relative_to(work)} ({len(data)} bytes)"
                   + (f": windows {hits[:3]}" if hits else "") + (f": data key as {leaks}" if leaks else ""))
        print(f"scanned {len(files)} files, {total} bytes", flush=True)
        rootfs = run / "enclave" / "image" / "rootfs"
        expect(not list(rootfs.glob("run/shield/*")), "the decrypted model lived only in the enclave's tmpfs "
               "(nothing under the unpacked image's run/shield on the parent)")

        # Positive controls.
        some = max(link, key=lambda p: p.stat().st_size).read_bytes()
        planted = some[:5] + weights[2000:2040] + some[5:] + demo.data_key.hex().encode()
        expect(any(h[0] == "mlp.weights" for h in needles.find(planted)), "control: 40 planted plaintext bytes are found")
        expect(e2e_test.key_leaks(planted, demo.data_key) == ["hex"], "control: a planted hex data key is found")
        sealed = e2e_test.Needles()
        sealed.add("model.sealed", demo.sealed.read_bytes())
        seen = {h[1] for f in link for h in sealed.find(f.read_bytes())}
        share = len(seen) / max(1, len(sealed.index))
        expect(share > 0.9, f"control: the host-link recording holds the sealed model ({share:.0%} of its windows)")
        kms_up = b"".join(f.read_bytes() for f in kms if f.suffix == ".up")
        expect(app_demo.KMS_HOST.encode() in kms_up, "control: the KMS recording holds the TLS ClientHello (SNI)")
        # The same scan finds the inputs and outputs where the parent does carry them in the clear: the
        # passthrough ingress (so it would find them in the attested-TLS recording if that were passthrough).
        clear = b"".join(f.read_bytes() for f in passthrough)
        found = {h[0] for h in traffic.find(clear)}
        expect("test images" in found and any(n.startswith("answer") for n in found),
               f"control: the scan finds the images and answers in the passthrough ingress's recording ({sorted(found)[:4]})")
        expect(all(w in clear for w in http_words[:2]), "control: the passthrough recording shows HTTP in the clear")
        tls_up = [f.read_bytes() for f in tls if f.suffix == ".up"]
        expect(all(d[:1] == b"\x16" for d in tls_up if d), "control: every attested-TLS connection opens with a TLS handshake record")
        sent = sum(len(d) for d in tls_up)
        expect(sent > 2 * len(images), f"control: the attested-TLS recording holds the encrypted images of at least "
               f"two clients ({sent} bytes up, {len(images)} bytes of images per client)")
    except Exception as e:  # noqa: BLE001 - one report for every failure
        import traceback
        traceback.print_exc()
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} for inspection")
    return checklist.exit_code()


if __name__ == "__main__":
    sys.exit(main())
