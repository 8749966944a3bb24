"""The installed package bundles the library and its type marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import kvhygiene

PKG = Path(kvhygiene.__file__).parent


@pytest.mark.skipif(
    os.environ.get("KVH_EXPECT_BUNDLED") != "1",
    reason="KVH_EXPECT_BUNDLED=1 not set (set by `make test-python` after pip install)",
)
def test_library_is_bundled_and_used() -> None:
    bundled = PKG / "libkvhygiene.so.1"
    assert bundled.is_file()
    assert "KVH_LIBRARY" not in os.environ
    kvhygiene.load()
    assert Path(kvhygiene.library_path()).resolve() == bundled.resolve()


def test_py_typed_is_shipped() -> None:
    assert (PKG / "py.typed").is_file()
