"""CacheTracer: a drop-in for the seed's ``tools.cache_tracer.CacheTracer``
backed by libkvhygiene (see docs/python.md for every deliberate difference).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _arrays
from . import _lib as L
from ._errors import (
    KVH_E_CLOSED,
    KVH_E_INVALID_ARG,
    KVH_E_UNKNOWN_HANDLE,
    KVH_E_UNSUPPORTED,
    BufferTooSmallError,
    InvalidArgumentError,
    KvhError,
    TracerClosedError,
    UnknownHandleError,
    UnsupportedError,
)
from .forensic import ForensicLogger

Handle = Union[str, int]

_VERIFY_MODES = {
    "default": L.KVH_VERIFY_DEFAULT,
    "none": L.KVH_VERIFY_NONE,
    "sampled": L.KVH_VERIFY_SAMPLED,
    "full": L.KVH_VERIFY_FULL,
}
_TTL_MODES = {"alloc": L.KVH_TTL_FROM_ALLOC, "last_use": L.KVH_TTL_FROM_LAST_USE}
_FSYNC = {"interval": L.KVH_FSYNC_INTERVAL, "none": L.KVH_FSYNC_NONE, "always": L.KVH_FSYNC_ALWAYS}


def _b(s: Optional[str], what: str) -> Optional[bytes]:
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        s = str(s)
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(
            f"{what} is not encodable as UTF-8: {e}", status=KVH_E_INVALID_ARG
        ) from None


_U64 = 1 << 64

# Parsed handle strings (a pure memo: the same string always means the same
# integer, so entries never go stale). Bounded; allocate/track add theirs.
_hmemo: Dict[str, int] = {}
_HMEMO_MAX = 4096


def _remember(h: int) -> str:
    s = str(h)
    if len(_hmemo) >= _HMEMO_MAX:
        _hmemo.clear()
    _hmemo[s] = h
    return s


def _handle_int(handle: Handle) -> int:
    if type(handle) is str:
        h = _hmemo.get(handle)
        if h is not None:
            return h
    try:
        h = int(handle) if type(handle) is not bool else -1  # str (ours), or int
    except (TypeError, ValueError):
        raise UnknownHandleError(
            f"unknown handle {handle!r} (kvhygiene handles are decimal uint64 strings)",
            status=KVH_E_UNKNOWN_HANDLE,
            handle=str(handle),
        ) from None
    if 0 < h < _U64 and (type(handle) is str or type(handle) is int):
        return h
    raise UnknownHandleError(
        f"unknown handle {handle!r} (not a uint64 handle issued by kvhygiene)",
        status=KVH_E_UNKNOWN_HANDLE,
        handle=str(handle),
    )


@dataclass
class BufferInfo:
    """What ``kvh_buffer_info_get`` reports about a buffer."""

    handle: str
    state: str
    ptr: int
    nbytes: int
    device: str
    stream: int
    coverage_pct: float
    reuse_count: int
    max_reuse: int
    library_owned: bool
    locked: bool
    tenant_id: str
    request_id: str
    model_id: str


# What CacheTracer keeps per live handle: (obj, shape, dtype). obj keeps a
# tracked array/tensor alive (None for library-owned memory); shape and dtype
# are what array() views the memory as. A plain tuple: it is built on every
# allocate, and a class instance costs four times as much.
_Entry = Tuple[Any, Any, str]


class _ThreadState:
    """Per-thread reusable ctypes objects for the hot paths (the library
    copies what it keeps, so reusing them call after call is safe)."""

    __slots__ = ("desc", "pdesc", "out", "pout", "cov", "pcov", "last")

    def __init__(self) -> None:
        self.desc = L.kvh_alloc_desc()
        self.pdesc = ctypes.byref(self.desc)
        self.out = ctypes.c_uint64()
        self.pout = ctypes.byref(self.out)
        self.cov = ctypes.c_double()
        self.pcov = ctypes.byref(self.cov)
        # last tenant, request, model, framework, dtype, shape, stream_id
        # objects set in desc, then its ptr, nbytes, device, ordinal,
        # stream and flags
        self.last: List[Any] = [None] * 7 + [0] * 6


class Buffer:
    """A buffer allocated by :meth:`CacheTracer.buffer` (context manager)."""

    def __init__(self, tracer: "CacheTracer", handle: str) -> None:
        self.tracer = tracer
        self.handle = handle

    @property
    def array(self) -> Any:
        """Zero-copy NumPy view (valid until the context exits)."""
        return self.tracer.array(self.handle)

    def info(self) -> BufferInfo:
        return self.tracer.info(self.handle)

    def __repr__(self) -> str:
        return f"Buffer(handle={self.handle!r})"


class CacheTracer:
    """Tracer and enforcer for KV-cache buffers (seed-compatible API).

    Keyword arguments left as ``None`` take the seed's environment variables
    (``KV_COVERAGE_THRESHOLD``, ``KV_DOUBLE_PASS_DEFAULT``,
    ``KV_VERIFY_SAMPLES_DEFAULT``, ``KV_DEFAULT_MAX_REUSE``,
    ``KV_DEFAULT_TTL_SEC``, ``FORENSIC_HMAC_SECRET``) and otherwise the seed's
    defaults (99.9, False, 8, 0, no TTL). Explicit arguments win over the
    environment (the seed did the opposite).

    Extensions: ``hmac_secret``, ``hmac_key_id``, ``verify_default``
    ("full" | "sampled" | "none"), ``ttl_mode`` ("alloc" | "last_use"),
    ``sweep_interval_ms``, ``fsync`` ("interval" | "none" | "always"),
    ``checkpoint_dir`` / ``checkpoint_key_path``; retention of rotated log files by
    the tracer itself (it holds the log's lock): ``retention_days`` (age limit),
    ``max_rotated`` (count limit, 0 = keep none) and ``archive_dir`` — each removal
    is declared by a ``prune`` record first. ``fs_state_path``: the forward-secure
    MAC's state file from ``kvgate fs-keygen`` (exclusive with ``hmac_secret``):
    each epoch's key is overwritten by the next and every epoch is sealed.

    Use as a context manager or call :meth:`close`.
    """

    COVERAGE_THRESHOLD: float = 99.9

    def __init__(
        self,
        log_path: Union[str, "os.PathLike[str]"] = "forensics/kv_cache.log",
        *,
        coverage_threshold: Optional[float] = None,
        max_log_bytes: int = 5_000_000,
        double_pass_default: Optional[bool] = None,
        verify_samples_default: Optional[int] = None,
        default_max_reuse: Optional[int] = None,
        default_ttl_sec: Optional[float] = None,
        hmac_secret: Optional[bytes] = None,
        hmac_key_id: Optional[str] = None,
        verify_default: str = "full",
        ttl_mode: str = "alloc",
        sweep_interval_ms: Optional[int] = None,
        fsync: Optional[str] = None,
        checkpoint_dir: Optional[str] = None,
        checkpoint_key_path: Optional[str] = None,
        retention_days: Optional[float] = None,
        max_rotated: Optional[int] = None,
        archive_dir: Optional[str] = None,
        fs_state_path: Optional[str] = None,
    ) -> None:
        self._t: Optional[int] = None  # set last, so __del__ after a failed __init__ is a no-op
        self._pid = os.getpid()
        self._entries: Dict[int, _Entry] = {}
        self._streams: Dict[int, int] = {}  # stream override from bind/mark_in_use (rare)
        self._close_lock = threading.Lock()
        self._tls = threading.local()
        self._shapes: Dict[Any, Any] = {}
        self._dims: Dict[Any, Any] = {}
        lib = L.load()
        self._lib = lib
        self._hot = L.hot()  # allocate/mark_in_use/sanitize/free without errcheck
        log_path = os.fspath(log_path)
        parent = os.path.dirname(os.path.abspath(log_path))
        os.makedirs(parent, exist_ok=True)

        cfg = L.kvh_config()
        lib.kvh_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg))  # env defaults; KVH_E_CONFIG names a bad variable
        keep: List[Any] = []  # bytes referenced by cfg for the duration of open

        def setstr(field: str, val: Optional[str]) -> None:
            if val is not None:
                b = _b(val, field)
                keep.append(b)
                setattr(cfg, field, b)

        setstr("log_path", log_path)
        if coverage_threshold is not None:
            cfg.coverage_threshold = float(coverage_threshold)
        if max_log_bytes is not None:
            if int(max_log_bytes) <= 0:
                raise InvalidArgumentError(
                    f"max_log_bytes must be > 0, got {max_log_bytes}", status=KVH_E_INVALID_ARG
                )
            cfg.max_log_bytes = int(max_log_bytes)
        if double_pass_default is not None:
            cfg.double_pass_default = 1 if double_pass_default else 0
        if verify_samples_default is not None:
            cfg.verify_samples_default = int(verify_samples_default)
        if default_max_reuse is not None:
            cfg.default_max_reuse = int(default_max_reuse)
        if default_ttl_sec is not None:
            cfg.default_ttl_sec = float(default_ttl_sec)
            cfg.has_default_ttl = 1
        if hmac_secret is not None:
            key = hmac_secret.encode("utf-8") if isinstance(hmac_secret, str) else bytes(hmac_secret)
            keep.append(key)
            cfg.hmac_key = key
            cfg.hmac_key_len = len(key)
        setstr("hmac_key_id", hmac_key_id)
        try:
            cfg.verify_default = _VERIFY_MODES[verify_default]
            cfg.ttl_mode = _TTL_MODES[ttl_mode]
            if fsync is not None:
                cfg.fsync_policy = _FSYNC[fsync]
        except KeyError as e:
            raise InvalidArgumentError(
                f"invalid option value {e.args[0]!r} (verify_default: {sorted(_VERIFY_MODES)}, "
                f"ttl_mode: {sorted(_TTL_MODES)}, fsync: {sorted(_FSYNC)})",
                status=KVH_E_INVALID_ARG,
            ) from None
        if sweep_interval_ms is not None:
            cfg.sweep_interval_ms = int(sweep_interval_ms)
        setstr("checkpoint_dir", checkpoint_dir)
        setstr("checkpoint_key_path", checkpoint_key_path)
        if fs_state_path is not None:
            setstr("fs_state_path", os.fspath(fs_state_path))
        if retention_days is not None or max_rotated is not None:
            cfg.retention = 1
            cfg.retention_days = float(retention_days or 0.0)
            cfg.max_rotated = -1 if max_rotated is None else int(max_rotated)
            setstr("archive_dir", archive_dir)
        elif archive_dir is not None:
            raise InvalidArgumentError(
                "archive_dir needs retention_days or max_rotated", status=KVH_E_INVALID_ARG
            )

        out = ctypes.c_void_p()
        lib.kvh_tracer_open(ctypes.byref(cfg), ctypes.byref(out))
        self.COVERAGE_THRESHOLD = float(cfg.coverage_threshold)
        self.log_path = log_path
        self.logger = ForensicLogger(log_path, hmac_secret=hmac_secret)
        self._t = out.value

    # ----- lifetime ---------------------------------------------------------------

    def _ts(self) -> _ThreadState:
        try:
            return self._tls.s  # type: ignore[no-any-return]
        except AttributeError:
            ts = self._tls.s = _ThreadState()
            return ts

    def _tp(self) -> int:
        t = self._t
        if t is None:
            raise TracerClosedError("tracer is closed", status=KVH_E_CLOSED)
        return t

    def _error(self, status: int, function: str, handle: Optional[int] = None) -> KvhError:
        """The exception for a failed errcheck-free call (L.hot()). The hot
        methods pass self._t without _tp(): on a closed tracer it is None, the
        library refuses the NULL tracer, and that failure is reported here as
        TracerClosedError."""
        if self._t is None:
            return TracerClosedError("tracer is closed", status=KVH_E_CLOSED, function=function)
        return L.status_error(status, function, handle)

    @property
    def closed(self) -> bool:
        return self._t is None

    def close(self) -> None:
        """Close the tracer (flush + fsync the log, unmap library-owned memory).

        Idempotent. Arrays returned by :meth:`array` for library-owned buffers
        become invalid. Must not race with other calls on this tracer.
        """
        with self._close_lock:
            t, self._t = self._t, None
            if t is None:
                return
            self._entries.clear()
            self._streams.clear()
            self._lib.kvh_tracer_close(t)

    def __enter__(self) -> "CacheTracer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_t", None) is not None and os.getpid() == self._pid:
                self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    # ----- allocation ---------------------------------------------------------------

    def allocate(
        self,
        *,
        tenant_id: str,
        request_id: str,
        model_id: str,
        shape: Sequence[int],
        dtype: Any = "float32",
        device: str = "cpu",
        framework: Optional[str] = None,
        stream_id: Optional[str] = None,
        pinned: bool = False,
        ttl_sec: Optional[float] = None,
        max_reuse: Optional[int] = None,
    ) -> str:
        """Allocate a buffer of ``prod(shape) * itemsize`` bytes and tag it.

        On CPU the memory is library-owned (mmap, guard pages, MADV_DONTDUMP,
        mlock where allowed); get a zero-copy NumPy view with :meth:`array`.
        On CUDA a torch tensor is allocated and tracked (torch required).
        Returns the handle as a decimal string.
        """
        t = self._t  # None once closed: the library refuses it, _error says closed
        try:
            dims, nelems = self._dims[shape]  # validated before (hashable shapes only)
        except (KeyError, TypeError):
            dims = _arrays.shape_tuple(shape)
            nelems = _arrays.prod(dims)
            try:
                if len(self._dims) > 1024:
                    self._dims.clear()
                self._dims[shape] = (dims, nelems)
            except TypeError:
                pass
        if device == "cpu":
            dev, ordinal = L.KVH_DEVICE_CPU, 0
        else:
            dev, ordinal = _arrays.parse_device(device)
        if dev != L.KVH_DEVICE_CPU:
            self._tp()  # closed: refuse before allocating a tensor
            torch = _arrays._torch_if_loaded()
            if torch is None:
                try:
                    import torch  # noqa: F811
                except ImportError:
                    raise UnsupportedError(
                        f"device {device!r} needs torch to allocate device memory "
                        "(torch is not installed); or register an existing tensor with track()",
                        status=KVH_E_UNSUPPORTED,
                    ) from None
            if isinstance(dtype, torch.dtype):
                tdt = dtype
            else:
                name = _arrays.dtype_info(dtype)[0]
                name = {"bf16": "bfloat16", "float": "float32", "half": "float16", "double": "float64"}.get(name, name)
                tdt = getattr(torch, name, None)
                if not isinstance(tdt, torch.dtype):
                    raise InvalidArgumentError(f"dtype {dtype!r} has no torch equivalent", status=KVH_E_INVALID_ARG)
            tensor = torch.zeros(dims, dtype=tdt, device=f"cuda:{ordinal}")
            h = self.track(
                tensor,
                tenant_id=tenant_id,
                request_id=request_id,
                model_id=model_id,
                framework=framework or "torch",
                stream_id=stream_id,
                pinned=pinned,
                ttl_sec=ttl_sec,
                max_reuse=max_reuse,
            )
            return h
        dtype_name, itemsize = _arrays.dtype_info(dtype)
        nbytes = nelems * itemsize
        h = self._allocate(
            t, 0, nbytes, dev, ordinal, 0, tenant_id, request_id, model_id,
            framework, dtype_name, dims, pinned, ttl_sec, max_reuse, stream_id,
        )
        self._entries[h] = (None, dims, dtype_name)
        return _remember(h)

    def track(
        self,
        obj: Any,
        *,
        tenant_id: str,
        request_id: str,
        model_id: str,
        framework: Optional[str] = None,
        stream_id: Optional[str] = None,
        pinned: bool = False,
        ttl_sec: Optional[float] = None,
        max_reuse: Optional[int] = None,
    ) -> str:
        """Register an existing C-contiguous NumPy array or contiguous torch
        tensor (CPU or CUDA). The tracer keeps a reference until free; the
        library writes zeros into it on sanitize and never frees it."""
        t = self._tp()
        r = _arrays.describe(obj)
        h = self._allocate(
            t, r.ptr if r.nbytes else 0, r.nbytes, r.device, r.ordinal, r.stream,
            tenant_id, request_id, model_id, framework or r.framework, r.dtype, r.shape,
            pinned, ttl_sec, max_reuse, stream_id,
        )
        self._entries[h] = (obj, r.shape, r.dtype)
        return _remember(h)

    def _allocate(
        self,
        t: int,
        ptr: int,
        nbytes: int,
        device: int,
        ordinal: int,
        stream: int,
        tenant_id: str,
        request_id: str,
        model_id: str,
        framework: Optional[str],
        dtype: str,
        shape: Sequence[int],
        pinned: bool,
        ttl_sec: Optional[float],
        max_reuse: Optional[int],
        stream_id: Optional[str] = None,
    ) -> int:
        ts = self._ts()
        d = ts.desc
        last = ts.last
        # Fields are set only when they change (a ctypes field store costs
        # about twice an int comparison); last[7:13] mirror them.
        if ptr != last[7]:
            d.ptr = last[7] = ptr
        if nbytes != last[8]:
            d.nbytes = last[8] = nbytes
        if device != last[9]:
            d.device = last[9] = device
        if ordinal != last[10]:
            d.device_ordinal = last[10] = ordinal
        if stream != last[11]:
            d.stream = last[11] = stream
        # Identifier strings are re-encoded only when they change (per thread).
        if tenant_id is not last[0]:
            d.tenant_id = _b(tenant_id, "tenant_id")
            last[0] = tenant_id
        if request_id is not last[1]:
            d.request_id = _b(request_id, "request_id")
            last[1] = request_id
        if model_id is not last[2]:
            d.model_id = _b(model_id, "model_id")
            last[2] = model_id
        if framework is not last[3]:
            d.framework = _b(framework, "framework")
            last[3] = framework
        if dtype is not last[4]:
            d.dtype = dtype.encode("utf-8")
            last[4] = dtype
        if shape is not last[5]:
            n = len(shape)
            if n:
                key = tuple(shape)
                arr = self._shapes.get(key)
                if arr is None:
                    if len(self._shapes) > 1024:
                        self._shapes.clear()
                    arr = self._shapes[key] = (ctypes.c_int64 * n)(*key)
                d.shape = arr
            else:
                d.shape = None
            d.shape_len = n
            last[5] = shape
        if stream_id is not last[6]:
            d.stream_id = _b(stream_id, "stream_id")
            last[6] = stream_id
        flags = 0
        if ttl_sec is not None:
            flags |= L.KVH_ALLOC_HAS_TTL
            d.ttl_sec = float(ttl_sec)
        if max_reuse is not None:
            flags |= L.KVH_ALLOC_HAS_MAX_REUSE
            d.max_reuse = int(max_reuse)
        if pinned:
            flags |= L.KVH_ALLOC_PINNED
        if flags != last[12]:
            d.flags = last[12] = flags
        st = self._hot.kvh_allocate(t, ts.pdesc, ts.pout)
        if st:
            raise self._error(st, "kvh_allocate")
        return ts.out.value

    @contextlib.contextmanager
    def buffer(
        self,
        *,
        tenant_id: str,
        request_id: str,
        model_id: str,
        shape: Sequence[int],
        dtype: Any = "float32",
        verify: bool = True,
        **kw: Any,
    ) -> Iterator[Buffer]:
        """Allocate a library-owned buffer for the ``with`` block; on exit it is
        sanitized (verified) and freed, also when the block raised. If sanitize
        or free fails, the buffer is quarantined and the error raised."""
        h = self.allocate(
            tenant_id=tenant_id,
            request_id=request_id,
            model_id=model_id,
            shape=shape,
            dtype=dtype,
            **kw,
        )
        buf = Buffer(self, h)
        try:
            yield buf
        finally:
            try:
                self.sanitize(h, verify=verify)
                self.free(h)
            except KvhError as e:
                # free() below threshold and verification failures already
                # quarantine; make sure every other failure does too.
                with contextlib.suppress(KvhError):
                    if self.info(h).state != "quarantined":
                        self.quarantine(h, reason=f"buffer_exit_failed:{e.status_name or 'error'}")
                raise

    # ----- lifecycle ----------------------------------------------------------------

    def bind(
        self,
        handle: Handle,
        *,
        stream_id: Optional[str] = None,
        stream: Any = None,
        tenant_id: Optional[str] = None,
    ) -> None:
        """allocated -> bound. ``stream`` (CUstream int or torch stream) is used
        for later device sanitize work; ``tenant_id`` (extension) checks binding."""
        t = self._tp()
        h = _handle_int(handle)
        self._lib.kvh_bind(t, h, _b(tenant_id, "tenant_id"), _b(stream_id, "stream_id"))
        self._set_stream(h, stream)

    def mark_in_use(self, handle: Handle, *, stream: Any = None, tenant_id: Optional[str] = None) -> None:
        """-> in_use (logs "write"). An expired TTL raises PolicyViolationError
        and quarantines (the seed quarantined silently)."""
        h = _handle_int(handle)
        st = self._hot.kvh_mark_in_use(self._t, h, None if tenant_id is None else _b(tenant_id, "tenant_id"))
        if st:
            raise self._error(st, "kvh_mark_in_use", h)
        if stream is not None:
            self._set_stream(h, stream)

    def mark_reuse(self, handle: Handle, *, tenant_id: Optional[str] = None) -> None:
        """Count a reuse; exceeding max_reuse raises PolicyViolationError and
        quarantines (the seed quarantined silently)."""
        t = self._tp()
        self._lib.kvh_mark_reuse(t, _handle_int(handle), _b(tenant_id, "tenant_id"))

    def _set_stream(self, h: int, stream: Any) -> None:
        if stream is None:
            return
        self._streams[h] = _arrays.stream_value(stream)

    def _opts(
        self,
        h: int,
        async_: bool,
        verify: bool,
        double_pass: Optional[bool],
        samples: Optional[int],
    ) -> Optional[L.kvh_sanitize_opts]:
        stream = self._streams.get(h)
        if not async_ and verify and double_pass is None and samples is None and stream is None:
            return None  # library defaults; saves building a struct
        o = L.kvh_sanitize_opts()
        flags = 0
        if async_:
            flags |= L.KVH_SANITIZE_ASYNC
        if double_pass is True:
            flags |= L.KVH_SANITIZE_DOUBLE_PASS
        elif double_pass is False:
            flags |= L.KVH_SANITIZE_NO_DOUBLE_PASS
        if stream is not None:
            flags |= L.KVH_SANITIZE_USE_STREAM
            o.stream = stream
        if not verify:
            o.verify = L.KVH_VERIFY_NONE
        elif samples is not None:
            if int(samples) <= 0:
                raise InvalidArgumentError(
                    f"samples must be > 0, got {samples}", status=KVH_E_INVALID_ARG, handle=str(h)
                )
            o.verify = L.KVH_VERIFY_SAMPLED
            o.samples = int(samples)
        else:
            o.verify = L.KVH_VERIFY_DEFAULT
        o.flags = flags
        return o

    def sanitize(
        self,
        handle: Handle,
        *,
        async_: bool = False,
        verify: bool = True,
        double_pass: Optional[bool] = None,
        samples: Optional[int] = None,
    ) -> float:
        """Zeroize, verify and attest; returns coverage percent.

        ``verify=True`` uses the tracer's verify_default (full read-back unless
        configured otherwise); ``samples=N`` selects sampled verification with
        N unpredictable positions; ``verify=False`` zeroizes without
        attesting (coverage 0, so free() will refuse). ``async_=True`` returns
        0.0 at once; complete with :meth:`wait`.
        """
        h = _handle_int(handle)
        defaults = not async_ and verify and double_pass is None and samples is None
        if defaults and (not self._streams or h not in self._streams):
            po = None  # library defaults: the common case, without a call to _opts
        else:
            o = self._opts(h, async_, verify, double_pass, samples)
            po = ctypes.byref(o) if o is not None else None
        ts = self._ts()
        st = self._hot.kvh_sanitize(self._t, h, po, ts.pcov)
        if st:
            raise self._error(st, "kvh_sanitize", h)
        return ts.cov.value

    def sanitize_many(
        self,
        handles: Sequence[Handle],
        *,
        async_: bool = False,
        verify: bool = True,
        double_pass: Optional[bool] = None,
        samples: Optional[int] = None,
    ) -> List[float]:
        """Sanitize many buffers in one library call; coverages in order.
        Every buffer is attempted; the first failure is raised afterwards."""
        t = self._tp()
        hs = [_handle_int(h) for h in handles]
        n = len(hs)
        if n == 0:
            return []
        arr = (ctypes.c_uint64 * n)(*hs)
        covs = (ctypes.c_double * n)()
        o = self._opts(0, async_, verify, double_pass, samples)
        self._lib.kvh_sanitize_many(t, arr, n, ctypes.byref(o) if o is not None else None, covs)
        return list(covs)

    def wait(self, handle: Handle, *, verify: bool = True, samples: Optional[int] = None) -> float:
        """Complete an async sanitize; returns attested coverage. The
        verification mode was fixed by :meth:`sanitize`; ``verify``/``samples``
        are accepted for seed compatibility only."""
        t = self._tp()
        ts = self._ts()
        self._lib.kvh_wait(t, _handle_int(handle), ts.pcov)
        return ts.cov.value

    def attest_coverage(self, handle: Handle) -> float:
        """Last attested coverage in percent (0.0 if never sanitized)."""
        t = self._tp()
        ts = self._ts()
        self._lib.kvh_attest_coverage(t, _handle_int(handle), ts.pcov)
        return ts.cov.value

    def quarantine(self, handle: Handle, *, reason: str) -> None:
        """Quarantine (sticky) and log the reason."""
        t = self._tp()
        self._lib.kvh_quarantine(t, _handle_int(handle), _b(reason, "reason"))

    def release_quarantine(self, handle: Handle, *, reason: str) -> None:
        """Leave quarantine; requires a passing verified sanitize after it."""
        t = self._tp()
        self._lib.kvh_release_quarantine(t, _handle_int(handle), _b(reason, "reason"))

    def free(self, handle: Handle) -> None:
        """Free a sanitized buffer whose coverage >= threshold. Otherwise the
        buffer is quarantined and FreeWithoutSanitizeError raised. A second
        free raises FreedHandleError (a subclass of UnknownHandleError)."""
        h = _handle_int(handle)
        st = self._hot.kvh_free(self._t, h)
        if st:
            raise self._error(st, "kvh_free", h)
        self._entries.pop(h, None)
        if self._streams:
            self._streams.pop(h, None)

    def info(self, handle: Handle) -> BufferInfo:
        """State, address, size, owner, coverage and reuse count of a buffer."""
        t = self._tp()
        h = _handle_int(handle)
        bi = L.kvh_buffer_info()
        self._lib.kvh_buffer_info_get(t, h, ctypes.byref(bi))
        return BufferInfo(
            handle=str(h),
            state=L.STATE_NAMES.get(bi.state, str(bi.state)),
            ptr=int(bi.ptr),
            nbytes=int(bi.nbytes),
            device="cpu" if bi.device == L.KVH_DEVICE_CPU else f"cuda:{bi.device_ordinal}",
            stream=int(bi.stream),
            coverage_pct=float(bi.coverage_pct),
            reuse_count=int(bi.reuse_count),
            max_reuse=int(bi.max_reuse),
            library_owned=bool(bi.library_owned),
            locked=bool(bi.locked),
            tenant_id=bi.tenant_id.decode("utf-8", "replace"),
            request_id=bi.request_id.decode("utf-8", "replace"),
            model_id=bi.model_id.decode("utf-8", "replace"),
        )

    def array(self, handle: Handle, *, dtype: Any = None, shape: Optional[Sequence[int]] = None) -> Any:
        """Zero-copy NumPy array over a CPU buffer's memory.

        For library-owned buffers the array aliases memory that is unmapped by
        :meth:`free` / :meth:`close`: using it afterwards is use-after-free (a
        crash — guard pages — not a silent read). For tracked arrays the
        original object is returned.
        """
        np = _arrays.numpy_or_none()
        if np is None:
            raise UnsupportedError("tracer.array() needs NumPy (not installed)", status=KVH_E_UNSUPPORTED)
        h = _handle_int(handle)
        obj, eshape, edtype = self._entries.get(h, (None, None, "uint8"))
        if obj is not None and dtype is None and shape is None:
            return obj
        bi = self.info(h)
        if bi.device != "cpu":
            raise UnsupportedError(
                f"buffer {h} is on {bi.device}; array() is for host memory (use the tensor)",
                status=KVH_E_UNSUPPORTED,
                handle=str(h),
            )
        dt = np.dtype(dtype if dtype is not None else edtype)
        shp = tuple(shape) if shape is not None else eshape
        if bi.nbytes == 0:
            return np.empty(shp if shp is not None else (0,), dtype=dt)
        raw = (ctypes.c_char * bi.nbytes).from_address(bi.ptr)
        a = np.frombuffer(raw, dtype=dt)
        return a.reshape(shp) if shp is not None else a

    # ----- metrics ------------------------------------------------------------------

    def get_metrics(self) -> Dict[str, Any]:
        """Seed-compatible metrics dict (kvh_metrics_json)."""
        t = self._tp()
        n = ctypes.c_size_t()
        cap = 4096
        for _ in range(4):
            buf = ctypes.create_string_buffer(cap)
            try:
                self._lib.kvh_metrics_json(t, buf, cap, ctypes.byref(n))
            except BufferTooSmallError:
                cap = int(n.value) + 1
                continue
            return json.loads(buf.value.decode("utf-8"))
        raise KvhError("kvh_metrics_json kept growing", function="kvh_metrics_json")

    def export_metrics(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the metrics JSON to path atomically (parent dirs created)."""
        t = self._tp()
        p = os.fspath(path)
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        self._lib.kvh_export_metrics(t, _b(p, "path"))

    def export_metrics_prometheus(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write Prometheus text format to path atomically (parent dirs created)."""
        t = self._tp()
        p = os.fspath(path)
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        self._lib.kvh_export_prometheus(t, _b(p, "path"))

    def serve_metrics(self, addr: Optional[str] = None) -> str:
        """Serve /metrics over HTTP (loopback unless addr names a host);
        returns the bound "host:port"."""
        t = self._tp()
        out = ctypes.create_string_buffer(256)
        self._lib.kvh_metrics_serve(t, _b(addr, "addr"), out, 256)
        return out.value.decode("utf-8")

    def stop_metrics(self) -> None:
        self._lib.kvh_metrics_stop(self._tp())

    # ----- log ----------------------------------------------------------------------

    def flush(self) -> None:
        """Flush and fsync every record appended so far."""
        self._lib.kvh_log_flush(self._tp())

    def checkpoint(self) -> None:
        """Write a signed checkpoint now (needs checkpoint_dir)."""
        self._lib.kvh_checkpoint(self._tp())
