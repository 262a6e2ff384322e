"""The public API's contract: Policy validates when built, one exception family, typed and
documented signatures, py.typed, and an install that leaves the source tree clean."""
import inspect
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import typing

import pytest

import shield_nitro
from shield_nitro import (FormatError, IoError, Policy, RemoteError, ShieldNitroError, TrustRoot, UsageError,
                          VerificationError)
from shield_nitro import attestation, channel, credentials, errors, results, roots, shield, transport

PCR = bytes(range(48))
PACKAGE = pathlib.Path(shield_nitro.__file__).resolve().parent


def test_policy_converts_hex_and_lists():
    p = Policy(pcrs={0: PCR.hex(), 8: [PCR, PCR.hex().upper()], 3: bytearray(PCR)})
    assert p.pcrs == {0: PCR, 8: (PCR, PCR), 3: PCR}
    assert p.pinned and not Policy(pcrs={3: PCR}).pinned and Policy(pcrs={8: PCR}).pinned


@pytest.mark.parametrize("pcrs", [
    {32: PCR}, {-1: PCR}, {"0": PCR}, {True: PCR}, {0: PCR[:47]}, {0: PCR + b"\0"}, {0: "zz" * 48},
    {0: PCR.hex()[:-2]}, {0: []}, {0: [PCR, b"short"]}, {0: 7}, {0: None}, [(0, PCR)], "0=ab",
])
def test_policy_refuses_malformed_pcrs_when_built(pcrs):
    with pytest.raises(UsageError) as e:
        Policy(pcrs=pcrs)
    assert e.value.code == "usage" and isinstance(e.value, ValueError) and e.value.message.startswith("policy: ")


@pytest.mark.parametrize("fields", [
    {"nonce": "abc"}, {"user_data": 5}, {"public_key": [1]}, {"max_age_s": -1}, {"max_age_s": "300"},
    {"future_skew_s": None}, {"allow_debug": "yes"}, {"module_ids": "i-123"}, {"module_ids": [1]},
])
def test_policy_refuses_malformed_fields_when_built(fields):
    with pytest.raises(UsageError):
        Policy(**fields)


def test_policy_is_frozen_and_the_opt_out_is_explicit():
    p = Policy(pcrs={0: PCR})
    with pytest.raises(AttributeError):
        p.pcrs = {}
    assert not p.any_enclave and Policy.accept_any_enclave().any_enclave
    assert Policy.accept_any_enclave(max_age_s=None).max_age_s is None
    assert p.with_nonce(b"n").nonce == b"n" and p.with_nonce(b"n").pcrs == p.pcrs


def test_verify_refuses_wrong_argument_types():
    for call in (lambda: attestation.verify("doc"), lambda: attestation.verify(b"\x84", policy={}),
                 lambda: attestation.verify(b"\x84", root="root.pem"),
                 lambda: attestation.verify(b"\x84", Policy(), at_time="now")):
        with pytest.raises(UsageError):
            call()


def test_errors_are_one_family_with_a_subclass_per_kind():
    expected = {"usage": UsageError, "verify": VerificationError, "policy": VerificationError,
                "expired": VerificationError, "auth": VerificationError, "format": FormatError,
                "unsupported": FormatError, "io": IoError, "timeout": IoError, "environment": IoError,
                "not_found": RemoteError, "remote": RemoteError, "internal": RemoteError}
    assert set(expected) == set(errors.CODES)
    for code, cls in expected.items():
        e = ShieldNitroError(code, "why")
        assert type(e) is cls and isinstance(e, ShieldNitroError) and e.code == code
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is cls and (again.code, again.message) == (code, "why")
    odd = ShieldNitroError("teapot", "brewing")
    assert type(odd) is RemoteError and odd.code == "remote" and "teapot" in odd.message
    assert str(ShieldNitroError("format", "format: attest: x")) == "format: attest: x"
    assert errors.prefixed("attest", "attest: x") == "attest: x" and errors.prefixed("attest", "x") == "attest: x"


def test_file_errors_are_shield_nitro_errors(tmp_path):
    with pytest.raises(IoError) as e:
        TrustRoot.from_file(tmp_path / "missing.pem")
    assert e.value.code == "io" and "missing.pem" in e.value.message
    with pytest.raises(IoError):
        TrustRoot.from_file(tmp_path)   # a directory


PUBLIC_MODULES = (shield_nitro, attestation, channel, credentials, errors, results, roots, shield, transport,
                  shield_nitro.client)


def _public_callables():
    seen = set()
    for module in PUBLIC_MODULES:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__ or id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                yield f"{module.__name__}.{name}", obj
                for attr, member in vars(obj).items():
                    fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    fn = fn.fget if isinstance(fn, property) else fn
                    if inspect.isfunction(fn) and (not attr.startswith("_") or attr == "__init__"):
                        yield f"{module.__name__}.{name}.{attr}", fn


def test_every_public_callable_is_documented_and_typed():
    undocumented, untyped = [], []
    for name, obj in _public_callables():
        if inspect.isclass(obj):
            if not (obj.__doc__ or "").strip():
                undocumented.append(name)
            continue
        if not name.endswith("__init__") and not (obj.__doc__ or "").strip():
            undocumented.append(name)
        sig = inspect.signature(obj)
        params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
        if any(p.annotation is inspect.Parameter.empty for p in params) or \
                sig.return_annotation is inspect.Signature.empty:
            untyped.append(name)
        typing.get_type_hints(obj)   # every annotation resolves
    assert not undocumented, f"public callables without a docstring: {undocumented}"
    assert not untyped, f"public callables without full type hints: {untyped}"


def test_package_ships_py_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_pip_install_leaves_the_source_tree_clean(tmp_path):
    """`pip install ./python` builds outside the source tree (no build/ or *.egg-info there)."""
    if shutil.which("pip3") is None and subprocess.run([sys.executable, "-m", "pip", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.skip("pip is not installed")
    src = tmp_path / "python"
    shutil.copytree(PACKAGE.parent, src, ignore=shutil.ignore_patterns("__pycache__", "tests", "build", "*.egg-info"))
    before = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    target = tmp_path / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(src)],
                          capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    after = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    assert after == before
    assert (target / "shield_nitro" / "py.typed").is_file() and (target / "shield_nitro" / "results.py").is_file()


def test_unencodable_request_bodies_are_usage_errors():
    for call in (lambda: transport.encode_request(1, "encrypt", {"key": object()}),
                 lambda: transport.encode_request_body("invoke", {"input": object()}),
                 lambda: transport.encode_request_body("invoke", ["not", "a", "map"])):
        with pytest.raises(UsageError):
            call()
