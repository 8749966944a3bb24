"""Shared fixtures for the kvhygiene binding tests.

The tests run against the real libkvhygiene (the copy installed with the
package, or $KVH_LIBRARY) and real files in a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import kvhygiene

REPO = Path(__file__).resolve().parents[3]
HEADER = REPO / "include" / "kvhygiene.h"

# Keep the seed's environment variables out of the tests unless a test sets them.
SEED_ENV = (
    "KV_COVERAGE_THRESHOLD",
    "KV_DOUBLE_PASS_DEFAULT",
    "KV_VERIFY_SAMPLES_DEFAULT",
    "KV_DEFAULT_MAX_REUSE",
    "KV_DEFAULT_TTL_SEC",
    "FORENSIC_HMAC_SECRET",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in SEED_ENV:
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "forensics" / "kv_cache.log"


@pytest.fixture
def tracer(log_path: Path) -> Iterator[kvhygiene.CacheTracer]:
    t = kvhygiene.CacheTracer(log_path)
    try:
        yield t
    finally:
        t.close()


def read_records(path: Path) -> List[Dict[str, Any]]:
    """Every JSON record of a log file (the tracer must be flushed or closed)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out


def records_for(path: Path, handle: str) -> List[Dict[str, Any]]:
    return [r for r in read_records(path) if str(r.get("handle")) == str(handle)]


def alloc(t: kvhygiene.CacheTracer, **kw: Any) -> str:
    args: Dict[str, Any] = dict(tenant_id="tenant-a", request_id="req-1", model_id="model-x", shape=(1024,))
    args.update(kw)
    return t.allocate(**args)


def run_python(code: str, env: Dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with the given extra environment."""
    e = dict(os.environ)
    for k in SEED_ENV:
        e.pop(k, None)
    e.update(env)
    # the child imports the same kvhygiene as this process
    pkg_parent = str(Path(kvhygiene.__file__).resolve().parents[1])
    e["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, e.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", code], env=e, cwd=str(cwd), capture_output=True, text=True, timeout=timeout
    )


def need_numpy() -> Any:
    return pytest.importorskip("numpy", reason="numpy is not installed (pip install numpy)")
