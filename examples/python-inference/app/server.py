#!/usr/bin/python3
"""An ordinary Python inference server: nothing in it knows about enclaves or shield-nitro.

It is the "bring your own app" example: the supervisor (`shield-nitro-enclave run`) decrypts the
model into MODEL_PATH before starting it, gives it a KMS endpoint and credentials through the
standard AWS variables, and an HTTP(S) proxy for egress. Standard library + numpy (+ botocore
for KMS), as a team would write it anywhere.

  POST /classify        body: float32 little-endian features, 64 per image (any number of images)
                        -> {"predictions": [...]}
  GET  /random?bytes=N  KMS GenerateRandom through stock botocore -> {"random": "<hex>"}
  GET  /fetch?url=URL   fetches URL through the environment's proxy -> {"status": ..., "bytes": ...}
  GET  /healthz         -> {"ok": true, "model": "<layers>"}

Environment: MODEL_PATH (required), PORT (default 8080), AWS_ENDPOINT_URL_KMS and AWS_REGION for
/random (Debian's botocore 1.29 predates AWS_ENDPOINT_URL_KMS, so the URL is passed explicitly).
"""
import json
import os
import struct
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MAX_BODY = 16 * 1024 * 1024


def load_model(path):
    """Reads an SNML v1 file (examples/model-inference/README.md) into float32 layers."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"SNML":
        raise ValueError("%s: not an SNML model" % path)
    version, count = struct.unpack_from("<II", data, 4)
    if version != 1 or not 1 <= count <= 16:
        raise ValueError("%s: unsupported model (version %d, %d layers)" % (path, version, count))
    dims = struct.unpack_from("<%dI" % (count + 1), data, 12)
    offset = 12 + 4 * (count + 1)
    layers = []
    for i in range(count):
        n_in, n_out = dims[i], dims[i + 1]
        w = np.frombuffer(data, "<f4", n_in * n_out, offset).reshape(n_out, n_in)
        offset += 4 * n_in * n_out
        b = np.frombuffer(data, "<f4", n_out, offset)
        offset += 4 * n_out
        layers.append((w, b))
    if offset != len(data):
        raise ValueError("%s: %d trailing bytes" % (path, len(data) - offset))
    return dims, layers


def classify(layers, x):
    """The reference arithmetic: float64 accumulation from the bias, rounded to float32 per layer."""
    h = x
    for i, (w, b) in enumerate(layers):
        h = (h.astype(np.float64) @ w.astype(np.float64).T + b.astype(np.float64)).astype(np.float32)
        if i + 1 < len(layers):
            h = np.maximum(h, np.float32(0))
    return np.argmax(h, axis=1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    dims = None
    layers = None

    def log_message(self, fmt, *args):  # one line per request on stderr, as the supervisor collects it
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/classify":
            return self.reply(404, {"error": "no such endpoint"})
        length = int(self.headers.get("Content-Length", "0"))
        features = self.dims[0]
        if length <= 0 or length > MAX_BODY or length % (4 * features):
            return self.reply(400, {"error": "body must be float32 x %d per image" % features})
        x = np.frombuffer(self.rfile.read(length), "<f4").reshape(-1, features)
        self.reply(200, {"predictions": [int(p) for p in classify(self.layers, x)]})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        try:
            if url.path == "/healthz":
                return self.reply(200, {"ok": True, "model": "-".join(str(d) for d in self.dims)})
            if url.path == "/random":
                return self.reply(200, {"random": kms_random(int(query.get("bytes", ["32"])[0]))})
            if url.path == "/fetch":
                with urllib.request.urlopen(query["url"][0], timeout=10) as r:
                    return self.reply(200, {"status": r.status, "bytes": len(r.read())})
        except urllib.error.HTTPError as e:  # e.g. 403 from the egress proxy
            return self.reply(502, {"error": "upstream answered %d" % e.code})
        except Exception as e:  # the client gets the reason; the server keeps serving
            return self.reply(502, {"error": "%s: %s" % (type(e).__name__, e)})
        self.reply(404, {"error": "no such endpoint"})


def kms_random(count):
    import botocore.session  # only this endpoint needs it

    session = botocore.session.get_session()
    client = session.create_client("kms", region_name=os.environ.get("AWS_REGION", "us-east-1"),
                                   endpoint_url=os.environ.get("AWS_ENDPOINT_URL_KMS"))
    return client.generate_random(NumberOfBytes=count)["Plaintext"].hex()


def main():
    Handler.dims, Handler.layers = load_model(os.environ["MODEL_PATH"])
    port = int(os.environ.get("PORT", "8080"))
    # Loopback only: inside the enclave the supervisor's ingress forwarder is the one way in.
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("server: model %s loaded, listening on port %d" % ("-".join(map(str, Handler.dims)), port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
