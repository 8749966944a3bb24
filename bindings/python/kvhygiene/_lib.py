"""Loading libkvhygiene and declaring its C ABI (include/kvhygiene.h) for ctypes.

Search order (the first that exists is used; see :func:`library_candidates`):

1. ``$KVH_LIBRARY`` — an explicit path. When set, it is the only candidate,
   so a typo never silently loads some other copy.
2. The copy bundled in this package directory (``libkvhygiene.so.1`` /
   ``libkvhygiene.so``), put there by ``pip install``.
3. The system loader: ``ctypes.util.find_library("kvhygiene")`` and then
   ``libkvhygiene.so.1`` (``LD_LIBRARY_PATH``, ldconfig cache).

The library contains a Go runtime: it is loaded once per process and never
unloaded. Right after loading, its major version is compared with
:data:`ABI_MAJOR`; a different major raises :class:`VersionMismatchError`.

Every function returning ``kvh_status`` gets the same ``errcheck``: a non-OK
status becomes the matching :class:`KvhError` subclass carrying the status,
``kvh_last_error()`` and the handle the call named (:func:`status_error`).

The four calls of a buffer's lifecycle also exist without ``errcheck``
(:func:`hot`): ctypes runs ``errcheck`` as a Python call after every C call,
a fifth to a quarter of what such a call costs from Python. Their callers
test the returned status and pass a non-zero one to :func:`status_error`,
so the conversion to an exception stays in one place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple, cast

from . import _errors
from ._errors import LibraryNotFoundError, VersionMismatchError

ABI_MAJOR = 1
KVH_MAX_ID_LEN = 256

# enums / flags (include/kvhygiene.h)
KVH_DEVICE_CPU = 0
KVH_DEVICE_CUDA = 1

KVH_STATE_ALLOCATED = 0
KVH_STATE_BOUND = 1
KVH_STATE_IN_USE = 2
KVH_STATE_SANITIZING = 3
KVH_STATE_SANITIZED = 4
KVH_STATE_FREED = 5
KVH_STATE_QUARANTINED = 6
STATE_NAMES = {
    KVH_STATE_ALLOCATED: "allocated",
    KVH_STATE_BOUND: "bound",
    KVH_STATE_IN_USE: "in_use",
    KVH_STATE_SANITIZING: "sanitizing",
    KVH_STATE_SANITIZED: "sanitized",
    KVH_STATE_FREED: "freed",
    KVH_STATE_QUARANTINED: "quarantined",
}

KVH_VERIFY_DEFAULT = 0
KVH_VERIFY_NONE = 1
KVH_VERIFY_SAMPLED = 2
KVH_VERIFY_FULL = 3

KVH_TTL_FROM_ALLOC = 0
KVH_TTL_FROM_LAST_USE = 1

KVH_FSYNC_INTERVAL = 0
KVH_FSYNC_NONE = 1
KVH_FSYNC_ALWAYS = 2

KVH_SANITIZE_ASYNC = 0x1
KVH_SANITIZE_DOUBLE_PASS = 0x2
KVH_SANITIZE_NO_DOUBLE_PASS = 0x4
KVH_SANITIZE_USE_STREAM = 0x8

KVH_RELEASE_ASYNC = 0x1
KVH_LOGVERIFY_ALL = 0x1

KVH_ALLOC_HAS_TTL = 0x1
KVH_ALLOC_HAS_MAX_REUSE = 0x2
KVH_ALLOC_PINNED = 0x4

_c_status = ctypes.c_int32
_u8p = ctypes.POINTER(ctypes.c_uint8)


class kvh_config(ctypes.Structure):
    """Mirror of ``struct kvh_config``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("log_path", ctypes.c_char_p),
        ("hmac_key", ctypes.c_char_p),  # const uint8_t*; bytes may contain NUL (length below)
        ("hmac_key_len", ctypes.c_size_t),
        ("hmac_key_id", ctypes.c_char_p),
        ("coverage_threshold", ctypes.c_double),
        ("max_log_bytes", ctypes.c_uint64),
        ("double_pass_default", ctypes.c_int32),
        ("verify_samples_default", ctypes.c_int32),
        ("verify_default", ctypes.c_int32),
        ("default_max_reuse", ctypes.c_int64),
        ("default_ttl_sec", ctypes.c_double),
        ("has_default_ttl", ctypes.c_int32),
        ("ttl_mode", ctypes.c_int32),
        ("sweep_interval_ms", ctypes.c_uint32),
        ("fsync_policy", ctypes.c_int32),
        ("fsync_interval_ms", ctypes.c_uint32),
        ("checkpoint_dir", ctypes.c_char_p),
        ("checkpoint_key_path", ctypes.c_char_p),
        ("checkpoint_every_records", ctypes.c_uint32),
        ("checkpoint_every_ms", ctypes.c_uint32),
        ("metrics_tenant_labels", ctypes.c_int32),
        ("retention", ctypes.c_int32),
        ("retention_days", ctypes.c_double),
        ("max_rotated", ctypes.c_int32),
        ("archive_dir", ctypes.c_char_p),
        ("fs_state_path", ctypes.c_char_p),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_config)


class kvh_alloc_desc(ctypes.Structure):
    """Mirror of ``struct kvh_alloc_desc``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("ptr", ctypes.c_uint64),
        ("nbytes", ctypes.c_uint64),
        ("device", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("stream", ctypes.c_uint64),
        ("tenant_id", ctypes.c_char_p),
        ("request_id", ctypes.c_char_p),
        ("model_id", ctypes.c_char_p),
        ("framework", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("shape_len", ctypes.c_size_t),
        ("ttl_sec", ctypes.c_double),
        ("max_reuse", ctypes.c_int64),
        ("stream_id", ctypes.c_char_p),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_alloc_desc)


class kvh_sanitize_opts(ctypes.Structure):
    """Mirror of ``struct kvh_sanitize_opts``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("verify", ctypes.c_int32),
        ("samples", ctypes.c_uint32),
        ("stream", ctypes.c_uint64),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_sanitize_opts)


_ID = KVH_MAX_ID_LEN + 1


class kvh_buffer_info(ctypes.Structure):
    """Mirror of ``struct kvh_buffer_info``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("state", ctypes.c_int32),
        ("ptr", ctypes.c_uint64),
        ("nbytes", ctypes.c_uint64),
        ("device", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("stream", ctypes.c_uint64),
        ("coverage_pct", ctypes.c_double),
        ("reuse_count", ctypes.c_int64),
        ("max_reuse", ctypes.c_int64),
        ("library_owned", ctypes.c_int32),
        ("locked", ctypes.c_int32),
        ("tenant_id", ctypes.c_char * _ID),
        ("request_id", ctypes.c_char * _ID),
        ("model_id", ctypes.c_char * _ID),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_buffer_info)


class kvh_pool_region(ctypes.Structure):
    """Mirror of ``struct kvh_pool_region`` (no struct_size: an array element)."""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("block_stride", ctypes.c_uint64),
        ("block_bytes", ctypes.c_uint64),
    ]


class kvh_pool_desc(ctypes.Structure):
    """Mirror of ``struct kvh_pool_desc``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device", ctypes.c_int32),
        ("device_ordinal", ctypes.c_int32),
        ("num_blocks", ctypes.c_uint32),
        ("stream", ctypes.c_uint64),
        ("regions", ctypes.POINTER(kvh_pool_region)),
        ("num_regions", ctypes.c_size_t),
        ("model_id", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("verify", ctypes.c_int32),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_pool_desc)


class kvh_verify_opts(ctypes.Structure):
    """Mirror of ``struct kvh_verify_opts``."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("hmac_key", ctypes.c_char_p),  # const uint8_t*
        ("hmac_key_len", ctypes.c_size_t),
        ("checkpoint_dir", ctypes.c_char_p),
        ("public_key", ctypes.c_char_p),
        ("fs_verify_key", ctypes.c_char_p),
        ("fs_now_unix", ctypes.c_int64),
    ]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.struct_size = ctypes.sizeof(kvh_verify_opts)


_tracer_p = ctypes.c_void_p  # kvh_tracer* (opaque)
_u64 = ctypes.c_uint64
_u64p = ctypes.POINTER(ctypes.c_uint64)
_u32p = ctypes.POINTER(ctypes.c_uint32)
_dblp = ctypes.POINTER(ctypes.c_double)
_szp = ctypes.POINTER(ctypes.c_size_t)
_cp = ctypes.c_char_p

# (name, argtypes, index of the handle argument or None). All return kvh_status.
_STATUS_FUNCS: List[Tuple[str, List[Any], Optional[int]]] = [
    ("kvh_config_init", [ctypes.POINTER(kvh_config), ctypes.c_size_t], None),
    ("kvh_tracer_open", [ctypes.POINTER(kvh_config), ctypes.POINTER(_tracer_p)], None),
    ("kvh_tracer_close", [_tracer_p], None),
    ("kvh_allocate", [_tracer_p, ctypes.POINTER(kvh_alloc_desc), _u64p], None),
    ("kvh_bind", [_tracer_p, _u64, _cp, _cp], 1),
    ("kvh_mark_in_use", [_tracer_p, _u64, _cp], 1),
    ("kvh_mark_reuse", [_tracer_p, _u64, _cp], 1),
    ("kvh_sanitize_opts_init", [ctypes.POINTER(kvh_sanitize_opts), ctypes.c_size_t], None),
    ("kvh_sanitize", [_tracer_p, _u64, ctypes.POINTER(kvh_sanitize_opts), _dblp], 1),
    (
        "kvh_sanitize_many",
        [_tracer_p, _u64p, ctypes.c_size_t, ctypes.POINTER(kvh_sanitize_opts), _dblp],
        None,
    ),
    ("kvh_wait", [_tracer_p, _u64, _dblp], 1),
    ("kvh_attest_coverage", [_tracer_p, _u64, _dblp], 1),
    ("kvh_quarantine", [_tracer_p, _u64, _cp], 1),
    ("kvh_release_quarantine", [_tracer_p, _u64, _cp], 1),
    ("kvh_free", [_tracer_p, _u64], 1),
    ("kvh_buffer_info_get", [_tracer_p, _u64, ctypes.POINTER(kvh_buffer_info)], 1),
    ("kvh_pool_register", [_tracer_p, ctypes.POINTER(kvh_pool_desc), _u64p], None),
    ("kvh_pool_assign", [_tracer_p, _u64, _u32p, ctypes.c_size_t, _cp, _cp], 1),
    ("kvh_pool_release", [_tracer_p, _u64, _u32p, ctypes.c_size_t, ctypes.c_uint32, _dblp], 1),
    ("kvh_pool_release_quarantine", [_tracer_p, _u64, _u32p, ctypes.c_size_t, _cp, _dblp], 1),
    ("kvh_pool_sync", [_tracer_p, _u64, _dblp], 1),
    ("kvh_pool_unregister", [_tracer_p, _u64, ctypes.c_int32], 1),
    ("kvh_metrics_json", [_tracer_p, ctypes.c_char_p, ctypes.c_size_t, _szp], None),
    ("kvh_export_metrics", [_tracer_p, _cp], None),
    ("kvh_export_prometheus", [_tracer_p, _cp], None),
    ("kvh_metrics_serve", [_tracer_p, _cp, ctypes.c_char_p, ctypes.c_size_t], None),
    ("kvh_metrics_stop", [_tracer_p], None),
    (
        "kvh_log_verify",
        [
            _cp,
            ctypes.POINTER(kvh_verify_opts),
            ctypes.POINTER(ctypes.c_int32),
            _u64p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            _szp,
        ],
        None,
    ),
    ("kvh_checkpoint", [_tracer_p], None),
    ("kvh_log_flush", [_tracer_p], None),
]

# Functions that do not return kvh_status.
_PLAIN_FUNCS: List[Tuple[str, Any, List[Any]]] = [
    ("kvh_status_str", ctypes.c_char_p, [_c_status]),
    ("kvh_last_error", ctypes.c_char_p, []),
    ("kvh_version", ctypes.c_char_p, []),
    ("kvh_version_number", ctypes.c_uint32, []),
]

ALL_FUNCTIONS = tuple(n for n, _, _ in _STATUS_FUNCS) + tuple(n for n, _, _ in _PLAIN_FUNCS)

_BUNDLED_NAMES = ("libkvhygiene.so.1", "libkvhygiene.so")


def library_candidates() -> List[str]:
    """The paths/names the loader tries, in order."""
    env = os.environ.get("KVH_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.path.join(here, n) for n in _BUNDLED_NAMES]
    found = ctypes.util.find_library("kvhygiene")
    if found:
        cands.append(found)
    cands.append("libkvhygiene.so.1")
    return cands


def _make_errcheck(name: str, handle_index: Optional[int]) -> Callable[..., int]:
    def _errcheck(result: int, func: Any, args: Sequence[Any]) -> int:
        if result != 0:
            handle = None
            if handle_index is not None and handle_index < len(args):
                handle = args[handle_index]
            raise status_error(result, name, handle)
        return result

    return _errcheck


def status_error(status: int, name: str, handle: Any = None) -> _errors.KvhError:
    """The exception for a non-OK ``status`` returned by ``name``: the matching
    :class:`KvhError` subclass with ``kvh_last_error()`` as its message. Call
    it right after the failing call, on the same thread: the last error is
    thread-local and the next ``kvh_*`` call may replace it."""
    raw = _LIB.kvh_last_error() if _LIB is not None else None
    message = raw.decode("utf-8", "replace") if raw else ""
    if not message:
        message = STATUS_NAME(status)
    return _errors.error_for_status(
        status, message, handle=None if handle is None else str(handle), function=name
    )


def STATUS_NAME(status: int) -> str:
    """Name of a status, from the library when it is loaded."""
    if _LIB is not None:
        s = _LIB.kvh_status_str(status)
        if s:
            return s.decode("ascii", "replace")
    return _errors.STATUS_NAMES.get(status, "KVH_E_UNKNOWN")


# The lifecycle calls that also get an errcheck-free twin (see the module doc).
HOT_FUNCS = ("kvh_allocate", "kvh_mark_in_use", "kvh_sanitize", "kvh_free")


class HotFuncs:
    """Errcheck-free twins of :data:`HOT_FUNCS`, the status returned as an
    int; a non-zero one must go to :func:`status_error`. Their argtypes are
    the declared ones with every ``POINTER(T)`` as ``c_void_p``: ctypes
    checks the type of a ``POINTER(T)`` argument on each call (~160 ns
    apiece, two per allocate and per sanitize), and the one caller,
    CacheTracer, passes ``byref`` of its own per-thread objects of the right
    types (``test_hot_twins_match_declared_functions`` checks the rest)."""

    __slots__ = HOT_FUNCS

    def __init__(self, lib: ctypes.CDLL) -> None:
        for name in HOT_FUNCS:
            declared = getattr(lib, name)
            fn = lib._FuncPtr((name, lib))  # a new object: the declared one keeps its errcheck
            fn.restype = declared.restype
            fn.argtypes = [_untyped(t) for t in declared.argtypes]
            setattr(self, name, fn)


def _untyped(t: Any) -> Any:
    """c_void_p for a POINTER(T) type (HotFuncs), t otherwise."""
    return ctypes.c_void_p if isinstance(t, type(ctypes.POINTER(ctypes.c_int))) else t


def _declare(lib: ctypes.CDLL) -> None:
    missing = [n for n in ALL_FUNCTIONS if not hasattr(lib, n)]
    if missing:
        raise LibraryNotFoundError(
            "libkvhygiene at %s lacks symbols: %s" % (getattr(lib, "_name", "?"), ", ".join(missing))
        )
    for name, restype, argtypes in _PLAIN_FUNCS:
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    for name, argtypes, hidx in _STATUS_FUNCS:
        fn = getattr(lib, name)
        fn.restype = _c_status
        fn.argtypes = argtypes
        fn.errcheck = _make_errcheck(name, hidx)


_LIB: Optional[ctypes.CDLL] = None
_LIB_PATH: Optional[str] = None
_HOT: Optional[HotFuncs] = None
_LOAD_LOCK = threading.Lock()


def load() -> ctypes.CDLL:
    """Load (once) and return the declared library."""
    global _LIB, _LIB_PATH, _HOT
    if _LIB is not None:
        return _LIB
    with _LOAD_LOCK:
        if _LIB is not None:
            return _LIB
        tried: List[str] = []
        lib = None
        path = None
        for cand in library_candidates():
            is_path = os.sep in cand
            if is_path and not os.path.exists(cand):
                tried.append(f"{cand} (not found)")
                continue
            try:
                lib = ctypes.CDLL(cand, mode=getattr(os, "RTLD_NOW", 2) | getattr(os, "RTLD_LOCAL", 0))
                path = cand
                break
            except OSError as e:
                tried.append(f"{cand} ({e})")
        if lib is None:
            hint = (
                "set KVH_LIBRARY to the path of libkvhygiene.so, build it with `make lib`, "
                "or reinstall the package (pip install ./bindings/python)"
            )
            raise LibraryNotFoundError(
                "kvhygiene: cannot load libkvhygiene; tried: " + "; ".join(tried) + ". " + hint
            )
        _declare(lib)
        num = int(lib.kvh_version_number())
        if num // 10000 != ABI_MAJOR:
            ver = lib.kvh_version().decode("ascii", "replace")
            raise VersionMismatchError(
                f"kvhygiene: {path} is libkvhygiene {ver} (major {num // 10000}); "
                f"these bindings need major {ABI_MAJOR}"
            )
        _HOT = HotFuncs(lib)
        _LIB = lib
        _LIB_PATH = path
        return lib


def hot() -> HotFuncs:
    """The errcheck-free lifecycle calls of the loaded library (loads it)."""
    load()
    return cast(HotFuncs, _HOT)  # load() sets it with _LIB


def library_path() -> Optional[str]:
    """Path/name the library was loaded from (None before loading)."""
    return _LIB_PATH


def version() -> str:
    """The loaded library's version string ("1.0.0")."""
    return load().kvh_version().decode("ascii")


def version_number() -> int:
    """The loaded library's MAJOR*10000+MINOR*100+PATCH."""
    return int(load().kvh_version_number())


def last_error() -> str:
    """kvh_last_error() for the calling thread."""
    return load().kvh_last_error().decode("utf-8", "replace")
