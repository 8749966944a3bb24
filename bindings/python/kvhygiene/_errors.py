"""Exception hierarchy of the kvhygiene bindings.

Every non-OK ``kvh_status`` returned by the C library is turned into one of
these exceptions in exactly one place (``kvhygiene._lib._errcheck``). Each
exception carries the numeric ``status``, its name (``status_name``), the
library's ``kvh_last_error()`` message (``message``) and, where the failing
call named a buffer or pool, the ``handle``.

The seed's names (``HygieneViolationError``, ``UnknownHandleError``,
``FreeWithoutSanitizeError`` and the aliases ``HygieneViolation``,
``UnknownHandle``, ``FreeWithoutSanitize``) are kept with the same
inheritance, so ``except`` clauses written against the seed still work.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# Numeric values of kvh_status (include/kvhygiene.h). They never change.
KVH_OK = 0
KVH_E_INVALID_ARG = 1
KVH_E_NULL_ARG = 2
KVH_E_STRUCT_SIZE = 3
KVH_E_INVALID_ID = 4
KVH_E_UNKNOWN_HANDLE = 5
KVH_E_FREED = 6
KVH_E_STATE = 7
KVH_E_COVERAGE = 8
KVH_E_QUARANTINED = 9
KVH_E_ISOLATION = 10
KVH_E_POLICY = 11
KVH_E_VERIFY = 12
KVH_E_PENDING = 13
KVH_E_UNSUPPORTED = 14
KVH_E_DEVICE = 15
KVH_E_NOMEM = 16
KVH_E_IO = 17
KVH_E_LOG = 18
KVH_E_BUFFER_TOO_SMALL = 19
KVH_E_CLOSED = 20
KVH_E_FORKED = 21
KVH_E_POISONED = 22
KVH_E_INTERNAL = 23
KVH_E_CONFIG = 24
KVH_E_BUSY = 25

STATUS_NAMES: Dict[int, str] = {
    v: k
    for k, v in dict(globals()).items()
    if k.startswith("KVH_") and isinstance(v, int) and not isinstance(v, bool)
}


class KvhError(Exception):
    """Base class of every error raised for a failing kvhygiene call.

    Attributes:
        status: the numeric ``kvh_status`` (``KVH_E_*``), or None for errors
            detected in Python before reaching the library.
        status_name: e.g. ``"KVH_E_FREED"``.
        message: the library's ``kvh_last_error()`` text for the call.
        handle: the buffer/pool handle the call named (as ``str``), or None.
        function: the C function that failed (e.g. ``"kvh_free"``), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        handle: Optional[str] = None,
        function: Optional[str] = None,
    ) -> None:
        self.status = status
        self.status_name = STATUS_NAMES.get(status, "KVH_E_UNKNOWN") if status is not None else None
        self.message = message
        self.handle = handle
        self.function = function
        parts = []
        if function:
            parts.append(function)
        if self.status_name:
            parts.append(self.status_name)
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if handle is not None:
            text += f" (handle {handle})"
        super().__init__(text)


# --- seed-compatible names -------------------------------------------------


class HygieneViolationError(KvhError):
    """A hygiene policy was violated (seed name)."""


class UnknownHandleError(KvhError):
    """The handle was never issued by this tracer (``KVH_E_UNKNOWN_HANDLE``)."""


class FreeWithoutSanitizeError(HygieneViolationError):
    """free() refused: attested coverage below threshold; the buffer is now
    quarantined (``KVH_E_COVERAGE``)."""


# --- ours ----------------------------------------------------------------------


class FreedHandleError(UnknownHandleError):
    """The handle was already freed (``KVH_E_FREED``), e.g. a double free.

    Subclasses :class:`UnknownHandleError` because the seed documented that
    error as "unknown or freed handle".
    """


class InvalidArgumentError(KvhError, ValueError):
    """An argument is out of range, NULL or inconsistent (``KVH_E_INVALID_ARG``,
    ``KVH_E_NULL_ARG``, ``KVH_E_STRUCT_SIZE``)."""


class InvalidIdError(InvalidArgumentError):
    """An identifier (tenant, request, model, reason) is not valid UTF-8, is
    longer than 256 bytes, or contains control characters or ``"``."""


class StateError(KvhError):
    """The operation is not allowed in the buffer's current state (``KVH_E_STATE``)."""


class PendingError(StateError):
    """An async sanitize has not been waited for (``KVH_E_PENDING``)."""


class QuarantinedError(HygieneViolationError):
    """The buffer or block is quarantined (``KVH_E_QUARANTINED``)."""


class IsolationViolationError(HygieneViolationError):
    """A tenant other than the owner touched the buffer/block; it is now
    quarantined and an ``isolation_violation`` was logged (``KVH_E_ISOLATION``)."""


class PolicyViolationError(HygieneViolationError):
    """TTL expired or reuse limit exceeded; the buffer is quarantined (``KVH_E_POLICY``)."""


class VerificationError(HygieneViolationError):
    """Verification found non-zero bytes after zeroization; quarantined (``KVH_E_VERIFY``)."""


class UnsupportedError(KvhError):
    """Not supported here, e.g. no CUDA driver (``KVH_E_UNSUPPORTED``)."""


class DeviceError(KvhError):
    """A device/driver call failed (``KVH_E_DEVICE``)."""


class OutOfMemoryError(KvhError, MemoryError):
    """Out of host or device memory (``KVH_E_NOMEM``)."""


class FileSystemError(KvhError):
    """A file system error on the log or a metrics export (``KVH_E_IO``)."""


class ForensicLogError(KvhError):
    """The forensic log is unusable: locked by another writer, fsync failed (``KVH_E_LOG``)."""


class BufferTooSmallError(KvhError):
    """An output buffer was too small (``KVH_E_BUFFER_TOO_SMALL``); handled internally."""


class TracerClosedError(KvhError):
    """The tracer was closed (``KVH_E_CLOSED``, or detected in Python)."""


class ForkedError(KvhError):
    """Called in a child process after fork() (``KVH_E_FORKED``). Use the
    'spawn' or 'forkserver' multiprocessing start method."""


class PoisonedError(KvhError):
    """An earlier internal panic poisoned the library (``KVH_E_POISONED``)."""


class InternalError(KvhError):
    """Internal error; the library recovered a panic (``KVH_E_INTERNAL``)."""


class ConfigError(KvhError, ValueError):
    """Malformed configuration or environment variable (``KVH_E_CONFIG``)."""


class BusyError(KvhError):
    """Resource in use, e.g. metrics server already running (``KVH_E_BUSY``)."""


class LibraryNotFoundError(ImportError):
    """libkvhygiene could not be loaded; the message names every path tried."""


class VersionMismatchError(ImportError):
    """The loaded libkvhygiene has a different major version than the bindings."""


STATUS_EXCEPTIONS: Dict[int, Type[KvhError]] = {
    KVH_E_INVALID_ARG: InvalidArgumentError,
    KVH_E_NULL_ARG: InvalidArgumentError,
    KVH_E_STRUCT_SIZE: InvalidArgumentError,
    KVH_E_INVALID_ID: InvalidIdError,
    KVH_E_UNKNOWN_HANDLE: UnknownHandleError,
    KVH_E_FREED: FreedHandleError,
    KVH_E_STATE: StateError,
    KVH_E_COVERAGE: FreeWithoutSanitizeError,
    KVH_E_QUARANTINED: QuarantinedError,
    KVH_E_ISOLATION: IsolationViolationError,
    KVH_E_POLICY: PolicyViolationError,
    KVH_E_VERIFY: VerificationError,
    KVH_E_PENDING: PendingError,
    KVH_E_UNSUPPORTED: UnsupportedError,
    KVH_E_DEVICE: DeviceError,
    KVH_E_NOMEM: OutOfMemoryError,
    KVH_E_IO: FileSystemError,
    KVH_E_LOG: ForensicLogError,
    KVH_E_BUFFER_TOO_SMALL: BufferTooSmallError,
    KVH_E_CLOSED: TracerClosedError,
    KVH_E_FORKED: ForkedError,
    KVH_E_POISONED: PoisonedError,
    KVH_E_INTERNAL: InternalError,
    KVH_E_CONFIG: ConfigError,
    KVH_E_BUSY: BusyError,
}


def error_for_status(
    status: int,
    message: str,
    *,
    handle: Optional[str] = None,
    function: Optional[str] = None,
) -> KvhError:
    """Build the exception for a non-OK status (unknown codes give KvhError)."""
    cls = STATUS_EXCEPTIONS.get(status, KvhError)
    return cls(message, status=status, handle=handle, function=function)


# Seed aliases (the seed keeps them for backward compatibility).
HygieneViolation = HygieneViolationError
UnknownHandle = UnknownHandleError
FreeWithoutSanitize = FreeWithoutSanitizeError
