#!/usr/bin/python3
"""Classifies the example's test set through the inference server's HTTP API and compares the
answers with the plaintext model's reference (examples/model-inference/README.md has the formats).

  client.py --url http://127.0.0.1:8080 --testset testset.bin --reference reference.json [--batch 40]

Prints one JSON line: {"images", "correct", "accuracy", "matches_reference"}; exits 1 when the
predictions differ from the reference, 3 when the server cannot be reached.
"""
import argparse
import json
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
    args = parser.parse_args()
    images, labels = load_testset(args.testset)
    with open(args.reference) as f:
        reference = json.load(f)["predictions"]
    predictions = []
    try:
        for i in range(0, len(images), args.batch):
            body = b"".join(images[i:i + args.batch])
            request = urllib.request.Request(args.url.rstrip("/") + "/classify", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=30) as r:
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
