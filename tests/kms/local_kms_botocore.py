#!/usr/bin/env python3
"""kms-local against botocore (the AWS SDK for Python's core): pagination, key state, tags,
validation, asymmetric keys, GenerateDataKeyPair, DeriveSharedSecret and the Date and
x-amzn-RequestId headers, each checked as KMS answers them.

Usage: local_kms_botocore.py PATH-TO-shield-nitro   (starts its own kms-local; exit 0 = pass)
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what, flush=True)


def error_of(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "none"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cli, state):
    for _ in range(3):
        port = free_port()
        log = open(os.path.join(os.path.dirname(state), "kms-local.log"), "w")
        proc = subprocess.Popen([cli, "kms-local", "--listen", f"127.0.0.1:{port}", "--state", state],
                                stdout=log, stderr=subprocess.STDOUT)
        for _ in range(200):
            if proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    sys.exit("kms-local did not start")


def main():
    cli = sys.argv[1]
    top = tempfile.mkdtemp(prefix="sn-botocore-")
    state = os.path.join(top, "state")
    proc, port = start(cli, state)
    try:
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(state, "credentials")
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        session = botocore.session.Session(profile="admin")
        kms = session.create_client("kms", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                                    config=Config(retries={"max_attempts": 1}, parameter_validation=False))
        run(kms)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(top, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


def run(kms):
    # ---- headers: Date and x-amzn-RequestId on answers and on errors ----
    r = kms.list_keys()
    h = r["ResponseMetadata"]["HTTPHeaders"]
    check("date" in h and h["date"].endswith(" GMT"), f"Date header on success: {h}")
    check(len(r["ResponseMetadata"].get("RequestId", "")) == 36, "x-amzn-RequestId on success")
    try:
        kms.describe_key(KeyId="alias/none")
        check(False, "describe of a missing alias succeeded")
    except ClientError as e:
        eh = e.response["ResponseMetadata"]["HTTPHeaders"]
        check("date" in eh and len(e.response["ResponseMetadata"].get("RequestId", "")) == 36,
              f"Date and RequestId on an error: {eh}")

    # ---- pagination ----
    keys = sorted(kms.create_key(Description=f"k{i}")["KeyMetadata"]["KeyId"] for i in range(5))
    for i, k in enumerate(keys):
        kms.create_alias(AliasName=f"alias/p{i}", TargetKeyId=k)
    seen, marker, pages = [], None, 0
    while True:
        args = {"Limit": 2}
        if marker:
            args["Marker"] = marker
        page = kms.list_keys(**args)
        pages += 1
        check(len(page["Keys"]) <= 2, "ListKeys honours Limit")
        seen += [k["KeyId"] for k in page["Keys"]]
        if not page["Truncated"]:
            check("NextMarker" not in page, "no NextMarker on the last page")
            break
        marker = page["NextMarker"]
    check(seen == keys and pages == 3, f"ListKeys pages: {pages} pages, {len(seen)} keys")
    all_keys = [k["KeyId"] for p in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1})
                for k in p["Keys"]]
    check(all_keys == keys, "botocore's ListKeys paginator walks every key")
    aliases = [a for p in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2})
               for a in p["Aliases"]]
    check([a["AliasName"] for a in aliases] == [f"alias/p{i}" for i in range(5)], "ListAliases paginates")
    check(all("CreationDate" in a and "LastUpdatedDate" in a for a in aliases),
          "ListAliases entries carry CreationDate and LastUpdatedDate")
    kms.update_alias(AliasName="alias/p0", TargetKeyId=keys[4])
    moved = kms.list_aliases(KeyId=keys[4])["Aliases"]
    check(sorted(x["AliasName"] for x in moved) == ["alias/p0", "alias/p4"], "UpdateAlias moves the alias")
    kms.delete_alias(AliasName="alias/p4")
    check([x["AliasName"] for x in kms.list_aliases(KeyId=keys[4])["Aliases"]] == ["alias/p0"], "DeleteAlias")
    for bad in (0, 1001):
        check(error_of(lambda: kms.list_keys(Limit=bad)) == "ValidationException", f"ListKeys Limit {bad}")
        check(error_of(lambda: kms.list_aliases(Limit=bad)) == "ValidationException", f"ListAliases Limit {bad}")
    check(kms.list_keys(Limit=1000)["Truncated"] is False, "Limit 1000 is accepted")
    check(error_of(lambda: kms.list_keys(Marker="bogus")) == "InvalidMarkerException", "bogus ListKeys marker")
    check(error_of(lambda: kms.list_aliases(Marker="bogus")) == "InvalidMarkerException", "bogus ListAliases marker")

    # ---- key state ----
    key = keys[0]
    blob = kms.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    check(md["KeyState"] == "Disabled" and md["Enabled"] is False, f"disabled metadata: {md['KeyState']}")
    check(error_of(lambda: kms.decrypt(CiphertextBlob=blob)) == "DisabledException", "decrypt with a disabled key")
    check(error_of(lambda: kms.encrypt(KeyId=key, Plaintext=b"x")) == "DisabledException", "encrypt with a disabled key")
    kms.enable_key(KeyId=key)
    check(kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret", "re-enabled key decrypts")
    check(error_of(lambda: kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=6)) == "ValidationException",
          "PendingWindowInDays 6")
    check(error_of(lambda: kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=31)) == "ValidationException",
          "PendingWindowInDays 31")
    s = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    check(s["KeyState"] == "PendingDeletion" and s["PendingWindowInDays"] == 7, "ScheduleKeyDeletion answer")
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    check(md["KeyState"] == "PendingDeletion" and "DeletionDate" in md, "pending-deletion metadata")
    check(error_of(lambda: kms.decrypt(CiphertextBlob=blob)) == "KMSInvalidStateException", "decrypt pending deletion")
    check(error_of(lambda: kms.disable_key(KeyId=key)) == "KMSInvalidStateException", "disable pending deletion")
    kms.cancel_key_deletion(KeyId=key)
    check(kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled", "cancelled deletion leaves it disabled")
    check(error_of(lambda: kms.cancel_key_deletion(KeyId=key)) == "KMSInvalidStateException", "cancel twice")
    kms.enable_key(KeyId=key)
    check(kms.schedule_key_deletion(KeyId=keys[1])["PendingWindowInDays"] == 30, "default window is 30 days")

    # ---- tags ----
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "ml"}, {"TagKey": "env", "TagValue": "dev"}])
    tags = kms.list_resource_tags(KeyId=key)["Tags"]
    check(sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("env", "dev"), ("team", "ml")], f"tags: {tags}")
    kms.untag_resource(KeyId=key, TagKeys=["env"])
    check([t["TagKey"] for t in kms.list_resource_tags(KeyId=key)["Tags"]] == ["team"], "untag")
    kms.tag_resource(KeyId=key, Tags=[{"TagKey": "a", "TagValue": ""}, {"TagKey": "b", "TagValue": "2"}])
    page = kms.list_resource_tags(KeyId=key, Limit=2)
    check(page["Truncated"] is True and [t["TagKey"] for t in page["Tags"]] == ["a", "b"], "ListResourceTags Limit")
    rest = kms.list_resource_tags(KeyId=key, Limit=2, Marker=page["NextMarker"])
    check(rest["Truncated"] is False and [t["TagKey"] for t in rest["Tags"]] == ["team"], "ListResourceTags Marker")
    check(error_of(lambda: kms.list_resource_tags(KeyId=key, Limit=51)) == "ValidationException", "tags Limit 51")

    # ---- validation ----
    check(error_of(lambda: kms.create_key(KeyUsage="SIGN_ENCRYPT")) == "ValidationException", "bad KeyUsage")
    check(error_of(lambda: kms.create_key(KeySpec="RSA_1024")) == "ValidationException", "bad KeySpec")
    check(error_of(lambda: kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionAlgorithm="AES"))
          == "ValidationException", "bad EncryptionAlgorithm")
    check(error_of(lambda: kms.encrypt(KeyId=key, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"))
          == "InvalidKeyUsageException", "RSA algorithm with a symmetric key")
    check(error_of(lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_512")) == "ValidationException", "bad data KeySpec")
    check(error_of(lambda: kms.create_key(Origin="EXTERNAL")) == "UnsupportedOperationException", "Origin EXTERNAL")
    check(error_of(lambda: kms.create_key(MultiRegion=True)) == "UnsupportedOperationException", "MultiRegion")
    check(error_of(lambda: kms.create_key(Description="d" * 8193)) == "ValidationException", "Description 8193")
    check(kms.create_key(Description="d" * 8192)["KeyMetadata"]["Description"] == "d" * 8192, "Description 8192")
    check(error_of(lambda: kms.create_alias(AliasName="alias/a2a", TargetKeyId="alias/p0")) == "ValidationException",
          "alias as an alias target")

    # Encrypt ignores a Recipient member, as KMS does (botocore would refuse it client-side, so
    # the member is added to the serialized body).
    def add_recipient(params, **_):
        import json
        body = json.loads(params["body"])
        body["Recipient"] = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"}
        params["body"] = json.dumps(body).encode()
    kms.meta.events.register("before-call.kms.Encrypt", add_recipient)
    try:
        check("CiphertextBlob" in kms.encrypt(KeyId=key, Plaintext=b"x"), "Encrypt ignores Recipient")
    finally:
        kms.meta.events.unregister("before-call.kms.Encrypt", add_recipient)

    # ---- asymmetric keys, GetPublicKey, GenerateDataKeyPair, DeriveSharedSecret ----
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("RSA_3072", "SIGN_VERIFY"), ("RSA_4096", "ENCRYPT_DECRYPT"),
                        ("ECC_NIST_P256", "KEY_AGREEMENT"), ("ECC_NIST_P384", "SIGN_VERIFY"),
                        ("ECC_NIST_P521", "KEY_AGREEMENT"), ("ECC_SECG_P256K1", "SIGN_VERIFY")):
        md = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        pk = kms.get_public_key(KeyId=md["KeyId"])
        pub = serialization.load_der_public_key(pk["PublicKey"])
        check(pk["KeySpec"] == spec and pk["KeyUsage"] == usage and pub is not None, f"GetPublicKey {spec}")
    rsa = kms.create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    rsa_pub = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa)["PublicKey"])
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ct = rsa_pub.encrypt(b"offline", oaep)  # what a producer without KMS access does
    check(kms.decrypt(KeyId=rsa, CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"offline",
          "RSA key decrypts what its public key encrypted")
    check(error_of(lambda: kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT")) == "ValidationException",
          "ECC key for ENCRYPT_DECRYPT")
    for spec in ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"):
        r = kms.generate_data_key_pair(KeyId=key, KeyPairSpec=spec)
        priv = serialization.load_der_private_key(r["PrivateKeyPlaintext"], None)
        same = priv.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo) == r["PublicKey"]
        check(same and r["KeyPairSpec"] == spec, f"GenerateDataKeyPair {spec}")
        check(kms.decrypt(CiphertextBlob=r["PrivateKeyCiphertextBlob"])["Plaintext"] == r["PrivateKeyPlaintext"],
              f"PrivateKeyCiphertextBlob decrypts ({spec})")
    w = kms.generate_data_key_pair_without_plaintext(KeyId=key, KeyPairSpec="ECC_NIST_P256")
    check("PrivateKeyPlaintext" not in w and "PublicKey" in w, "GenerateDataKeyPairWithoutPlaintext")
    agree = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    mine = ec.generate_private_key(ec.SECP384R1())
    kms_pub = serialization.load_der_public_key(kms.get_public_key(KeyId=agree)["PublicKey"])
    mine_der = mine.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    d = kms.derive_shared_secret(KeyId=agree, KeyAgreementAlgorithm="ECDH", PublicKey=mine_der)
    check(d["SharedSecret"] == mine.exchange(ec.ECDH(), kms_pub), "DeriveSharedSecret matches local ECDH")
    check(error_of(lambda: kms.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm="ECDH", PublicKey=mine_der))
          == "InvalidKeyUsageException", "DeriveSharedSecret with a symmetric key")


if __name__ == "__main__":
    sys.exit(main())
