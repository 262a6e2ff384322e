#!/usr/bin/env python3
"""Writes the Guard8 interop files of this folder with Guard8's own Python package.

Run from a checkout of github.com/Guard8-ai/Shield (see README.md):
    PYTHONPATH=/path/to/Shield/python python3 make_data.py OUTDIR
Every output is random (Guard8 draws salts and nonces itself), so reruns differ byte for
byte; the manifest records what each file must decrypt to.
"""
import getpass
import hashlib
import json
import os
import sys

from shield import cli as g8cli
from shield.core import Shield
from shield.stream import StreamCipher

PASSWORD = "guard8-migration-pw"
KEY = bytes(range(32))


def pattern(n):
    return bytes((i * 31 + 7) % 256 for i in range(n))


def main(out):
    os.makedirs(out, exist_ok=True)
    manifest = {"password": PASSWORD, "key_hex": KEY.hex(), "streams": [], "v4": []}

    def stream(name, plaintext, chunk_size=None, key=None):
        src = os.path.join(out, name)
        with open(src, "wb") as f:
            f.write(plaintext)
        if key is not None:
            cipher = StreamCipher(key, chunk_size or 64 * 1024)
            cipher.encrypt_file(src, src + ".enc")
            mode = "key"
        elif chunk_size is None:
            # The Guard8 CLI itself: it prompts twice for the password and salts with the base name.
            getpass.getpass = lambda prompt="": PASSWORD
            assert g8cli.main(["encrypt", src]) == 0
            mode = "cli"
        else:
            cipher = StreamCipher.from_password(PASSWORD, name.encode(), chunk_size)
            cipher.encrypt_file(src, src + ".enc")
            mode = "password"
        os.remove(src)
        manifest["streams"].append({
            "file": name + ".enc", "original_name": name, "mode": mode,
            "chunk_size": chunk_size or 64 * 1024, "plaintext_size": len(plaintext),
            "plaintext_sha256": hashlib.sha256(plaintext).hexdigest()})

    stream("empty.txt", b"")
    stream("one.txt", b"x")
    stream("chunks.bin", pattern(350), chunk_size=100)
    stream("exact.bin", pattern(300), chunk_size=100)
    stream("cli.bin", pattern(65537))
    stream("keyed.bin", pattern(250), chunk_size=64, key=KEY)

    for name, service, iterations in [("v4_150000.shield", "migration.example", 150000),
                                      ("v4_50000.shield", "migration.example", 50000)]:
        plaintext = f"v4 sealed by Guard8 with {iterations} PBKDF2 iterations".encode()
        with open(os.path.join(out, name), "wb") as f:
            f.write(Shield(PASSWORD, service, iterations=iterations).encrypt(plaintext))
        manifest["v4"].append({"file": name, "service": service, "iterations": iterations,
                               "plaintext": plaintext.decode()})

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
