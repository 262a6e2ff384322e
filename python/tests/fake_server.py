"""A tiny in-process server speaking the framed protocol, for SDK unit tests.

Handlers get (op, body, parts) and return a body dict or raise ShieldNitroError. Requests
may be answered out of order (``delay`` per op) to exercise pipelining.
"""
import os
import socket
import struct
import threading
import time

import cbor2

from shield_nitro.errors import ShieldNitroError


class FakeServer:
    def __init__(self, path, handler, delays=None):
        self.path = path
        self.handler = handler
        self.delays = delays or {}
        self.frames = []          # every decoded request frame, in arrival order
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self):
        return f"unix:{self.path}"

    def close(self):
        self._stop = True
        self.sock.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, conn):
        lock = threading.Lock()
        streams = {}
        while True:
            head = self._read(conn, 4)
            if head is None:
                return
            msg = cbor2.loads(self._read(conn, struct.unpack(">I", head)[0]))
            self.frames.append(msg)
            if "op" not in msg:
                op, body, parts = streams[msg["id"]]
                parts.append(msg["body"])
                if msg["more"]:
                    continue
                del streams[msg["id"]]
            elif msg.get("more"):
                streams[msg["id"]] = (msg["op"], msg["body"], [])
                continue
            else:
                op, body, parts = msg["op"], msg["body"], []
            threading.Thread(target=self._answer, args=(conn, lock, msg["id"], op, body, parts), daemon=True).start()

    def _answer(self, conn, lock, req_id, op, body, parts):
        time.sleep(self.delays.get(op, 0))
        try:
            out = {"v": 1, "id": req_id, "ok": True, "body": self.handler(op, body, parts)}
        except ShieldNitroError as e:
            out = {"v": 1, "id": req_id, "ok": False, "error": {"code": e.code, "message": e.message}}
        payload = cbor2.dumps(out)
        with lock:
            try:
                conn.sendall(struct.pack(">I", len(payload)) + payload)
            except OSError:
                pass
