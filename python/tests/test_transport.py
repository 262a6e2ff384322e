import socket
import struct
import threading

import cbor2
import pytest

from fake_server import FakeServer
from shield_nitro.errors import ShieldNitroError
from shield_nitro.transport import Connection, Endpoint, decode_response, encode_request


def test_endpoint_parse_and_print():
    cases = {"unix:/run/x.sock": Endpoint("unix", path="/run/x.sock"),
             "vsock://16:5000": Endpoint("vsock", cid=16, port=5000),
             "vsock://ANY:5000": Endpoint("vsock", cid=0xFFFFFFFF, port=5000),
             "tcp://127.0.0.1:7000": Endpoint("tcp", host="127.0.0.1", port=7000),
             "tcp://[::1]:7000": Endpoint("tcp", host="::1", port=7000)}
    for text, ep in cases.items():
        assert Endpoint.parse(text) == ep
        assert Endpoint.parse(str(ep)) == ep
    for bad in ("", "unix:", "http://x:1", "vsock://16", "vsock://x:1", "vsock://16:01", "tcp://h:65536",
                "tcp://::1:80", "tcp://h:", "unix:" + "a" * 108, "vsock://4294967295:1"):
        with pytest.raises(ShieldNitroError) as e:
            Endpoint.parse(bad)
        assert e.value.code == "usage", bad


def test_simulated_vsock_mapping(monkeypatch, tmp_path):
    monkeypatch.setenv("SHIELD_NITRO_VSOCK_DIR", str(tmp_path))
    assert Endpoint.parse("vsock://16:5000").mapped() == Endpoint("unix", path=f"{tmp_path}/16_5000.sock")
    assert Endpoint.parse("unix:/a").mapped() == Endpoint("unix", path="/a")
    with pytest.raises(ShieldNitroError):
        Endpoint.parse("vsock://ANY:5000").mapped()
    server = FakeServer(f"{tmp_path}/16_5000.sock", lambda op, body, parts: {"op": op})
    try:
        with Connection.open("vsock://16:5000") as conn:
            assert conn.call("describe") == {"op": "describe"}
    finally:
        server.close()


def test_request_encoding_matches_cpp_layout():
    # {"v":1,"id":7,"op":"describe","body":{}} with keys in the C++ writer's order.
    assert encode_request(7, "describe", {}) == bytes.fromhex("a461760162696407626f70686465736372696265" "64626f6479a0")
    cont = cbor2.loads(encode_request(7, None, {"data": b"x"}, more=False))
    assert list(cont) == ["v", "id", "more", "body"] and cont["more"] is False


def test_decode_response_strictness():
    ok = decode_response(cbor2.dumps({"v": 1, "id": 3, "ok": True, "body": {"a": 1}}))
    assert ok.ok and ok.body == {"a": 1}
    err = decode_response(cbor2.dumps({"v": 1, "id": 3, "ok": False, "error": {"code": "weird", "message": "m"}}))
    assert err.code == "remote"
    bad = [b"\xff", cbor2.dumps([1]), cbor2.dumps({"v": 1, "ok": True}), cbor2.dumps({"v": 2, "id": 1, "ok": True}),
           cbor2.dumps({"v": 1, "id": -1, "ok": True}), cbor2.dumps({"v": 1, "id": 1, "ok": 1}),
           cbor2.dumps({"v": 1, "id": 1, "ok": True, "body": []}), cbor2.dumps({"v": 1, "id": 1, "ok": False})]
    for payload in bad:
        with pytest.raises(ShieldNitroError):
            decode_response(payload)


@pytest.fixture
def server(tmp_path):
    def handler(op, body, parts):
        if op == "fail":
            raise ShieldNitroError("not_found", "no such handle")
        if op == "upload":
            return {"size": sum(len(p.get("data", b"")) for p in parts), "parts": len(parts), "header": body}
        return {"op": op, "echo": body}
    s = FakeServer(str(tmp_path / "s.sock"), handler, delays={"slow": 0.3})
    yield s
    s.close()


def test_pipelined_requests_complete_out_of_order(server):
    with Connection.open(server.endpoint) as conn:
        slow = conn.request_async("slow", {"n": 0})
        fast = [conn.request_async("fast", {"n": i}) for i in range(1, 50)]
        for i, fut in enumerate(fast, 1):
            assert fut.result(5).body == {"op": "fast", "echo": {"n": i}}
        assert not slow.done() or slow.result().body["echo"] == {"n": 0}
        assert slow.result(5).body["op"] == "slow"
        ids = [f["id"] for f in server.frames]
        assert len(set(ids)) == 50


def test_many_threads_share_one_connection(server):
    errors = []
    with Connection.open(server.endpoint) as conn:
        def worker(k):
            try:
                for i in range(20):
                    assert conn.call("echo", {"k": k, "i": i})["echo"] == {"k": k, "i": i}
            except Exception as e:  # collected for the main thread
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors


def test_remote_error_becomes_exception(server):
    with Connection.open(server.endpoint) as conn:
        with pytest.raises(ShieldNitroError) as e:
            conn.call("fail")
        assert e.value.code == "not_found" and "fail: no such handle" in str(e.value)


def test_stream_upload(server):
    with Connection.open(server.endpoint) as conn:
        up = conn.stream("upload", {"name": "m"})
        for i in range(10):
            up.send({"data": bytes(1000)})
        body = up.finish({"data": b"tail"})
        assert body == {"size": 10004, "parts": 11, "header": {"name": "m"}}
        frames = [f for f in server.frames if f["id"] == server.frames[0]["id"]]
        assert frames[0]["more"] is True and frames[0]["op"] == "upload"
        assert all("op" not in f for f in frames[1:]) and frames[-1]["more"] is False


def test_connection_failures(tmp_path):
    with pytest.raises(ShieldNitroError) as e:
        Connection.open(f"unix:{tmp_path}/none.sock")
    assert e.value.code == "io"
    # A peer that answers with an oversize frame header, then one that hangs up.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "bad.sock"))
    listener.listen(1)

    def evil():
        c, _ = listener.accept()
        c.recv(100)
        c.sendall(struct.pack(">I", 0xFFFFFFFF))
        c.close()
    threading.Thread(target=evil, daemon=True).start()
    conn = Connection.open(f"unix:{tmp_path}/bad.sock", max_frame=1 << 20)
    with pytest.raises(ShieldNitroError) as e:
        conn.call("describe", timeout=5)
    assert e.value.code == "io" and "frame" in e.value.message
    with pytest.raises(ShieldNitroError):
        conn.call("describe")
    conn.close()
    listener.close()


def test_call_timeout(server):
    with Connection.open(server.endpoint) as conn:
        with pytest.raises(ShieldNitroError) as e:
            conn.call("slow", timeout=0.05)
        assert e.value.code == "timeout"


def _full_backlog(path):
    """A unix listener that never accepts, with its backlog filled: the next connect gets EAGAIN."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    held = []
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
            held.append(s)
        except BlockingIOError:
            s.close()
            return listener, held


def test_connect_waits_for_room_in_a_full_backlog(tmp_path):
    from shield_nitro.transport import connect
    path = tmp_path / "busy.sock"
    listener, held = _full_backlog(path)
    try:
        with pytest.raises(ShieldNitroError) as e:   # nobody ever accepts: a timeout, not an I/O error
            connect(f"unix:{path}", timeout=0.3)
        assert e.value.code == "timeout"
        # Room appears while the client waits: it connects.
        threading.Timer(0.2, lambda: listener.accept()[0].close()).start()
        sock = connect(f"unix:{path}", timeout=5)
        sock.close()
    finally:
        for s in held:
            s.close()
        listener.close()
