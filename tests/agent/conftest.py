"""Fixtures that build real package roots with the real tools (see tests/package_roots.py)."""

import types

import pytest
from package_roots import DebPackage, DpkgRoot, RpmPackage, RpmRoot, require_tools, run


@pytest.fixture
def dpkg_root(tmp_path):
    require_tools("dpkg", "dpkg-deb")
    return DpkgRoot(tmp_path / "root")


@pytest.fixture(scope="session")
def builders():
    """The builders above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return types.SimpleNamespace(DebPackage=DebPackage, DpkgRoot=DpkgRoot, RpmPackage=RpmPackage,
                                 RpmRoot=RpmRoot, require_tools=require_tools, run=run)
