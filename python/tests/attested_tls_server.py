"""Test harness: the enclave side of attested TLS (docs/attested-tls.md) in Python, its documents
from the NSM simulator through `shield-nitro attest request --nsm sim:DIR`, and a parent relay that
passes bytes through or intercepts with its own certificate (forwarding attestation requests to
the enclave). Tests only; the C++ twin is tests/parent/attested_tls_server.cpp.
"""
import datetime
import hashlib
import os
import socket
import ssl
import subprocess
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from cryptography.x509.oid import NameOID

PATH = "/.well-known/shield-nitro/attestation"
APP_ANSWER = b"hello from the enclave\n"


def _identity(workdir):
    """(server SSLContext, SPKI SHA-256) of a fresh P-256 key and its self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shield-nitro test enclave")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    fd, path = tempfile.mkstemp(dir=workdir, suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        f.write(cert.public_bytes(Encoding.PEM))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(path)
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return ctx, hashlib.sha256(spki).digest()


def _http(status, body, ctype="application/cbor"):
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


def _read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 8192:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def _read_all(sock):
    out = b""
    while True:
        try:
            chunk = sock.recv(16384)
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


class Server:
    """behaviour: "honest", "other_key" (binds a key it does not serve with), "wrong_nonce",
    "no_binding". relay_to=port: a parent relay (pass-through until ``intercept = True``)."""

    def __init__(self, workdir, cli=None, nsm_dir=None, behaviour="honest", relay_to=None):
        self.workdir, self.cli, self.nsm_dir, self.behaviour, self.relay_to = workdir, cli, nsm_dir, behaviour, relay_to
        self.intercept = False
        self.attestations = 0
        self._lock = threading.Lock()
        self._ctx, self._spki = _identity(workdir)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self._stop = False
        self._threads = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def spki_sha256(self):
        with self._lock:
            return self._spki

    def rotate(self):
        ctx, spki = _identity(self.workdir)
        with self._lock:
            self._ctx, self._spki = ctx, spki

    def close(self):
        self._stop = True
        self._acceptor.join()
        for t in self._threads:
            t.join(timeout=15)
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            conn.settimeout(10)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        with conn:
            try:
                if self.relay_to and not self.intercept:
                    return self._pass_through(conn)
                with self._lock:
                    ctx = self._ctx
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    head = _read_head(tls)
                    line = head.split(b"\r\n", 1)[0].decode("latin-1")
                    if line.startswith(f"GET {PATH}"):
                        answer = self._attestation(line, head)
                    else:
                        answer = _http("200 OK", APP_ANSWER, "text/plain")
                    tls.sendall(answer)
                    try:
                        tls.unwrap()
                    except (ssl.SSLError, OSError):
                        pass
            except (ssl.SSLError, OSError):
                pass

    def _pass_through(self, conn):
        with socket.create_connection(("127.0.0.1", self.relay_to), timeout=10) as up:
            def pump(src, dst):
                try:
                    while True:
                        data = src.recv(16384)
                        if not data:
                            break
                        dst.sendall(data)
                except OSError:
                    pass
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            t = threading.Thread(target=pump, args=(up, conn), daemon=True)
            t.start()
            pump(conn, up)
            t.join(timeout=15)

    def _attestation(self, line, raw_request):
        self.attestations += 1
        if self.relay_to:  # the intercepting parent has no NSM: it asks the enclave, relays the answer
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            with socket.create_connection(("127.0.0.1", self.relay_to), timeout=10) as up:
                with ctx.wrap_socket(up) as tls:
                    tls.sendall(raw_request)
                    return _read_all(tls)
        target = line.split(" ")[1]
        prefix = f"{PATH}?nonce="
        hex_nonce = target[len(prefix):] if target.startswith(prefix) else ""
        try:
            nonce = bytes.fromhex(hex_nonce) if 2 <= len(hex_nonce) <= 1024 else None
        except ValueError:
            nonce = None
        if not nonce:
            return _http("400 Bad Request", b"nonce must be 1..512 bytes of hex\n", "text/plain")
        spki = self.spki_sha256
        if self.behaviour == "other_key":
            spki = hashlib.sha256(os.urandom(65)).digest()
        args = [self.cli, "attest", "request", "--nsm", f"sim:{self.nsm_dir}", "-o", "-",
                "--nonce", (b"\x5a" * len(nonce) if self.behaviour == "wrong_nonce" else nonce).hex()]
        if self.behaviour != "no_binding":
            args += ["--user-data", (b"sn-tls/1" + spki).hex()]
        proc = subprocess.run(args, capture_output=True, timeout=60)
        if proc.returncode != 0:
            return _http("500 Internal Server Error", proc.stderr, "text/plain")
        return _http("200 OK", proc.stdout)
