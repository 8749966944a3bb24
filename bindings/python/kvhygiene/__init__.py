"""kvhygiene — Python bindings (ctypes) for libkvhygiene.

A drop-in for the seed's ``tools.cache_tracer.CacheTracer`` and
``tools.forensic_logger.ForensicLogger`` whose work (zeroization,
verification, policy, forensic chain, metrics) happens in the C library.

    from kvhygiene import CacheTracer
    with CacheTracer("forensics/kv_cache.log") as tracer:
        h = tracer.allocate(tenant_id="t", request_id="r", model_id="m", shape=(1024,))
        tracer.array(h)[:] = 1.0      # zero-copy NumPy view
        tracer.mark_in_use(h)
        tracer.sanitize(h)            # -> 100.0
        tracer.free(h)

Never use the library in a process forked after it was loaded (calls raise
ForkedError); use the 'spawn' multiprocessing start method.
"""

from ._errors import (
    BufferTooSmallError,
    BusyError,
    ConfigError,
    DeviceError,
    FileSystemError,
    FreedHandleError,
    ForensicLogError,
    ForkedError,
    FreeWithoutSanitize,
    FreeWithoutSanitizeError,
    HygieneViolation,
    HygieneViolationError,
    InternalError,
    InvalidArgumentError,
    InvalidIdError,
    IsolationViolationError,
    KvhError,
    LibraryNotFoundError,
    OutOfMemoryError,
    PendingError,
    PoisonedError,
    PolicyViolationError,
    QuarantinedError,
    StateError,
    TracerClosedError,
    UnknownHandle,
    UnknownHandleError,
    UnsupportedError,
    VerificationError,
    VersionMismatchError,
)
from ._lib import library_path, load, version, version_number
from .forensic import ForensicLogger, log_verify
from .tracer import Buffer, BufferInfo, CacheTracer

__version__ = "1.0.0"

__all__ = [
    "Buffer",
    "BufferInfo",
    "BufferTooSmallError",
    "BusyError",
    "CacheTracer",
    "ConfigError",
    "DeviceError",
    "FileSystemError",
    "ForensicLogError",
    "ForensicLogger",
    "ForkedError",
    "FreeWithoutSanitize",
    "FreeWithoutSanitizeError",
    "FreedHandleError",
    "HygieneViolation",
    "HygieneViolationError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidIdError",
    "IsolationViolationError",
    "KvhError",
    "LibraryNotFoundError",
    "OutOfMemoryError",
    "PendingError",
    "PoisonedError",
    "PolicyViolationError",
    "QuarantinedError",
    "StateError",
    "TracerClosedError",
    "UnknownHandle",
    "UnknownHandleError",
    "UnsupportedError",
    "VerificationError",
    "VersionMismatchError",
    "library_path",
    "load",
    "log_verify",
    "version",
    "version_number",
]
