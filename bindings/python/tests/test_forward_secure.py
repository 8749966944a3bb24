"""Forward-secure MAC from Python: a state file made by `kvgate fs-keygen`, a
CacheTracer that seals epochs, and log_verify with the verification key."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import kvhygiene
from kvhygiene.forensic import log_verify

from conftest import REPO, read_records

KVGATE = Path(os.environ.get("KVH_KVGATE", REPO / "build" / "kvgate"))


def keygen(tmp_path: Path, name: str) -> tuple[Path, str]:
    state = tmp_path / f"{name}.state"
    vk = tmp_path / f"{name}.vk"
    subprocess.run(
        [str(KVGATE), "fs-keygen", "--state", str(state), "--epoch", "1s", "--verify-key-out", str(vk)],
        check=True,
        capture_output=True,
    )
    return state, vk.read_text().strip()


def test_forward_secure_log_verifies_and_detects(tmp_path: Path, log_path: Path) -> None:
    assert KVGATE.exists(), f"kvgate not built at {KVGATE} (make kvgate)"
    state, vk = keygen(tmp_path, "fs")
    _, other = keygen(tmp_path, "other")
    with pytest.raises(kvhygiene.KvhError) as ei:
        kvhygiene.CacheTracer(log_path, fs_state_path=str(state), hmac_secret=b"k")
    assert "exclusive" in str(ei.value)
    with kvhygiene.CacheTracer(log_path, fs_state_path=str(state), fsync="none") as t:
        for i in range(2):
            buf = np.full(4096, 7, dtype=np.uint8)
            h = t.track(buf, tenant_id="tenant-a", request_id=f"r{i}", model_id="m")
            t.mark_in_use(h)
            assert t.sanitize(h) == 100.0
            t.free(h)
            assert not buf.any()
            if i == 0:
                time.sleep(1.3)  # an epoch boundary: epoch 0 is sealed, its key overwritten
    recs = read_records(log_path)
    assert any(r["event_type"] == "seal" for r in recs)
    assert all(r["kid"].startswith("fs:") and "fse" in r for r in recs)

    rep = log_verify(log_path, fs_verify_key=vk, fs_now=time.time())
    assert rep["ok"] is True and rep["records"] == len(recs), rep
    rep = log_verify(log_path, fs_verify_key=other)
    assert rep["ok"] is False and any(f["reason"].startswith("fs_") for f in rep["failures"]), rep
    rep = log_verify(log_path, fs_verify_key=vk, fs_now=time.time() + 3600)
    assert rep["ok"] is False and any(f["reason"] == "fs_stale" for f in rep["failures"]), rep
    with pytest.raises(kvhygiene.KvhError):
        log_verify(log_path, fs_verify_key=vk, hmac_secret=b"k")
    # the seed-shaped entry points take the key too; $FORENSIC_HMAC_SECRET is not mixed in
    os.environ["FORENSIC_HMAC_SECRET"] = "ignored-with-an-fs-key"
    try:
        chain = kvhygiene.ForensicLogger.verify_chain(log_path, fs_verify_key=vk, fs_now=time.time())
        assert chain["ok"] is True and chain["lines"] == len(recs), chain
        every = kvhygiene.ForensicLogger.verify_all(log_path, fs_verify_key=vk)
        assert every["ok"] is True, every
        assert kvhygiene.ForensicLogger.verify_all(log_path, fs_verify_key=other)["ok"] is False
    finally:
        del os.environ["FORENSIC_HMAC_SECRET"]
