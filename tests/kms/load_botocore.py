#!/usr/bin/env python3
"""kms-local under load from botocore: 4 clients (processes) x 50 parallel GenerateRandom calls,
HTTP and HTTPS, with no retries: every call must be answered (200, or a ThrottlingException when
the server sheds load), never a reset or a closed connection. Then 1,000 raw connections at once,
each sending one request: every one must read a complete HTTP answer.

Usage: load_botocore.py PATH-TO-shield-nitro   (starts its own kms-local; exit 0 = pass)
"""
import collections
import multiprocessing
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from local_kms_botocore import start  # noqa: E402  (starts kms-local on a free port)

CLIENTS, PARALLEL = 4, 50


def one_client(url, creds, queue):
    """One botocore client making PARALLEL calls at once; puts the outcome counts on queue."""
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import ClientError
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = creds
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    kms = botocore.session.Session(profile="admin").create_client(
        "kms", region_name="us-east-1", endpoint_url=url, verify=False,
        config=Config(max_pool_connections=PARALLEL, retries={"max_attempts": 1}))
    counts, lock = collections.Counter(), threading.Lock()
    barrier = threading.Barrier(PARALLEL)

    def call():
        barrier.wait()
        try:
            kms.generate_random(NumberOfBytes=16)
            outcome = "ok"
        except ClientError as e:
            outcome = e.response["Error"]["Code"]
        except Exception as e:  # a connection error: the request was lost
            outcome = "lost: " + type(e).__name__
        with lock:
            counts[outcome] += 1

    threads = [threading.Thread(target=call) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(dict(counts))


def botocore_load(url, creds):
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=one_client, args=(url, creds, queue)) for _ in range(CLIENTS)]
    for p in procs:
        p.start()
    total = collections.Counter()
    for _ in procs:
        total.update(queue.get(timeout=240))
    for p in procs:
        p.join()
    return total


def raw_burst(port, n):
    """n connections at once, one unsigned request each: the outcome of each."""
    request = b"POST / HTTP/1.1\r\nHost: kms\r\nContent-Length: 2\r\n\r\n{}"
    sel, data, outcome = selectors.DefaultSelector(), {}, collections.Counter()
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE)
        data[s] = b""

    def finish(s, what):
        outcome[what] += 1
        sel.unregister(s)
        del data[s]
        s.close()

    while data:
        events = sel.select(60)
        if not events:
            outcome["no answer in 60 s"] += len(data)
            break
        for key, mask in events:
            s = key.fileobj
            try:
                if mask & selectors.EVENT_WRITE:
                    s.sendall(request)
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                chunk = s.recv(65536)
            except OSError as e:
                finish(s, "lost: " + type(e).__name__)
                continue
            data[s] += chunk
            head_end = data[s].find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"Content-Length: (\d+)", data[s][:head_end])
                if len(data[s]) >= head_end + 4 + (int(m.group(1)) if m else 0):
                    finish(s, "answered")
                    continue
            if not chunk:
                finish(s, "lost: closed unanswered")
    return outcome


def main():
    cli = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 client sockets
    top = tempfile.mkdtemp(prefix="sn-load-")
    failures = []
    try:
        state = os.path.join(top, "state")
        creds = os.path.join(state, "credentials")
        proc, port = start(cli, state)
        try:
            got = botocore_load(f"http://127.0.0.1:{port}", creds)
            print("botocore over HTTP:", dict(got), flush=True)
            if sum(got.values()) != CLIENTS * PARALLEL or set(got) - {"ok", "ThrottlingException"}:
                failures.append(f"botocore over HTTP: {dict(got)}")
            burst = raw_burst(port, 1000)
            print("1,000 raw connections:", dict(burst), flush=True)
            if burst != {"answered": 1000}:
                failures.append(f"1,000 raw connections: {dict(burst)}")
        finally:
            proc.terminate()
            proc.wait()
        # The same over TLS: handshakes go through the server's event loop.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", os.path.join(top, "k.pem"), "-out", os.path.join(top, "c.pem"), "-days", "2",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        tls_cli = os.path.join(top, "kms-local-tls")  # the CLI with --tls-cert/--tls-key appended
        with open(tls_cli, "w") as f:
            f.write(f'#!/bin/sh\nexec "{cli}" "$@" --tls-cert "{top}/c.pem" --tls-key "{top}/k.pem"\n')
        os.chmod(tls_cli, 0o755)
        proc, port = start(tls_cli, state)
        try:
            import warnings
            warnings.filterwarnings("ignore")  # the test certificate is self-signed (verify=False)
            got = botocore_load(f"https://127.0.0.1:{port}", creds)
            print("botocore over HTTPS:", dict(got), flush=True)
            if sum(got.values()) != CLIENTS * PARALLEL or set(got) - {"ok", "ThrottlingException"}:
                failures.append(f"botocore over HTTPS: {dict(got)}")
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(top, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
