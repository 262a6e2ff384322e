"""PEP 517 backend shim: setuptools' own backend (and wheel), found offline.

pip builds in an isolated environment and would download setuptools into it. Offline (the
enclave host, CI without network) that fails, although Debian's python3-setuptools is
installed. This shim declares no build requirements and, when setuptools is not importable in
the isolated environment, adds the interpreter's own site directories to the path first.
"""
import sys


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

from setuptools.build_meta import *  # noqa: E402,F401,F403


def _nothing_to_download(config_settings=None):
    return []


# setuptools would ask pip for "wheel", which pip would try to download.
get_requires_for_build_wheel = _nothing_to_download
get_requires_for_build_sdist = _nothing_to_download
get_requires_for_build_editable = _nothing_to_download
