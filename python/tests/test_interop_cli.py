"""Shield v4 interop with the C++ CLI (shield-nitro encrypt/decrypt); skipped outside ctest."""
import os
import subprocess

import pytest

from shield_nitro import Shield
from shield_nitro.shield import SUITE_CHACHA20_POLY1305


def run(cli, *args, env=None):
    proc = subprocess.run([cli, *args], capture_output=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


@pytest.mark.parametrize("hex_key", [False, True])
def test_key_mode_both_directions(cli, tmp_path, hex_key):
    key = os.urandom(32)
    key_file = tmp_path / "k.key"
    key_file.write_bytes(key.hex().encode() + b"\n" if hex_key else key)
    plain = os.urandom(10_000)
    (tmp_path / "p.bin").write_bytes(plain)
    run(cli, "encrypt", "--key-file", str(key_file), str(tmp_path / "p.bin"), str(tmp_path / "c.shield"))
    assert Shield.with_key(key).decrypt((tmp_path / "c.shield").read_bytes()) == plain
    (tmp_path / "py.shield").write_bytes(Shield.with_key(key, suite=SUITE_CHACHA20_POLY1305).encrypt(plain))
    run(cli, "decrypt", "--key-file", str(key_file), str(tmp_path / "py.shield"), str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == plain


def test_cli_refuses_tampered_python_message(cli, tmp_path):
    key = os.urandom(32)
    (tmp_path / "k.key").write_bytes(key)
    msg = bytearray(Shield.with_key(key).encrypt(b"payload"))
    msg[-1] ^= 1
    (tmp_path / "bad.shield").write_bytes(bytes(msg))
    proc = subprocess.run([cli, "decrypt", "--key-file", str(tmp_path / "k.key"), str(tmp_path / "bad.shield"),
                           str(tmp_path / "out")], capture_output=True, timeout=60)
    assert proc.returncode == 1 and not (tmp_path / "out").exists()


def test_password_mode_both_directions(cli, tmp_path):
    env = dict(os.environ, SN_TEST_PW="correct horse")
    (tmp_path / "p.txt").write_bytes(b"password-mode interop")
    run(cli, "encrypt", "--password-env", "SN_TEST_PW", "--service", "interop.test", str(tmp_path / "p.txt"),
        str(tmp_path / "c.shield"), env=env)
    s = Shield.with_password("correct horse", "interop.test")
    assert s.decrypt((tmp_path / "c.shield").read_bytes()) == b"password-mode interop"
    (tmp_path / "py.shield").write_bytes(s.encrypt(b"from python"))
    run(cli, "decrypt", "--password-env", "SN_TEST_PW", "--service", "interop.test", str(tmp_path / "py.shield"),
        str(tmp_path / "back.txt"), env=env)
    assert (tmp_path / "back.txt").read_bytes() == b"from python"
