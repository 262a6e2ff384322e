"""Endpoints and framed, pipelined connections (docs/protocol.md).

    conn = Connection.open("unix:/run/shield-nitro.sock")        # or vsock://16:5000, tcp://127.0.0.1:7000
    body = conn.call("describe")                                  # ShieldNitroError on "ok": false
    fut = conn.request_async("encrypt", {...})                    # many in flight, matched by id
    up = conn.stream("load-artifact", header); up.send({"data": chunk}); body = up.finish()

Frame: 4-byte big-endian payload length, then one CBOR map:
    request       {"v": 1, "id": uint, "op": text, ["more": true,] "body": map}
    continuation  {"v": 1, "id": uint, "more": bool, "body": map}
    response      {"v": 1, "id": uint, "ok": true, "body": map}
                  {"v": 1, "id": uint, "ok": false, "error": {"code": text, "message": text}}
A reader thread matches responses to requests by id, so one connection serves any number of
threads and requests complete in any order.

Simulator mode: with SHIELD_NITRO_VSOCK_DIR=DIR, ``vsock://CID:PORT`` connects to the unix
socket DIR/CID_PORT.sock instead, exactly like the C++ side.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Dict, NoReturn, Optional, Union

import cbor2

from .errors import CODES, ShieldNitroError, prefixed

PROTOCOL_VERSION = 1
FRAME_HEADER = 4
DEFAULT_MAX_FRAME = 64 << 20
VSOCK_CID_ANY = 0xFFFFFFFF
_MAX_UNIX_PATH = 107


def _bad(text: str, why: str) -> NoReturn:
    raise ShieldNitroError("usage", f"endpoint '{text}': {why}")


def _decimal(text, field, limit, original):
    if not re.fullmatch(r"0|[1-9][0-9]{0,9}", text or "") or int(text) > limit:
        _bad(original, f"{field} must be a decimal number up to {limit}")
    return int(text)


@dataclass(frozen=True)
class Endpoint:
    kind: str          # "vsock", "unix" or "tcp"
    cid: int = 0
    port: int = 0
    host: str = ""
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> "Endpoint":
        """``unix:PATH``, ``vsock://CID:PORT`` (CID may be ANY) or ``tcp://HOST:PORT``; UsageError otherwise."""
        if not isinstance(text, str):
            raise ShieldNitroError("usage", f"endpoint must be text, got {type(text).__name__}")
        if text.startswith("unix:"):
            path = text[5:]
            if path.startswith("//"):
                path = path[2:]
            if not path or len(path.encode()) > _MAX_UNIX_PATH:
                _bad(text, f"a unix path of 1..{_MAX_UNIX_PATH} bytes is required")
            return cls("unix", path=path)
        if text.startswith("vsock://"):
            cid, sep, port = text[8:].rpartition(":")
            if not sep:
                _bad(text, "expected vsock://CID:PORT")
            cid_value = VSOCK_CID_ANY if cid.lower() == "any" else _decimal(cid, "CID", 0xFFFFFFFE, text)
            return cls("vsock", cid=cid_value, port=_decimal(port, "port", 0xFFFFFFFE, text))
        if text.startswith("tcp://"):
            rest = text[6:]
            m = re.fullmatch(r"\[([^\]]+)\]:(\w*)", rest) or re.fullmatch(r"([^:\[\]]+):(\w*)", rest)
            if not m:
                _bad(text, "expected tcp://HOST:PORT or tcp://[IPv6]:PORT")
            return cls("tcp", host=m.group(1), port=_decimal(m.group(2), "port", 65535, text))
        _bad(text, "unknown scheme (use unix:PATH, tcp://HOST:PORT or vsock://CID:PORT)")

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "vsock":
            return f"vsock://{'ANY' if self.cid == VSOCK_CID_ANY else self.cid}:{self.port}"
        return f"tcp://[{self.host}]:{self.port}" if ":" in self.host else f"tcp://{self.host}:{self.port}"

    def mapped(self) -> "Endpoint":
        """The endpoint actually dialled: simulated vsock becomes DIR/CID_PORT.sock."""
        sim_dir = os.environ.get("SHIELD_NITRO_VSOCK_DIR")
        if self.kind != "vsock" or not sim_dir:
            return self
        if self.cid == VSOCK_CID_ANY:
            raise ShieldNitroError("usage", "cannot connect to vsock://ANY: name a CID")
        path = os.path.join(sim_dir, f"{self.cid}_{self.port}.sock")
        if len(path.encode()) > _MAX_UNIX_PATH:
            raise ShieldNitroError("usage", f"SHIELD_NITRO_VSOCK_DIR is too long for a unix socket path: {path}")
        return Endpoint("unix", path=path)


def connect(endpoint: Union[str, Endpoint], timeout: float = 5.0) -> socket.socket:
    """A connected blocking stream socket to ``endpoint`` (an Endpoint or its text)."""
    ep = (endpoint if isinstance(endpoint, Endpoint) else Endpoint.parse(endpoint)).mapped()
    try:
        if ep.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = ep.path
        elif ep.kind == "vsock":
            if not hasattr(socket, "AF_VSOCK"):
                raise ShieldNitroError("unsupported", "this Python has no AF_VSOCK support")
            sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            address = (ep.cid, ep.port)
        else:
            sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
            return sock
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    sock.connect(address)
                    break
                except BlockingIOError:
                    # A unix socket whose backlog is full answers EAGAIN at once (no EINPROGRESS to
                    # wait on): the server is busy, not gone, so try again until the timeout.
                    if time.monotonic() >= deadline:
                        raise socket.timeout() from None
                    time.sleep(0.005)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock
    except socket.timeout:
        raise ShieldNitroError("timeout", f"connect to {endpoint}: timed out") from None
    except OSError as e:
        raise ShieldNitroError("io", f"connect to {endpoint}: {e.strerror or e}") from None


# -- messages ----------------------------------------------------------------------------------

def encode_frame(payload: bytes) -> bytes:
    """The 4-byte big-endian length, then the payload."""
    if len(payload) > 0xFFFFFFFF:
        raise ShieldNitroError("usage", "frame: message over 4 GiB cannot be framed")
    return struct.pack(">I", len(payload)) + payload


def _bytes_head(n: int) -> bytes:
    """The CBOR head of a byte string of n bytes (major type 2, shortest form)."""
    if n < 24:
        return bytes([0x40 + n])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([0x40 + info]) + n.to_bytes(width, "big")
    raise ShieldNitroError("usage", "frame: byte string too long")


def encode_request(req_id: int, op: Optional[str], body: Dict[str, Any], more: Optional[bool] = None) -> bytes:
    """Keys in the order the C++ side writes them, so frames are byte-identical."""
    if not isinstance(body, dict):
        raise ShieldNitroError("usage", "request body must be a map")
    msg = {"v": PROTOCOL_VERSION, "id": req_id}
    if op is not None:
        msg["op"] = op
    if more is not None:
        msg["more"] = more
    msg["body"] = body
    return _encode(msg, op)


def encode_request_body(op: str, body: Optional[Dict[str, Any]]) -> bytes:
    """``{"op", "body"}``: a request as it travels inside the attested channel."""
    if body is not None and not isinstance(body, dict):
        raise ShieldNitroError("usage", f"{op}: the request body must be a map")
    return _encode({"op": op, "body": body if body is not None else {}}, op)


def _encode(msg: Dict[str, Any], op: Optional[str]) -> bytes:
    try:
        return cbor2.dumps(msg)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
        raise ShieldNitroError("usage", f"{op or 'request'}: the body cannot be encoded as CBOR ({e})") from None


@dataclass
class Response:
    id: int
    ok: bool
    body: dict
    code: str = ""
    message: str = ""

    def value(self, op: Optional[str] = None) -> Dict[str, Any]:
        """The body, or ShieldNitroError(code, "<op>: message")."""
        if not self.ok:
            raise ShieldNitroError(self.code, prefixed(op, self.message) if op else self.message)
        return self.body


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def decode_response(payload: bytes) -> Response:
    """Strict decode of one response frame's payload; ShieldNitroError("format") otherwise."""
    try:
        msg = cbor2.loads(payload)
    except Exception as e:  # cbor2 raises several types on garbage
        raise ShieldNitroError("format", f"response is not valid CBOR ({type(e).__name__})") from None
    if not isinstance(msg, dict):
        raise ShieldNitroError("format", "response must be a CBOR map")
    if not _is_uint(msg.get("id")):
        raise ShieldNitroError("format", 'response needs "id": an unsigned integer')
    if msg.get("v") != PROTOCOL_VERSION or isinstance(msg.get("v"), bool):
        raise ShieldNitroError("unsupported", f"response protocol version {msg.get('v')!r} (this side speaks 1)")
    ok = msg.get("ok")
    if not isinstance(ok, bool):
        raise ShieldNitroError("format", 'response needs "ok": a boolean')
    if ok:
        body = msg.get("body", {})
        if not isinstance(body, dict):
            raise ShieldNitroError("format", '"body" must be a map')
        return Response(msg["id"], True, body)
    err = msg.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("code"), str) or not isinstance(err.get("message"), str):
        raise ShieldNitroError("format", 'an error response needs "error": {"code": text, "message": text}')
    code = err["code"] if err["code"] in CODES else "remote"
    return Response(msg["id"], False, {}, code, err["message"])


# -- connection --------------------------------------------------------------------------------

class Connection:
    """One framed connection shared by any number of threads (see the module docstring)."""

    def __init__(self, sock: socket.socket, *, max_frame: int = DEFAULT_MAX_FRAME, call_timeout: float = 60.0,
                 name: str = "enclave") -> None:
        self._sock = sock
        self._max_frame = max_frame
        self.call_timeout = call_timeout
        self._name = name
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending = {}
        self._next_id = 1
        self._closed_reason = None
        self._reader = threading.Thread(target=self._read_loop, name="shield-nitro-reader", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, endpoint: Union[str, Endpoint], *, connect_timeout: float = 5.0, **options: Any) -> "Connection":
        """Connects to ``endpoint``; options: max_frame, call_timeout."""
        return cls(connect(endpoint, connect_timeout), name=str(endpoint), **options)

    # requests
    def request_async(self, op: str, body: Optional[Dict[str, Any]] = None) -> "Future[Response]":
        """Send now; a Future that resolves to a Response (never raises remote errors)."""
        req_id, fut = self._register()
        self._send(req_id, encode_request(req_id, op, body if body is not None else {}))
        return fut

    def request(self, op: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Response:
        """The Response (ok or not); IoError/timeout only for the connection itself."""
        return self._wait(self.request_async(op, body), op, timeout)

    def call(self, op: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The response body; ShieldNitroError with the remote code on failure."""
        return self.request(op, body, timeout).value(op)

    def stream(self, op: str, first_body: Optional[Dict[str, Any]] = None) -> "Upload":
        """An upload stream: the first frame carries "more": true (protocol.md, streams)."""
        req_id, fut = self._register()
        self._send(req_id, encode_request(req_id, op, first_body if first_body is not None else {}, more=True))
        return Upload(self, req_id, op, fut)

    # plumbing
    def _register(self):
        fut = Future()
        with self._lock:
            if self._closed_reason:
                raise ShieldNitroError("io", f"{self._name}: {self._closed_reason}")
            req_id = self._next_id
            self._next_id += 1
            self._pending[req_id] = fut
        return req_id, fut

    def _send(self, req_id, payload):
        frame = encode_frame(payload)
        if len(payload) > self._max_frame:
            self._resolve(req_id, Response(req_id, False, {}, "usage", f"request of {len(payload)} bytes exceeds "
                                                                         f"the frame limit {self._max_frame}"))
            return
        try:
            with self._send_lock:
                self._sock.sendall(frame)
        except OSError as e:
            self._fail_all(f"connection closed while sending ({e.strerror or e})")

    def _send_file_part(self, req_id: int, key: str, fd: int, offset: int, n: int) -> None:
        """The frame of ``{key: n bytes of fd at offset}`` as a continuation part, byte for byte
        what ``_send`` would send, its bytes moved by sendfile(2) inside the kernel."""
        prefix = encode_request(req_id, None, {key: b""}, more=True)
        if prefix[-1] != 0x40:   # the empty byte string the value's head replaces
            raise ShieldNitroError("internal", "frame: unexpected encoding of a file part")
        head = _bytes_head(n)
        size = len(prefix) - 1 + len(head) + n
        if size > self._max_frame:
            raise ShieldNitroError("usage", f"part of {size} bytes exceeds the frame limit {self._max_frame}")
        try:
            with self._send_lock:
                self._sock.sendall(struct.pack(">I", size) + prefix[:-1] + head)
                sent = 0
                while sent < n:
                    k = os.sendfile(self._sock.fileno(), fd, offset + sent, n - sent)
                    if k == 0:   # the file shrank: the frame cannot be completed
                        self._fail_all("the artifact file ended before its announced size")
                        raise ShieldNitroError("io", "load_artifact: the file ended before its announced size")
                    sent += k
        except OSError as e:
            self._fail_all(f"connection closed while sending ({e.strerror or e})")

    def _wait(self, fut, op, timeout):
        try:
            return fut.result(timeout if timeout is not None else self.call_timeout)
        except TimeoutError:
            raise ShieldNitroError("timeout", f"{op}: no response within {timeout or self.call_timeout} s") from None

    def _resolve(self, req_id, response):
        with self._lock:
            fut = self._pending.pop(req_id, None)
        if fut is not None and not fut.done():
            fut.set_result(response)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _read_loop(self):
        reason = "connection closed by the peer"
        try:
            while True:
                head = self._recv_exact(FRAME_HEADER)
                if head is None:
                    break
                (length,) = struct.unpack(">I", head)
                if length == 0 or length > self._max_frame:
                    reason = f"peer sent a frame of {length} bytes (limit {self._max_frame})"
                    break
                payload = self._recv_exact(length)
                if payload is None:
                    reason = "connection closed mid-frame"
                    break
                resp = decode_response(payload)
                self._resolve(resp.id, resp)
        except ShieldNitroError as e:
            reason = f"malformed response: {e.message}"
        except OSError as e:
            reason = f"connection failed ({e.strerror or e})"
        self._fail_all(reason)

    def _fail_all(self, reason):
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = reason
            pending, self._pending = self._pending, {}
        for req_id, fut in pending.items():
            if not fut.done():
                fut.set_result(Response(req_id, False, {}, "io", f"{self._name}: {reason}"))

    @property
    def connected(self) -> bool:
        """False once the connection closed or failed."""
        return self._closed_reason is None

    def close(self) -> None:
        """Closes the socket; pending calls fail with "io". Idempotent."""
        with self._lock:
            if self._closed_reason is None:
                self._closed_reason = "connection closed"
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Upload:
    """An open request stream. One thread feeds it: send() parts, then finish()."""

    def __init__(self, conn: Connection, req_id: int, op: str, future: "Future[Response]") -> None:
        self._conn = conn
        self._id = req_id
        self._op = op
        self._future = future
        self._finished = False

    @property
    def answered_early(self) -> bool:
        """True when the peer already answered (typically refused) before the last part."""
        return self._future.done()

    def send(self, part: Dict[str, Any]) -> None:
        """One more part of the stream (dropped once the peer has answered)."""
        if self._finished:
            raise ShieldNitroError("usage", f"{self._op}: stream already finished")
        if not self._future.done():
            self._conn._send(self._id, encode_request(self._id, None, part, more=True))

    @property
    def can_send_file(self) -> bool:
        """Whether send_file_bytes works on this connection: os.sendfile and a blocking socket (with
        a timeout the socket is non-blocking underneath, and sendfile would stop at EAGAIN)."""
        sock = self._conn._sock
        return hasattr(os, "sendfile") and hasattr(sock, "fileno") and sock.gettimeout() is None

    def send_file_bytes(self, key: str, fd: int, offset: int, n: int) -> None:
        """One more part ``{key: bytes}`` whose n bytes are read from fd at offset by the kernel
        (sendfile), never copied through this process (dropped once the peer has answered)."""
        if self._finished:
            raise ShieldNitroError("usage", f"{self._op}: stream already finished")
        if not self._future.done():
            self._conn._send_file_part(self._id, key, fd, offset, n)

    def finish(self, last_part: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Sends the last part ("more": false) and returns the response body (raises on error)."""
        if not self._finished:
            self._finished = True
            if not self._future.done():
                self._conn._send(self._id, encode_request(self._id, None, last_part or {}, more=False))
        return self._conn._wait(self._future, self._op, timeout).value(self._op)
