"""ForensicLogger: the seed's verification entry points over kvh_log_verify.

Records are written by the tracer inside the library (one writer per file);
this class only verifies. ``verify_chain`` and ``verify_all`` return the
seed's result dicts, built from the library's JSON report, plus a
``failures`` list with the library's reasons ("bad_hash", "bad_hmac",
"missing_hmac", "seq_gap", "rotation_link_mismatch", "missing_rotate", ...).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _lib as L
from ._errors import BufferTooSmallError

PathLike = Union[str, "os.PathLike[str]"]

_LINK_REASONS = {
    "missing_rotate": "missing rotate record",
    "rotation_link_mismatch": "rotation linkage mismatch",
}


def _key(hmac_secret: Optional[Union[bytes, str]]) -> Optional[bytes]:
    if hmac_secret:
        return hmac_secret.encode("utf-8") if isinstance(hmac_secret, str) else bytes(hmac_secret)
    env = os.environ.get("FORENSIC_HMAC_SECRET", "")
    return env.encode("utf-8") if env else None


def _keys(hmac_secret: Optional[bytes], fs_verify_key: Optional[str], fs_now: Optional[float]) -> Dict[str, Any]:
    """log_verify's key arguments: a forward-secure key replaces the HMAC
    key, and then $FORENSIC_HMAC_SECRET is not consulted."""
    if fs_verify_key is None:
        return {"hmac_secret": _key(hmac_secret)}
    return {"hmac_secret": hmac_secret, "fs_verify_key": fs_verify_key, "fs_now": fs_now}


def log_verify(
    path: PathLike,
    *,
    hmac_secret: Optional[bytes] = None,
    all_files: bool = False,
    checkpoint_dir: Optional[str] = None,
    public_key: Optional[str] = None,
    fs_verify_key: Optional[str] = None,
    fs_now: Optional[float] = None,
) -> Dict[str, Any]:
    """Run kvh_log_verify; returns the library's report dict
    ``{"ok", "records", "failures": [{"file", "line", "reason", ...}]}``.
    ``hmac_secret`` is used as given (no environment lookup). A forward-secure
    log is checked with ``fs_verify_key`` (the text from ``kvgate fs-keygen``)
    and, with ``fs_now`` (Unix seconds, e.g. ``time.time()``), every epoch that
    ended more than one epoch before it must be sealed."""
    lib = L.load()
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(errno.ENOENT, "forensic log not found", p)
    o = L.kvh_verify_opts()
    o.flags = L.KVH_LOGVERIFY_ALL if all_files else 0
    if hmac_secret:
        key = hmac_secret.encode("utf-8") if isinstance(hmac_secret, str) else bytes(hmac_secret)
        o.hmac_key = key
        o.hmac_key_len = len(key)
    if checkpoint_dir is not None:
        o.checkpoint_dir = os.fspath(checkpoint_dir).encode("utf-8")
    if public_key is not None:
        o.public_key = public_key.encode("utf-8")
    if fs_verify_key is not None:
        o.fs_verify_key = fs_verify_key.strip().encode("utf-8")
    if fs_now is not None:
        o.fs_now_unix = int(fs_now)
    ok = ctypes.c_int32()
    recs = ctypes.c_uint64()
    n = ctypes.c_size_t()
    cap = 1 << 16
    for _ in range(4):
        buf = ctypes.create_string_buffer(cap)
        try:
            lib.kvh_log_verify(
                p.encode("utf-8"), ctypes.byref(o), ctypes.byref(ok), ctypes.byref(recs), buf, cap, ctypes.byref(n)
            )
        except BufferTooSmallError:
            cap = int(n.value) + 1
            continue
        rep: Dict[str, Any] = json.loads(buf.value.decode("utf-8")) if buf.value else {}
        rep["ok"] = bool(ok.value)
        rep.setdefault("records", int(recs.value))
        rep.setdefault("failures", [])
        return rep
    raise RuntimeError("kvh_log_verify: report kept growing")


def _record_lines(p: Path) -> List[int]:
    """0-based indexes of the non-blank lines of a file."""
    out = []
    with p.open("rb") as f:
        for i, line in enumerate(f):
            if line.strip():
                out.append(i)
    return out


def _chain_summary(p: Path, failures: List[Dict[str, Any]]) -> Tuple[bool, int, Optional[int]]:
    """(ok, lines, first_bad_line) in the seed's terms for one file: lines =
    records verified before the first failure."""
    idx = _record_lines(p)
    if not failures:
        return True, len(idx), None
    first = min(int(f.get("line", 0)) for f in failures)
    return False, sum(1 for i in idx if i < first), first


class ForensicLogger:
    """Verification of forensic logs (seed-compatible static methods).

    An instance only remembers ``path`` (the tracer's ``logger`` attribute);
    appending is done by the library's writer, not from Python.
    """

    def __init__(self, log_path: PathLike, *, max_bytes: int = 5_000_000, hmac_secret: Optional[bytes] = None) -> None:
        self.path = Path(log_path)
        self._max_bytes = max_bytes
        self._hmac_secret = hmac_secret

    def append(self, record: Any) -> str:  # pragma: no cover - documented difference
        raise NotImplementedError(
            "kvhygiene writes forensic records inside the library; use the CacheTracer lifecycle calls"
        )

    def verify(self) -> Dict[str, Any]:
        """verify_all() on this logger's path with its key."""
        return ForensicLogger.verify_all(self.path, hmac_secret=self._hmac_secret)

    @staticmethod
    def verify_chain(
        path: PathLike,
        *,
        hmac_secret: Optional[bytes] = None,
        fs_verify_key: Optional[str] = None,
        fs_now: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Verify one file. Returns ``{"ok", "lines", "first_bad_line", "failures"}``.

        The key is ``hmac_secret`` or ``$FORENSIC_HMAC_SECRET``. With a key,
        every record must carry a valid ``hmac`` (the seed skipped records
        without one). A forward-secure log is checked with ``fs_verify_key``
        (and ``fs_now``: see :func:`log_verify`) instead of an HMAC key.
        """
        rep = log_verify(path, **_keys(hmac_secret, fs_verify_key, fs_now))
        fails = list(rep.get("failures", []))
        ok_file, lines, first = _chain_summary(Path(path), fails)
        ok = bool(rep["ok"]) and ok_file
        return {"ok": ok, "lines": lines, "first_bad_line": first, "failures": fails}

    @staticmethod
    def verify_all(
        path: PathLike,
        *,
        hmac_secret: Optional[bytes] = None,
        fs_verify_key: Optional[str] = None,
        fs_now: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Verify the active file, every rotated file and the links between
        them. Returns ``{"ok", "files": [...], "records", "failures"}`` where
        ``files`` holds the seed's per-file entries (``file``, ``ok``,
        ``lines``, ``first_bad_line``) followed by linkage errors (``file``,
        ``ok``: False, ``error``).
        """
        base = Path(path)
        rep = log_verify(base, all_files=True, **_keys(hmac_secret, fs_verify_key, fs_now))
        fails: List[Dict[str, Any]] = list(rep.get("failures", []))
        names = rep.get("files")
        if names:
            files = [base.parent / Path(str(n)).name for n in names]
        else:
            files = sorted(base.parent.glob(f"{base.stem}-*.log"), key=lambda q: q.name) + [base]
        results: List[Dict[str, Any]] = []
        link_errors: List[Dict[str, Any]] = []
        for p in files:
            chain = [
                f
                for f in fails
                if Path(str(f.get("file", base.name))).name == p.name and f.get("reason") not in _LINK_REASONS
            ]
            if p.exists():
                ok_file, lines, first = _chain_summary(p, chain)
            else:
                ok_file, lines, first = False, 0, None
            results.append({"file": p.name, "ok": ok_file, "lines": lines, "first_bad_line": first})
        for f in fails:
            reason = f.get("reason")
            if reason in _LINK_REASONS:
                link_errors.append(
                    {"file": Path(str(f.get("file", ""))).name, "ok": False, "error": _LINK_REASONS[reason]}
                )
        return {
            "ok": bool(rep["ok"]),
            "files": results + link_errors,
            "records": int(rep.get("records", 0)),
            "failures": fails,
        }
