#!/usr/bin/python3
"""An unmodified app's view of the enclave's KMS endpoint, with Debian's stock botocore.

Run by endpoint_test.cpp with the app's environment (AWS_CONTAINER_CREDENTIALS_FULL_URI,
AWS_CONTAINER_AUTHORIZATION_TOKEN, AWS_REGION, ...) and SN_KMS_URL (botocore 1.29 predates
AWS_ENDPOINT_URL_KMS, so the URL is passed to client creation), SN_KEY_ID, SN_BLOB (a ciphertext
under a key whose policy requires the enclave's attestation), SN_EXPECT (its plaintext, hex).
Prints "ok" and exits 0 when every check passes; exits 1 naming the first that fails.
"""
import base64
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

import botocore
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError


def check(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)


def error_of(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def kms_client(session=None, **kw):
    session = session or botocore.session.get_session()
    return session.create_client("kms", endpoint_url=os.environ["SN_KMS_URL"],
                                 config=Config(retries={"max_attempts": 1}), **kw)


def get_credentials(token):
    req = urllib.request.Request(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    if token is not None:
        req.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def main():
    print("botocore", botocore.__version__)
    # The SDK finds its credentials through the container provider, with nothing else set.
    session = botocore.session.get_session()
    creds = session.get_credentials()
    check(creds is not None and creds.method == "container-role", f"container credentials: {creds and creds.method}")
    kms = kms_client(session)

    # Decrypt of a blob under the attested key: Plaintext comes back in clear.
    r = kms.decrypt(CiphertextBlob=base64.b64decode(os.environ["SN_BLOB"]),
                    EncryptionContext={"app": "inference"})
    check(r["Plaintext"].hex() == os.environ["SN_EXPECT"], "Decrypt plaintext")
    check(r["KeyId"] == os.environ["SN_KEY_ID"], "Decrypt KeyId")
    check(len(r["ResponseMetadata"]["RequestId"]) == 36, "x-amzn-RequestId")

    # GenerateDataKey and GenerateRandom return Plaintext; the data key round-trips.
    dk = kms.generate_data_key(KeyId=os.environ["SN_KEY_ID"], KeySpec="AES_256")
    check(len(dk["Plaintext"]) == 32, "GenerateDataKey Plaintext")
    back = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])
    check(back["Plaintext"] == dk["Plaintext"], "data key round trip")
    rnd = kms.generate_random(NumberOfBytes=64)
    check(len(rnd["Plaintext"]) == 64, "GenerateRandom Plaintext")

    # KMS's refusals arrive in KMS's shape.
    code = error_of(lambda: kms.decrypt(CiphertextBlob=base64.b64decode(os.environ["SN_BLOB"]),
                                        EncryptionContext={"app": "other"}))
    check(code == "InvalidCiphertextException", f"KMS error passed through: {code}")

    # Signed with wrong credentials: refused.
    local = creds.get_frozen_credentials()
    wrong = kms_client(aws_access_key_id=local.access_key, aws_secret_access_key="x" * 40,
                       aws_session_token=local.token)
    code = error_of(lambda: wrong.generate_random(NumberOfBytes=8))
    check(code == "InvalidSignatureException", f"wrong secret: {code}")
    stranger = kms_client(aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                          aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    code = error_of(lambda: stranger.generate_random(NumberOfBytes=8))
    check(code == "UnrecognizedClientException", f"unknown access key: {code}")

    # The credentials endpoint: no token 401, wrong token 403, the right one 200.
    check(get_credentials(None)[0] == 401, "no Authorization token")
    check(get_credentials("wrong")[0] == 403, "wrong Authorization token")
    status, body = get_credentials(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
    check(status == 200 and set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"},
          f"credentials answer: {status}")

    # Garbage on the socket: an HTTP error or a close, and the endpoint keeps serving.
    url = urllib.parse.urlparse(os.environ["SN_KMS_URL"])
    for junk in (b"\x00\xff" * 300 + b"\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: zz\r\n\r\n"):
        with socket.create_connection((url.hostname, url.port), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            answer = s.recv(4096)
            check(answer == b"" or answer.startswith(b"HTTP/1.1 4"), f"garbage answered {answer[:40]!r}")
    check(len(kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8, "served after garbage")
    print("ok")


if __name__ == "__main__":
    main()
