#!/usr/bin/python3
"""Classifies the example's test set through the inference server's HTTP API and compares the
answers with the plaintext model's reference (examples/model-inference/README.md has the formats).

  client.py --url http://127.0.0.1:8080 --testset testset.bin --reference reference.json [--batch 40]
  client.py --url https://HOST:PORT --pcr 0=HEX --pcr 1=HEX --pcr 2=HEX --root ROOT.pem ...

An https URL is the enclave's attested-TLS ingress: the client first checks the attestation
document the enclave serves on that TLS connection (the SDK's shield_nitro.attested_tls: the
document must verify under --root and the PCRs, and name the connection's key), then pins that
key for every request.

Prints one JSON line: {"images", "correct", "accuracy", "matches_reference"}; exits 1 when the
predictions differ from the reference, 3 when the server cannot be reached.
"""
import argparse
import json
import os
import struct
import sys
import urllib.error
import urllib.request


def load_testset(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"SNTS":
        raise SystemExit("client.py: %s is not an SNTS test set" % path)
    _, count, features = struct.unpack_from("<III", data, 4)
    offset = 16
    images = [data[offset + i * 4 * features: offset + (i + 1) * 4 * features] for i in range(count)]
    labels = list(data[offset + count * 4 * features: offset + count * 4 * features + count])
    return images, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--testset", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--batch", type=int, default=40, help="images per request")
    parser.add_argument("--pcr", action="append", default=[], metavar="N=HEX", help="https: a PCR the enclave must have")
    parser.add_argument("--root", help="https: the attestation root (PEM; default the AWS Nitro root)")
    args = parser.parse_args()
    opener = urllib.request.build_opener()
    if args.url.startswith("https://"):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
        from shield_nitro import Policy, TrustRoot, attested_tls
        from shield_nitro.errors import ShieldNitroError
        policy = Policy(pcrs={int(n): v for n, v in (p.split("=", 1) for p in args.pcr)})
        try:
            context = attested_tls.connect(args.url, policy, root=TrustRoot.from_file(args.root) if args.root else None)
        except ShieldNitroError as e:
            sys.stderr.write("client.py: %s: refused: %s\n" % (args.url, e))
            return 1
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    images, labels = load_testset(args.testset)
    with open(args.reference) as f:
        reference = json.load(f)["predictions"]
    predictions = []
    try:
        for i in range(0, len(images), args.batch):
            body = b"".join(images[i:i + args.batch])
            request = urllib.request.Request(args.url.rstrip("/") + "/classify", data=body, method="POST")
            with opener.open(request, timeout=30) as r:
                predictions += json.load(r)["predictions"]
    except (urllib.error.URLError, OSError) as e:
        sys.stderr.write("client.py: %s: %s\n" % (args.url, getattr(e, "reason", e)))
        return 3
    correct = sum(p == l for p, l in zip(predictions, labels))
    result = {"images": len(predictions), "correct": correct, "accuracy": round(correct / len(labels), 4),
              "matches_reference": predictions == reference}
    print(json.dumps(result))
    return 0 if result["matches_reference"] else 1


if __name__ == "__main__":
    sys.exit(main())
