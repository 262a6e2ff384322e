"""Shared test setup: import the package from the source tree, locate fixtures and the CLI.

ctest sets SN_FIXTURES_DIR and SN_CLI; run by hand, fixtures default to ../shared/fixtures
beside the repository and CLI-dependent tests are skipped.
"""
import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

REPO = HERE.parent.parent
FIXTURES = pathlib.Path(os.environ.get("SN_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES} (set SN_FIXTURES_DIR)")
    return FIXTURES


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("SN_CLI")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("the shield-nitro CLI is not available (SN_CLI unset): run through ctest")
    return path
