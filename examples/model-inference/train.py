#!/usr/bin/python3
"""Train the example model and export it for the mlp_plugin (README.md has the formats).

A small MLP (64 inputs -> 32 ReLU -> 10 classes) on scikit-learn's bundled handwritten-digits
set (1797 8x8 images; no download). Deterministic: fixed split and random_state.

Writes into --out:
  mlp.weights       the model artifact (SNML format), sealed and loaded into the enclave
  testset.bin       the held-out test set (SNTS format): float32 features, uint8 labels
  reference.json    what the plugin must reproduce: predictions of the float32 reference
                    forward pass, its accuracy, and scikit-learn's own accuracy

Run with Debian's python: /usr/bin/python3 train.py --out build/model
"""
import argparse
import json
import os
import struct
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

WEIGHTS_MAGIC = b"SNML"
TESTSET_MAGIC = b"SNTS"
FORMAT_VERSION = 1
HIDDEN = (32,)
SEED = 0


def load_data():
    digits = load_digits()
    # Pixels are 0..16; the model takes them scaled to 0..1 as float32.
    features = (digits.data / 16.0).astype(np.float32)
    return train_test_split(features, digits.target.astype(np.uint8), test_size=0.2,
                            random_state=SEED, stratify=digits.target)


def train(x_train, y_train):
    model = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam",
                          max_iter=400, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train.astype(np.float64), y_train)
    return model


def float32_layers(model):
    """Each layer as (W[out][in], b[out]) in float32: exactly the artifact's numbers."""
    return [(np.ascontiguousarray(w.T, dtype=np.float32), b.astype(np.float32))
            for w, b in zip(model.coefs_, model.intercepts_)]


def reference_forward(layers, x):
    """The plugin's arithmetic: float32 weights and activations, each neuron accumulated in
    float64 (bias + sum of products) and rounded to float32 once. ReLU between layers."""
    h = x.astype(np.float32)
    for i, (w, b) in enumerate(layers):
        acc = h.astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float64)
        h = acc.astype(np.float32)
        if i + 1 < len(layers):
            h = np.maximum(h, np.float32(0))
    return np.argmax(h, axis=1)  # first maximum on ties, like the plugin


def weights_bytes(layers):
    dims = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
    out = bytearray(WEIGHTS_MAGIC)
    out += struct.pack("<II", FORMAT_VERSION, len(layers))
    out += struct.pack("<%dI" % len(dims), *dims)
    for w, b in layers:
        out += w.astype("<f4").tobytes()
        out += b.astype("<f4").tobytes()
    return bytes(out)


def testset_bytes(x, y):
    out = bytearray(TESTSET_MAGIC)
    out += struct.pack("<III", FORMAT_VERSION, x.shape[0], x.shape[1])
    out += x.astype("<f4").tobytes()
    out += y.astype(np.uint8).tobytes()
    return bytes(out)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    x_train, x_test, y_train, y_test = load_data()
    model = train(x_train, y_train)
    layers = float32_layers(model)
    predictions = reference_forward(layers, x_test)
    sklearn_predictions = model.predict(x_test.astype(np.float64))

    reference = {
        "model": "MLP 64-32-10 ReLU, sklearn MLPClassifier(random_state=%d)" % SEED,
        "test_count": int(x_test.shape[0]),
        "accuracy": float(np.mean(predictions == y_test)),
        "correct": int(np.sum(predictions == y_test)),
        "sklearn_accuracy": float(np.mean(sklearn_predictions == y_test)),
        "sklearn_agreement": int(np.sum(predictions == sklearn_predictions)),
        "predictions": [int(p) for p in predictions],
        "labels": [int(v) for v in y_test],
    }
    write_atomic(os.path.join(args.out, "mlp.weights"), weights_bytes(layers))
    write_atomic(os.path.join(args.out, "testset.bin"), testset_bytes(x_test, y_test))
    write_atomic(os.path.join(args.out, "reference.json"), (json.dumps(reference, indent=1) + "\n").encode())
    print("train.py: %d test images, accuracy %.4f (float32 reference), %.4f (sklearn float64), "
          "%d/%d predictions agree" % (reference["test_count"], reference["accuracy"],
                                       reference["sklearn_accuracy"], reference["sklearn_agreement"],
                                       reference["test_count"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
