"""Attested TLS, client side in Python (shield_nitro.attested_tls): the parsers of untrusted
answers, then connect() against the enclave side of attested_tls_server.py (documents from the
NSM simulator), a parent relay in the middle, http.client / urllib / requests through the pinned
context, re-attestation on rotation, and the same endpoint checked by the CLI and curl."""
import base64
import concurrent.futures
import http.client
import shutil
import subprocess
import time
import urllib.request
import warnings

import pytest

from attested_tls_server import APP_ANSWER, Server
from shield_nitro import FormatError, Policy, RemoteError, TrustRoot, UsageError, VerificationError
from shield_nitro import attested_tls as atls

PCR0 = bytes([0x42]) * 48


# -- parsers --

def test_parse_target():
    assert atls.parse_target("https://enclave.example:8443/x?y") == ("enclave.example", 8443)
    assert atls.parse_target("127.0.0.1:1") == ("127.0.0.1", 1)
    assert atls.parse_target("HTTPS://[::1]:65535") == ("::1", 65535)
    for bad in ["", "http://h:1", "https://h", "https://h:0", "https://h:65536", "https://h:1x", "https://:443",
                "https://u@h:1", "[::1", None, 5]:
        with pytest.raises(UsageError):
            atls.parse_target(bad)


def test_parse_response():
    assert atls.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") == b"abc"
    assert atls.parse_response(b"HTTP/1.0 200 OK\r\ncontent-type: x\r\n\r\nabcd") == b"abcd"
    with pytest.raises(RemoteError, match="429"):
        atls.parse_response(b"HTTP/1.1 429 Too Many Requests\r\n\r\n")
    with pytest.raises(RemoteError, match=r"400 Bad\?"):
        atls.parse_response(b"HTTP/1.1 400 Bad\x01\r\n\r\n")
    for bad in [b"", b"HTTP/1.1 200 OK", b"HTTP/2 200 OK\r\n\r\nx", b"HTTP/1.1 2x0 OK\r\n\r\nx",
                b"HTTP/1.1 200OK\r\n\r\nx", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\na",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\nabc", b"HTTP/1.1 200 OK\r\n\r\n",
                b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * atls.MAX_RESPONSE]:
        with pytest.raises(FormatError):
            atls.parse_response(bad)


def test_check_binding():
    key = b"\x11" * 32
    assert atls.check_binding(b"sn-tls/1" + key, key) == b""
    assert atls.check_binding(b"sn-tls/1" + key + b"\xab", key) == b"\xab"
    longest = b"sn-tls/1" + key + b"\x01" * atls.MAX_APP_USER_DATA
    assert len(atls.check_binding(longest, key)) == atls.MAX_APP_USER_DATA
    for bad in [None, b"", b"sn-tls/1" + key[:-1], longest + b"\x01", b"sn-tls/2" + key]:
        with pytest.raises(VerificationError):
            atls.check_binding(bad, key)
    with pytest.raises(VerificationError, match="not the key of this TLS connection"):
        atls.check_binding(b"sn-tls/1" + key, b"\x12" * 32)


def test_certificate_garbage_is_a_format_error():
    for bad in [b"", b"\x30\x03\x02\x01\x01", b"not a certificate"]:
        with pytest.raises(FormatError):
            atls.spki_sha256(bad)


# -- against the enclave side --

@pytest.fixture(scope="module")
def nsm(cli, tmp_path_factory):
    """A simulator (PCR0 = 0x42...) served on DIR/nsm.sock; yields (dir, TrustRoot)."""
    d = tmp_path_factory.mktemp("atls") / "nsm"
    subprocess.run([cli, "nsm-sim", "init", str(d), "--pcr", f"0={PCR0.hex()}"], check=True, capture_output=True)
    proc = subprocess.Popen([cli, "nsm-sim", "serve", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (d / "nsm.sock").exists():
                break
            time.sleep(0.05)
        yield d, TrustRoot.from_file(d / "root.pem")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def server(cli, nsm, tmp_path):
    with Server(tmp_path, cli, nsm[0]) as s:
        yield s


def policy(pcr0=PCR0, **kw):
    return Policy(pcrs={0: pcr0}, **kw)


def get(ctx, port):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


def test_honest_enclave_pins_for_http_client_and_urllib(server, nsm):
    ctx = atls.connect(server.url, policy(), nsm[1])
    key = ctx.attested
    assert key.spki_sha256 == server.spki_sha256
    assert key.curl_pin == "sha256//" + base64.b64encode(server.spki_sha256).decode()
    assert key.claims.pcrs[0] == PCR0 and len(key.claims.nonce) == 32 and key.app_user_data == b""
    assert atls.spki_sha256(key.certificate) == key.spki_sha256
    assert get(ctx, server.port) == APP_ANSWER
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    with opener.open(server.url + "/", timeout=20) as r:
        assert r.read() == APP_ANSWER
    assert ctx.verifications == 1 and server.attestations == 1


def test_requests_adapter(server, nsm):
    requests = pytest.importorskip("requests")
    ctx = atls.connect(server.url, policy(), nsm[1])
    with requests.Session() as s:
        with pytest.raises(requests.exceptions.SSLError):  # without the adapter: an unknown CA
            s.get(server.url + "/", timeout=20)
        s.mount(server.url, atls.RequestsAdapter(ctx))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "unverified HTTPS request" warning: the pin verified it
            r = s.get(server.url + "/", timeout=20)
        assert r.status_code == 200 and r.content == APP_ANSWER
    with pytest.raises(UsageError):
        atls.RequestsAdapter(object())


def test_man_in_the_middle_is_refused(server, nsm, tmp_path):
    with Server(tmp_path, relay_to=server.port) as relay:
        assert atls.attest(relay.url, policy(), nsm[1]).spki_sha256 == server.spki_sha256  # a blind relay is fine
        ctx = atls.connect(relay.url, policy(), nsm[1])
        relay.intercept = True
        with pytest.raises(VerificationError, match="not the key of this TLS connection"):
            atls.attest(relay.url, policy(), nsm[1])
        assert relay.attestations >= 1  # it forwarded the request: the document itself was genuine
        # The pinned context meets the interceptor's key, re-attests, and refuses.
        with pytest.raises(VerificationError):
            get(ctx, relay.port)
        assert ctx.attested.spki_sha256 == server.spki_sha256
        requests = pytest.importorskip("requests")
        with requests.Session() as s:
            s.mount(relay.url, atls.RequestsAdapter(ctx))
            with pytest.raises(VerificationError):
                s.get(relay.url + "/", timeout=20)


@pytest.mark.parametrize("behaviour,code", [("other_key", "verify"), ("no_binding", "verify"), ("wrong_nonce", "policy")])
def test_bad_documents_are_refused(cli, nsm, tmp_path, behaviour, code):
    with Server(tmp_path, cli, nsm[0], behaviour=behaviour) as bad:
        with pytest.raises(VerificationError) as e:
            atls.connect(bad.url, policy(), nsm[1])
        assert e.value.code == code


def test_wrong_pcrs_root_or_age_are_refused(server, nsm):
    with pytest.raises(VerificationError, match="PCR0") as e:
        atls.connect(server.url, policy(bytes(48 * [7])), nsm[1])
    assert e.value.code == "policy"
    with pytest.raises(VerificationError) as e:
        atls.connect(server.url, policy())  # the AWS root: a simulator document is refused
    assert e.value.code == "verify"
    with pytest.raises(VerificationError) as e:
        atls.connect(server.url, policy(max_age_s=0), nsm[1])  # any document is older than 0 s
    assert e.value.code == "expired"


def test_reattests_on_rotation_only(server, nsm):
    ctx = atls.connect(server.url, policy(), nsm[1])
    old = ctx.attested.spki_sha256
    assert get(ctx, server.port) == APP_ANSWER and ctx.verifications == 1
    server.rotate()
    assert get(ctx, server.port) == APP_ANSWER
    assert ctx.verifications == 2 and ctx.attested.spki_sha256 == server.spki_sha256 != old
    assert get(ctx, server.port) == APP_ANSWER and ctx.verifications == 2


def test_concurrent_connections_across_a_rotation_attest_once(server, nsm):
    ctx = atls.connect(server.url, policy(), nsm[1])
    before = server.attestations
    server.rotate()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: get(ctx, server.port), range(8)))
    assert answers == [APP_ANSWER] * 8
    assert ctx.verifications == 2 and server.attestations == before + 1
    assert ctx.attested.spki_sha256 == server.spki_sha256


def test_misuse_is_a_usage_error(server, nsm):
    ctx = atls.connect(server.url, policy(), nsm[1])
    with pytest.raises(UsageError):
        ctx.wrap_bio(None, None)
    with pytest.raises(UsageError):
        atls.attest(server.url, "not a policy", nsm[1])
    with pytest.raises(UsageError):
        atls.attest(server.url, policy(), nsm[1], nonce_size=513)


def test_network_failure_is_an_io_error(nsm):
    import socket
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(atls.ShieldNitroError) as e:
        atls.connect(f"127.0.0.1:{port}", policy(), nsm[1])
    assert e.value.code == "io"


def test_silent_peer_times_out(nsm):
    import socket
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts TCP, never speaks TLS
        with pytest.raises(atls.ShieldNitroError) as e:
            atls.connect(f"127.0.0.1:{mute.getsockname()[1]}", policy(), nsm[1], timeout=0.2)
        assert e.value.code == "timeout"


def test_cli_and_curl_agree_with_python(cli, server, nsm):
    key = atls.attest(server.url, policy(), nsm[1])
    proc = subprocess.run([cli, "attest", "tls", server.url, "--pcr", f"0={PCR0.hex()}", "--root",
                           str(nsm[0] / "root.pem")], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert key.spki_sha256_hex.encode() in proc.stdout and key.curl_pin.encode() in proc.stdout
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-sS", "--max-time", "20", "--insecure", "--pinnedpubkey", key.curl_pin,
                              server.url + "/"], capture_output=True, timeout=60)
        assert out.returncode == 0 and out.stdout == APP_ANSWER, out.stderr
