"""Minimal ctypes shim over include/kvhygiene.h for the GPU tests.

Deliberately independent of bindings/python: it declares only what the GPU
tests call, with the header's exact struct layouts. KVH_LIB overrides the
library path (default build/libkvhygiene.so next to this repository).
"""
import ctypes
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

KVH_OK = 0
KVH_E_INVALID_ARG = 1
KVH_E_STATE = 7
KVH_E_UNSUPPORTED = 14
KVH_E_DEVICE = 15
KVH_DEVICE_CPU, KVH_DEVICE_CUDA = 0, 1
KVH_VERIFY_FULL = 3
KVH_SANITIZE_ASYNC = 0x1
KVH_SANITIZE_USE_STREAM = 0x8
KVH_RELEASE_ASYNC = 0x1
KVH_MAX_ID_LEN = 256

c_char_p, c_u32, c_i32, c_u64, c_i64, c_size = (ctypes.c_char_p, ctypes.c_uint32, ctypes.c_int32,
                                                 ctypes.c_uint64, ctypes.c_int64, ctypes.c_size_t)


class Config(ctypes.Structure):
    _fields_ = [("struct_size", c_u32), ("log_path", c_char_p),
                ("hmac_key", ctypes.POINTER(ctypes.c_uint8)), ("hmac_key_len", c_size),
                ("hmac_key_id", c_char_p), ("coverage_threshold", ctypes.c_double),
                ("max_log_bytes", c_u64), ("double_pass_default", c_i32),
                ("verify_samples_default", c_i32), ("verify_default", c_i32),
                ("default_max_reuse", c_i64), ("default_ttl_sec", ctypes.c_double),
                ("has_default_ttl", c_i32), ("ttl_mode", c_i32), ("sweep_interval_ms", c_u32),
                ("fsync_policy", c_i32), ("fsync_interval_ms", c_u32),
                ("checkpoint_dir", c_char_p), ("checkpoint_key_path", c_char_p),
                ("checkpoint_every_records", c_u32), ("checkpoint_every_ms", c_u32),
                ("metrics_tenant_labels", c_i32), ("retention", c_i32),
                ("retention_days", ctypes.c_double), ("max_rotated", c_i32),
                ("archive_dir", c_char_p), ("fs_state_path", c_char_p)]


class AllocDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_u32), ("flags", c_u32), ("ptr", c_u64), ("nbytes", c_u64),
                ("device", c_i32), ("device_ordinal", c_i32), ("stream", c_u64),
                ("tenant_id", c_char_p), ("request_id", c_char_p), ("model_id", c_char_p),
                ("framework", c_char_p), ("dtype", c_char_p),
                ("shape", ctypes.POINTER(c_i64)), ("shape_len", c_size),
                ("ttl_sec", ctypes.c_double), ("max_reuse", c_i64), ("stream_id", c_char_p)]


class SanitizeOpts(ctypes.Structure):
    _fields_ = [("struct_size", c_u32), ("flags", c_u32), ("verify", c_i32),
                ("samples", c_u32), ("stream", c_u64)]


class PoolRegion(ctypes.Structure):
    _fields_ = [("base", c_u64), ("block_stride", c_u64), ("block_bytes", c_u64)]


class PoolDesc(ctypes.Structure):
    _fields_ = [("struct_size", c_u32), ("device", c_i32), ("device_ordinal", c_i32),
                ("num_blocks", c_u32), ("stream", c_u64),
                ("regions", ctypes.POINTER(PoolRegion)), ("num_regions", c_size),
                ("model_id", c_char_p), ("name", c_char_p), ("verify", c_i32)]


class KvhError(Exception):
    def __init__(self, fn, status, msg):
        super().__init__(f"{fn}: {status}: {msg}")
        self.status = status
        self.msg = msg


class Lib:
    def __init__(self, path=None):
        path = path or os.environ.get("KVH_LIB") or os.path.join(ROOT, "build", "libkvhygiene.so")
        self.dll = ctypes.CDLL(path)
        d = self.dll
        d.kvh_last_error.restype = c_char_p
        d.kvh_status_str.restype = c_char_p
        d.kvh_status_str.argtypes = [c_i32]
        P = ctypes.POINTER
        sig = {
            "kvh_config_init": [P(Config), c_size],
            "kvh_tracer_open": [P(Config), P(ctypes.c_void_p)],
            "kvh_tracer_close": [ctypes.c_void_p],
            "kvh_allocate": [ctypes.c_void_p, P(AllocDesc), P(c_u64)],
            "kvh_sanitize": [ctypes.c_void_p, c_u64, P(SanitizeOpts), P(ctypes.c_double)],
            "kvh_wait": [ctypes.c_void_p, c_u64, P(ctypes.c_double)],
            "kvh_free": [ctypes.c_void_p, c_u64],
            "kvh_pool_register": [ctypes.c_void_p, P(PoolDesc), P(c_u64)],
            "kvh_pool_assign": [ctypes.c_void_p, c_u64, P(c_u32), c_size, c_char_p, c_char_p],
            "kvh_pool_release": [ctypes.c_void_p, c_u64, P(c_u32), c_size, c_u32, P(ctypes.c_double)],
            "kvh_pool_sync": [ctypes.c_void_p, c_u64, P(ctypes.c_double)],
            "kvh_pool_unregister": [ctypes.c_void_p, c_u64, c_i32],
        }
        for name, args in sig.items():
            f = getattr(d, name)
            f.argtypes = args
            f.restype = c_i32

    def call(self, name, *args):
        st = getattr(self.dll, name)(*args)
        if st != KVH_OK:
            raise KvhError(name, self.dll.kvh_status_str(st).decode(), self.dll.kvh_last_error().decode())
        return st

    def status_of(self, name, *args):
        """Returns (status, message) instead of raising."""
        st = getattr(self.dll, name)(*args)
        return st, (self.dll.kvh_last_error().decode() if st else "")


class Tracer:
    def __init__(self, lib, log_dir):
        self.lib = lib
        cfg = Config()
        cfg.struct_size = ctypes.sizeof(Config)
        lib.call("kvh_config_init", ctypes.byref(cfg), ctypes.sizeof(cfg))
        self._log = os.path.join(str(log_dir), "kv_cache.log").encode()
        cfg.log_path = self._log
        cfg.fsync_policy = 1  # none: tests, not durability
        self.h = ctypes.c_void_p()
        lib.call("kvh_tracer_open", ctypes.byref(cfg), ctypes.byref(self.h))

    def close(self):
        if self.h:
            self.lib.call("kvh_tracer_close", self.h)
            self.h = None

    def allocate_cuda(self, ptr, nbytes, stream=0, ordinal=0, tenant=b"tenant-a"):
        d = AllocDesc()
        d.struct_size = ctypes.sizeof(AllocDesc)
        d.ptr, d.nbytes, d.device, d.device_ordinal, d.stream = ptr, nbytes, KVH_DEVICE_CUDA, ordinal, stream
        d.tenant_id, d.request_id, d.model_id = tenant, b"req-1", b"model-x"
        h = c_u64()
        self.lib.call("kvh_allocate", self.h, ctypes.byref(d), ctypes.byref(h))
        return h.value

    def try_allocate_cuda(self, ptr, nbytes, stream=0, ordinal=0):
        d = AllocDesc()
        d.struct_size = ctypes.sizeof(AllocDesc)
        d.ptr, d.nbytes, d.device, d.device_ordinal, d.stream = ptr, nbytes, KVH_DEVICE_CUDA, ordinal, stream
        d.tenant_id, d.request_id, d.model_id = b"t", b"r", b"m"
        h = c_u64()
        return self.lib.status_of("kvh_allocate", self.h, ctypes.byref(d), ctypes.byref(h))

    def sanitize(self, handle, asynchronous=False, stream=None):
        o = SanitizeOpts()
        o.struct_size = ctypes.sizeof(SanitizeOpts)
        o.verify = KVH_VERIFY_FULL
        if asynchronous:
            o.flags |= KVH_SANITIZE_ASYNC
        if stream is not None:
            o.flags |= KVH_SANITIZE_USE_STREAM
            o.stream = stream
        cov = ctypes.c_double()
        self.lib.call("kvh_sanitize", self.h, handle, ctypes.byref(o), ctypes.byref(cov))
        return cov.value

    def try_sanitize(self, handle, stream=None):
        o = SanitizeOpts()
        o.struct_size = ctypes.sizeof(SanitizeOpts)
        o.verify = KVH_VERIFY_FULL
        if stream is not None:
            o.flags |= KVH_SANITIZE_USE_STREAM
            o.stream = stream
        cov = ctypes.c_double()
        return self.lib.status_of("kvh_sanitize", self.h, handle, ctypes.byref(o), ctypes.byref(cov))

    def wait(self, handle):
        cov = ctypes.c_double()
        self.lib.call("kvh_wait", self.h, handle, ctypes.byref(cov))
        return cov.value

    def free(self, handle):
        self.lib.call("kvh_free", self.h, handle)

    def pool_register(self, regions, num_blocks, stream=0, ordinal=0):
        arr = (PoolRegion * len(regions))(*[PoolRegion(*r) for r in regions])
        d = PoolDesc()
        d.struct_size = ctypes.sizeof(PoolDesc)
        d.device, d.device_ordinal, d.num_blocks, d.stream = KVH_DEVICE_CUDA, ordinal, num_blocks, stream
        d.regions, d.num_regions = arr, len(regions)
        d.model_id, d.name, d.verify = b"model-x", b"kv", KVH_VERIFY_FULL
        h = c_u64()
        self.lib.call("kvh_pool_register", self.h, ctypes.byref(d), ctypes.byref(h))
        return h.value

    def pool_assign(self, pool, blocks, tenant=b"tenant-a", request=b"req-1"):
        arr = (c_u32 * len(blocks))(*blocks)
        self.lib.call("kvh_pool_assign", self.h, pool, arr, len(blocks), tenant, request)

    def pool_release(self, pool, blocks, asynchronous=False):
        arr = (c_u32 * len(blocks))(*blocks)
        cov = ctypes.c_double()
        self.lib.call("kvh_pool_release", self.h, pool, arr, len(blocks),
                      KVH_RELEASE_ASYNC if asynchronous else 0, ctypes.byref(cov))
        return cov.value

    def pool_sync(self, pool):
        cov = ctypes.c_double()
        self.lib.call("kvh_pool_sync", self.h, pool, ctypes.byref(cov))
        return cov.value

    def pool_unregister(self, pool, force=False):
        self.lib.call("kvh_pool_unregister", self.h, pool, 1 if force else 0)


class CudaDriver:
    """Just enough of libcuda through ctypes to allocate and copy without torch."""

    def __init__(self, path=None):
        self.cu = ctypes.CDLL(path or os.environ.get("KVH_LIBCUDA") or "libcuda.so.1")
        self._check("cuInit", self.cu.cuInit(0))
        self.ctx = ctypes.c_void_p()
        self._check("cuDevicePrimaryCtxRetain", self.cu.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), 0))
        self._check("cuCtxPushCurrent", self.cu.cuCtxPushCurrent_v2(self.ctx))

    def _check(self, what, r):
        if r != 0:
            raise RuntimeError(f"{what} failed: CUresult {r}")

    def alloc(self, n):
        p = ctypes.c_uint64()
        self._check("cuMemAlloc", self.cu.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(n)))
        return p.value

    def free(self, p):
        self._check("cuMemFree", self.cu.cuMemFree_v2(ctypes.c_uint64(p)))

    def upload(self, p, data: bytes):
        self._check("cuMemcpyHtoD", self.cu.cuMemcpyHtoD_v2(ctypes.c_uint64(p), data, ctypes.c_size_t(len(data))))

    def download(self, p, n):
        buf = ctypes.create_string_buffer(n)
        self._check("cuMemcpyDtoH", self.cu.cuMemcpyDtoH_v2(buf, ctypes.c_uint64(p), ctypes.c_size_t(n)))
        return buf.raw
