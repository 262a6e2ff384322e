"""PEP 517 backend shim: setuptools' own backend (and wheel), found offline.

pip builds in an isolated environment and would download setuptools into it. Offline (the
enclave host, CI without network) that fails, although Debian's python3-setuptools is
installed. This shim declares no build requirements and, when setuptools is not importable in
the isolated environment, adds the interpreter's own site directories to the path first.

setuptools also writes build/ and *.egg-info beside the sources it builds; the hooks below
build from a temporary copy instead, so `pip install ./python` leaves the checkout as it was.
"""
import contextlib
import os
import shutil
import sys
import tempfile


def _find_setuptools():
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401  (setuptools' bdist_wheel needs it)
        return
    except ImportError:
        pass
    import site
    import sysconfig
    extra = list(site.getsitepackages()) + [sysconfig.get_paths()["purelib"], "/usr/lib/python3/dist-packages"]
    base = getattr(sys, "base_prefix", sys.prefix)
    extra.append(sysconfig.get_paths(vars={"base": base, "platbase": base})["purelib"])
    for path in extra:
        if path not in sys.path:
            sys.path.append(path)


_find_setuptools()

from setuptools import build_meta as _setuptools  # noqa: E402
from setuptools.build_meta import *  # noqa: E402,F401,F403

_SCRATCH = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "tests", ".pytest_cache")


@contextlib.contextmanager
def _in_a_copy():
    """Runs the body in a throwaway copy of the source tree (the current directory)."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="shield-nitro-build-") as tmp:
        copy = os.path.join(tmp, "src")
        shutil.copytree(here, copy, ignore=_SCRATCH)
        os.chdir(copy)
        try:
            yield
        finally:
            os.chdir(here)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    out = os.path.abspath(wheel_directory)
    meta = os.path.abspath(metadata_directory) if metadata_directory else None
    with _in_a_copy():
        return _setuptools.build_wheel(out, config_settings, meta)


def build_sdist(sdist_directory, config_settings=None):
    out = os.path.abspath(sdist_directory)
    with _in_a_copy():
        return _setuptools.build_sdist(out, config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    out = os.path.abspath(metadata_directory)
    with _in_a_copy():
        return _setuptools.prepare_metadata_for_build_wheel(out, config_settings)


def _nothing_to_download(config_settings=None):
    return []


# setuptools would ask pip for "wheel", which pip would try to download.
get_requires_for_build_wheel = _nothing_to_download
get_requires_for_build_sdist = _nothing_to_download
get_requires_for_build_editable = _nothing_to_download
