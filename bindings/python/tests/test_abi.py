"""The ctypes declarations match include/kvhygiene.h and the loaded library."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kvhygiene
from kvhygiene import _lib as L
from kvhygiene._errors import STATUS_EXCEPTIONS, STATUS_NAMES

from conftest import HEADER, run_python

STRUCTS = {
    "kvh_config": L.kvh_config,
    "kvh_alloc_desc": L.kvh_alloc_desc,
    "kvh_sanitize_opts": L.kvh_sanitize_opts,
    "kvh_buffer_info": L.kvh_buffer_info,
    "kvh_pool_region": L.kvh_pool_region,
    "kvh_pool_desc": L.kvh_pool_desc,
    "kvh_verify_opts": L.kvh_verify_opts,
}


def _header() -> str:
    if not HEADER.exists():
        pytest.skip(f"missing {HEADER} (tests run from a kvhygiene checkout)")
    return HEADER.read_text()


def test_every_header_function_is_declared() -> None:
    names = set(re.findall(r"KVH_API\s+[^;(]*?\b(kvh_\w+)\s*\(", _header()))
    assert len(names) > 25
    assert names == set(L.ALL_FUNCTIONS)
    lib = kvhygiene.load()
    for n in names:
        fn = getattr(lib, n)
        assert fn.argtypes is not None, n
        assert fn.restype is not None, n


def test_every_status_has_an_exception_and_the_library_names_it() -> None:
    codes = {int(v) for v in re.findall(r"KVH_E_\w+\s*=\s*(\d+)", _header())}
    assert codes == set(STATUS_EXCEPTIONS)
    lib = kvhygiene.load()
    for c in codes:
        assert lib.kvh_status_str(c).decode() == STATUS_NAMES[c]
    assert lib.kvh_status_str(0).decode() == "KVH_OK"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) to compare struct layouts")
def test_struct_layouts_match_the_c_compiler(tmp_path: Path) -> None:
    _header()
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "kvhygiene.h"', "int main(void){"]
    for name, cls in STRUCTS.items():
        lines.append(f'printf("{name} size %zu\\n", sizeof({name}));')
        for fname, _ in cls._fields_:
            lines.append(f'printf("{name}.{fname} %zu\\n", offsetof({name}, {fname}));')
    lines.append("return 0;}")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-I", str(HEADER.parent), str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    got = dict(line.rsplit(" ", 1) for line in out.splitlines())
    for name, cls in STRUCTS.items():
        assert int(got[f"{name} size"]) == ctypes.sizeof(cls), name
        for fname, _ in cls._fields_:
            assert int(got[f"{name}.{fname}"]) == getattr(cls, fname).offset, f"{name}.{fname}"


def test_struct_size_is_preset() -> None:
    for name, cls in STRUCTS.items():
        if name == "kvh_pool_region":
            continue
        assert cls().struct_size == ctypes.sizeof(cls), name


def test_version_major_matches() -> None:
    num = kvhygiene.version_number()
    assert num // 10000 == L.ABI_MAJOR
    major, minor, patch = (int(x) for x in kvhygiene.version().split("."))
    assert num == major * 10000 + minor * 100 + patch
    assert kvhygiene.library_path()


def test_missing_library_error_names_the_path(tmp_path: Path) -> None:
    bogus = tmp_path / "nowhere" / "libkvhygiene.so"
    r = run_python(
        "import kvhygiene\n"
        "try:\n"
        "    kvhygiene.CacheTracer('x.log')\n"
        "except kvhygiene.LibraryNotFoundError as e:\n"
        "    print('ERR', e)\n",
        {"KVH_LIBRARY": str(bogus)},
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and str(bogus) in r.stdout and "KVH_LIBRARY" in r.stdout


def test_not_a_library_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "libkvhygiene.so"
    fake.write_bytes(b"not an ELF file")
    r = run_python(
        "import kvhygiene\n"
        "try:\n"
        "    kvhygiene.load()\n"
        "except kvhygiene.LibraryNotFoundError as e:\n"
        "    print('ERR', e)\n",
        {"KVH_LIBRARY": str(fake)},
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "ERR" in r.stdout and str(fake) in r.stdout


@pytest.mark.parametrize(
    "method", ["mark_in_use", "sanitize", "free", "attest_coverage"]
)  # the first three check the status inline (L.hot()), the last through errcheck
def test_errors_carry_status_message_and_handle(tracer: kvhygiene.CacheTracer, method: str) -> None:
    with pytest.raises(kvhygiene.UnknownHandleError) as ei:
        getattr(tracer, method)(str(0xDEAD_BEEF_0000_0001))
    e = ei.value
    assert e.status == 5 and e.status_name == "KVH_E_UNKNOWN_HANDLE"
    # the message is kvh_last_error(), read before any other call
    assert e.message.startswith(f"kvh_{method}: handle {0xDEAD_BEEF_0000_0001} "), e.message
    assert e.handle == str(0xDEAD_BEEF_0000_0001)
    assert e.function == "kvh_" + method
    assert isinstance(e, kvhygiene.KvhError)


def test_invalid_identifier_is_a_clear_error(tracer: kvhygiene.CacheTracer) -> None:
    with pytest.raises(kvhygiene.InvalidIdError) as ei:
        tracer.allocate(tenant_id='bad"tenant', request_id="r", model_id="m", shape=(8,))
    assert ei.value.status == 4
    with pytest.raises(kvhygiene.InvalidIdError):
        tracer.allocate(tenant_id="t" * 300, request_id="r", model_id="m", shape=(8,))


def test_hot_twins_match_declared_functions(tracer: kvhygiene.CacheTracer) -> None:
    """The errcheck-free twins CacheTracer's lifecycle calls use: same C
    functions, same restype, the declared argtypes with POINTER(T) as
    c_void_p, and a failure returned as a status instead of raised."""
    lib, hot = L.load(), L.hot()
    ptr_meta = type(ctypes.POINTER(ctypes.c_int))
    for name in L.HOT_FUNCS:
        declared, twin = getattr(lib, name), getattr(hot, name)
        assert twin is not declared and declared.errcheck is not None
        assert getattr(twin, "errcheck", None) is None, name
        assert twin.restype is declared.restype, name
        assert len(twin.argtypes) == len(declared.argtypes), name
        for d, t in zip(declared.argtypes, twin.argtypes):
            assert t is (ctypes.c_void_p if isinstance(d, ptr_meta) else d), (name, d, t)
        assert ctypes.cast(twin, ctypes.c_void_p).value == ctypes.cast(declared, ctypes.c_void_p).value
    cov = ctypes.c_double()
    st = hot.kvh_sanitize(tracer._t, 0xDEAD_BEEF_0000_0001, None, ctypes.byref(cov))
    assert st == 5, st  # KVH_E_UNKNOWN_HANDLE, returned, not raised
    assert "was not issued by this tracer" in L.last_error()
