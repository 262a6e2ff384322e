"""client-cpp (examples/python-inference/client.cpp) without an enclave: its help, its exit codes,
and that it refuses a TLS server that is not an attested enclave before sending any image.

The end-to-end runs (classification through the enclave's attested-TLS ingress, refusal of a
parent relay with its own certificate, wrong PCRs) are in demo.py (python_inference_e2e).
Here the server is an ordinary HTTPS server with a certificate of its own that answers the
attestation request with bytes that are not a document, or with 404: client-cpp must exit 1
and the server must never see POST /classify.

usage: client_cpp_test.py BUILD_DIR
"""
import http.server
import importlib.util
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
from shield_nitro.testing import Checklist, free_port  # noqa: E402

_spec = importlib.util.spec_from_file_location("model_inference_demo", REPO / "examples" / "model-inference" / "demo.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

PCR = "ab" * 48


class NotAnEnclave(http.server.BaseHTTPRequestHandler):
    """Answers the attestation request with `answer` (status, body); records every request line."""
    answer = (200, b"\xa0" * 64)
    seen = []

    def do_GET(self):
        NotAnEnclave.seen.append(self.requestline)
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        NotAnEnclave.seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def main():
    build = Path(sys.argv[1]).resolve()
    client = build / "examples" / "python-inference" / "client-cpp"
    model = build / "examples" / "model-inference" / "model"
    data = ["--testset", str(model / "testset.bin"), "--reference", str(model / "reference.json")]
    checklist = Checklist()
    expect = checklist.expect

    def run(*args):
        return subprocess.run([str(client), *map(str, args)], capture_output=True, text=True, timeout=60)

    r = run("--help")
    expect(r.returncode == 0 and "Exit codes" in r.stdout and "--pcr" in r.stdout and "--root" in r.stdout,
           "--help exits 0 and teaches the options and exit codes")
    closed = f"https://127.0.0.1:{free_port()}"
    for args, what in [((), "no options"),
                       (("--url", closed, *data), "no --pcr"),
                       (("--url", closed, "--pcr", "0=zz", *data), "a --pcr that is not hex"),
                       (("--url", closed, "--pcr", "0=abcd", *data), "a --pcr of 2 bytes"),
                       (("--url", closed, "--pcr", f"40={PCR}", *data), "a PCR index past 31"),
                       (("--url", closed.replace("https", "http"), "--pcr", f"0={PCR}", *data), "an http:// URL")]:
        r = run(*args)
        expect(r.returncode == 2 and r.stderr.strip(), f"usage error, exit 2: {what} ({r.returncode}: {r.stderr.strip()[-90:]})")
    r = run("--url", closed, "--pcr", f"0={PCR}", *data)
    expect(r.returncode == 3 and "127.0.0.1" in r.stderr, f"nothing listening: exit 3 ({r.returncode}: {r.stderr.strip()})")

    with tempfile.TemporaryDirectory() as tmp:
        _, cert, key = base.make_ca_and_server_cert(Path(tmp), ["localhost"], "127.0.0.1")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotAnEnclave)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://127.0.0.1:{server.server_address[1]}"
        try:
            for answer, what in [((200, b"\xa0" * 64), "bytes that are not an attestation document"),
                                 ((200, b""), "an empty answer"),
                                 ((404, b"no such endpoint"), "404")]:
                NotAnEnclave.answer, NotAnEnclave.seen = answer, []
                r = run("--url", url, "--pcr", f"0={PCR}", *data, "--json")
                asked = any("/.well-known/shield-nitro/attestation?nonce=" in line for line in NotAnEnclave.seen)
                posted = any(line.startswith("POST") for line in NotAnEnclave.seen)
                expect(r.returncode == 1 and asked and not posted and not r.stdout.strip(),
                       f"a TLS server answering the attestation request with {what}: exit 1, no image sent "
                       f"({r.returncode}: {r.stderr.strip()[-100:]})")
        finally:
            server.shutdown()
    return checklist.exit_code()


if __name__ == "__main__":
    sys.exit(main())
