"""The seed's CacheTracer behaviours, through the public API, against the real library."""

from __future__ import annotations

import ctypes
import hashlib
import hmac as hmac_mod
import json
import re
import threading
import time
import uuid
from pathlib import Path

import pytest

import kvhygiene
from kvhygiene import (
    CacheTracer,
    ForensicLogger,
    FreeWithoutSanitize,
    FreeWithoutSanitizeError,
    HygieneViolation,
    HygieneViolationError,
    InvalidArgumentError,
    UnknownHandle,
    UnknownHandleError,
)

from conftest import alloc, need_numpy, read_records, records_for, run_python


def test_seed_names_and_aliases() -> None:
    assert HygieneViolation is HygieneViolationError
    assert UnknownHandle is UnknownHandleError
    assert FreeWithoutSanitize is FreeWithoutSanitizeError
    assert issubclass(FreeWithoutSanitizeError, HygieneViolationError)
    for cls in (
        kvhygiene.IsolationViolationError,
        kvhygiene.QuarantinedError,
        kvhygiene.PolicyViolationError,
        kvhygiene.VerificationError,
    ):
        assert issubclass(cls, HygieneViolationError)
    assert issubclass(kvhygiene.FreedHandleError, UnknownHandleError)


def test_happy_path_logs_the_lifecycle(tracer: CacheTracer, log_path: Path) -> None:
    h = tracer.allocate(
        tenant_id="t1", request_id="r1", model_id="m1", shape=(4, 256), dtype="float32", stream_id="s0"
    )
    assert isinstance(h, str) and int(h) > 0
    tracer.bind(h, stream_id="stream-1")
    tracer.mark_in_use(h)
    cov = tracer.sanitize(h)
    assert cov == 100.0
    assert tracer.attest_coverage(h) == 100.0
    info = tracer.info(h)
    assert info.state == "sanitized" and info.nbytes == 4 * 256 * 4 and info.library_owned
    assert (info.tenant_id, info.request_id, info.model_id) == ("t1", "r1", "m1")
    tracer.free(h)
    tracer.flush()
    events = [r["event_type"] for r in records_for(log_path, h)]
    assert events == ["allocate", "bind", "write", "sanitize_start", "sanitize_end", "free"]
    alloc_rec = records_for(log_path, h)[0]
    assert alloc_rec["tenant_id"] == "t1" and alloc_rec["nbytes"] == 4096
    assert alloc_rec["shape"] == [4, 256] and alloc_rec["dtype"] == "float32"
    assert alloc_rec["stream_id"] == "s0", "the seed records allocate(stream_id=)"
    bind_rec = records_for(log_path, h)[1]
    assert bind_rec["stream_id"] == "stream-1"
    end = records_for(log_path, h)[4]
    assert end["coverage_pct"] == 100.0
    res = ForensicLogger.verify_chain(log_path)
    assert res["ok"] is True and res["first_bad_line"] is None
    assert res["lines"] == len(read_records(log_path))


def test_free_without_sanitize_quarantines_and_raises(tracer: CacheTracer, log_path: Path) -> None:
    h = alloc(tracer)
    tracer.mark_in_use(h)
    with pytest.raises(FreeWithoutSanitizeError) as ei:
        tracer.free(h)
    assert ei.value.status == 8 and ei.value.handle == h
    assert tracer.info(h).state == "quarantined"
    tracer.flush()
    ev = [r["event_type"] for r in records_for(log_path, h)]
    assert "quarantine" in ev and "free" not in ev


def test_sanitize_without_verification_is_not_attested(tracer: CacheTracer) -> None:
    h = alloc(tracer)
    assert tracer.sanitize(h, verify=False) == 0.0
    with pytest.raises(FreeWithoutSanitizeError):
        tracer.free(h)


def test_sampled_verification_and_double_pass(tracer: CacheTracer) -> None:
    h = alloc(tracer, shape=(4096,))
    assert tracer.sanitize(h, samples=16, double_pass=True) == 100.0
    tracer.free(h)


def test_async_sanitize_completes_with_wait(tracer: CacheTracer) -> None:
    h = alloc(tracer)
    tracer.mark_in_use(h)
    tracer.sanitize(h, async_=True)
    assert tracer.wait(h) == 100.0
    tracer.free(h)


def test_verification_failure_is_observed_and_quarantines(tracer: CacheTracer, log_path: Path) -> None:
    """A real failure: another thread keeps writing into the buffer (an engine
    still using a block it released) while sanitize zeroizes and reads back."""
    nbytes = 4 << 20
    h = alloc(tracer, shape=(nbytes,), dtype="uint8")
    ptr = tracer.info(h).ptr
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            ctypes.memset(ptr, 0x5A, nbytes)  # ctypes releases the GIL here

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    caught = None
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and caught is None:
            try:
                tracer.sanitize(h)
            except kvhygiene.VerificationError as e:
                caught = e
    finally:
        stop.set()
        th.join()
    assert caught is not None, "verification never observed the concurrent writes"
    assert caught.status == 12 and caught.handle == h
    assert tracer.info(h).state == "quarantined"
    with pytest.raises(HygieneViolationError):
        tracer.free(h)  # quarantine is sticky
    # Recovery: a passing verified sanitize, then an explicit, logged release.
    assert tracer.sanitize(h) == 100.0
    assert tracer.info(h).state == "quarantined"
    tracer.release_quarantine(h, reason="writer stopped; re-sanitized")
    tracer.free(h)
    tracer.flush()
    ev = [r["event_type"] for r in records_for(log_path, h)]
    assert "quarantine" in ev and "release_quarantine" in ev and ev[-1] == "free"


def test_ttl_zero_violates_on_first_use(tracer: CacheTracer, log_path: Path) -> None:
    h = alloc(tracer, ttl_sec=0)
    with pytest.raises(kvhygiene.PolicyViolationError) as ei:
        tracer.mark_in_use(h)
    assert ei.value.status == 11
    assert tracer.info(h).state == "quarantined"
    tracer.flush()
    q = [r for r in records_for(log_path, h) if r["event_type"] == "quarantine"]
    assert q and "ttl" in q[0]["reason"]


def test_ttl_expiry(log_path: Path) -> None:
    with CacheTracer(log_path, sweep_interval_ms=0) as t:  # no sweeper: the call itself must check
        h = alloc(t, ttl_sec=1.0)
        t.mark_in_use(h)  # within TTL
        time.sleep(1.2)
        with pytest.raises(kvhygiene.PolicyViolationError):
            t.mark_in_use(h)
        assert t.info(h).state == "quarantined"


def test_ttl_sweeper_quarantines_untouched_buffers(log_path: Path) -> None:
    with CacheTracer(log_path, sweep_interval_ms=50) as t:
        h = alloc(t, ttl_sec=0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and t.info(h).state != "quarantined":
            time.sleep(0.05)
        assert t.info(h).state == "quarantined"


@pytest.mark.parametrize(
    "max_reuse,allowed",
    [(0, 0), (1, 1), (3, 3)],
)
def test_reuse_limit(tracer: CacheTracer, max_reuse: int, allowed: int) -> None:
    h = alloc(tracer, max_reuse=max_reuse)
    tracer.mark_in_use(h)
    for _ in range(allowed):
        tracer.mark_reuse(h)
    assert tracer.info(h).reuse_count == allowed
    with pytest.raises(kvhygiene.PolicyViolationError):
        tracer.mark_reuse(h)
    assert tracer.info(h).state == "quarantined"


def test_negative_max_reuse_is_unlimited(tracer: CacheTracer) -> None:
    h = alloc(tracer, max_reuse=-1)
    tracer.mark_in_use(h)
    for _ in range(50):
        tracer.mark_reuse(h)
    assert tracer.info(h).reuse_count == 50
    assert tracer.sanitize(h) == 100.0
    tracer.free(h)


def test_default_max_reuse_is_zero_like_the_seed(tracer: CacheTracer) -> None:
    h = alloc(tracer)
    with pytest.raises(kvhygiene.PolicyViolationError):
        tracer.mark_reuse(h)


def test_double_free_raises_freed_and_logs_once(tracer: CacheTracer, log_path: Path) -> None:
    h = alloc(tracer)
    tracer.sanitize(h)
    tracer.free(h)
    with pytest.raises(kvhygiene.FreedHandleError) as ei:
        tracer.free(h)
    assert ei.value.status == 6
    assert isinstance(ei.value, UnknownHandleError)  # seed: "unknown or freed handle"
    with pytest.raises(kvhygiene.FreedHandleError):
        tracer.mark_in_use(h)
    tracer.flush()
    assert [r["event_type"] for r in records_for(log_path, h)].count("free") == 1


def test_unknown_handles(tracer: CacheTracer) -> None:
    with pytest.raises(UnknownHandleError) as ei:
        tracer.sanitize("not-a-handle")
    assert not isinstance(ei.value, kvhygiene.FreedHandleError)
    with pytest.raises(UnknownHandleError) as ei:
        tracer.free(str(uuid.uuid4()))
    with pytest.raises(UnknownHandleError) as ei:
        tracer.attest_coverage("987654321")
    assert ei.value.status == 5
    with pytest.raises(UnknownHandleError):
        tracer.free("0")


def test_handles_from_another_tracer_are_unknown(tracer: CacheTracer, tmp_path: Path) -> None:
    with CacheTracer(tmp_path / "other.log") as other:
        h = alloc(other)
        with pytest.raises(UnknownHandleError):
            tracer.mark_in_use(h)


def test_zero_length_buffer(tracer: CacheTracer) -> None:
    h = alloc(tracer, shape=(0,))
    assert tracer.info(h).nbytes == 0
    assert tracer.sanitize(h) == 100.0
    tracer.free(h)
    h2 = alloc(tracer, shape=(0, 16))
    with pytest.raises(FreeWithoutSanitizeError):
        tracer.free(h2)


@pytest.mark.parametrize("threshold", [100.5, 150.0, -1.0])
def test_threshold_outside_0_100_is_refused(log_path: Path, threshold: float) -> None:
    with pytest.raises(kvhygiene.ConfigError) as ei:
        CacheTracer(log_path, coverage_threshold=threshold)
    assert ei.value.status == 24
    assert "0..100" in ei.value.message


def test_threshold_100_is_accepted(log_path: Path) -> None:
    with CacheTracer(log_path, coverage_threshold=100.0) as t:
        assert t.COVERAGE_THRESHOLD == 100.0
        h = alloc(t)
        assert t.sanitize(h) == 100.0
        t.free(h)


def _prom_value(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+(\S+)$", text, re.M)
    assert m, f"{name} missing from:\n{text}"
    return float(m.group(1))


def test_metrics_and_exports(tracer: CacheTracer, tmp_path: Path) -> None:
    idle = tracer.get_metrics()
    assert idle["allocations"] == 0
    assert idle["min_coverage_pct"] >= idle["threshold_pct"]  # an idle tracer is not a failing gate
    for _ in range(2):
        h = alloc(tracer)
        tracer.mark_in_use(h)
        tracer.sanitize(h)
        tracer.free(h)
    hq = alloc(tracer, max_reuse=-1)
    tracer.mark_in_use(hq)
    tracer.mark_reuse(hq)
    tracer.quarantine(hq, reason="manual")
    m = tracer.get_metrics()
    for key in (
        "total_buffers",
        "active_buffers",
        "unsanitized_regions_count",
        "quarantine_count",
        "min_coverage_pct",
        "avg_coverage_pct",
        "threshold_pct",
        "sanitize_duration_p50_ms",
        "sanitize_duration_p95_ms",
        "allocations",
        "freed_total",
        "reuse_total",
        "reuse_rate",
    ):
        assert key in m, key
    assert m["allocations"] == 3 and m["freed_total"] == 2
    assert m["quarantine_count"] == 1 and m["reuse_total"] == 1
    assert m["min_coverage_pct"] == 100.0 and m["threshold_pct"] == 99.9
    assert m["reuse_rate"] == pytest.approx(1 / 3)

    jpath = tmp_path / "out" / "metrics.json"
    tracer.export_metrics(jpath)
    exported = json.loads(jpath.read_text())
    assert exported["allocations"] == 3 and exported["quarantine_count"] == 1

    ppath = tmp_path / "out" / "metrics.prom"
    tracer.export_metrics_prometheus(ppath)
    text = ppath.read_text()
    assert "# TYPE kv_hygiene_allocations_total counter" in text
    assert _prom_value(text, "kv_hygiene_allocations_total") == 3
    assert _prom_value(text, "kv_hygiene_freed_total") == 2
    assert _prom_value(text, "kv_hygiene_quarantine_count") == 1
    assert _prom_value(text, "kv_hygiene_min_coverage_pct") == 100.0
    assert _prom_value(text, "kv_hygiene_threshold_pct") == 99.9
    assert not list(ppath.parent.glob("*.tmp*")), "atomic export left a temp file"


def _lifecycles(t: CacheTracer, n: int) -> None:
    for i in range(n):
        h = t.allocate(tenant_id=f"t{i % 3}", request_id=f"r{i}", model_id="m", shape=(256,))
        t.mark_in_use(h)
        t.sanitize(h)
        t.free(h)


def test_hmac_rotation_and_verify_all(log_path: Path) -> None:
    key = b"rotation-secret"
    with CacheTracer(log_path, hmac_secret=key, max_log_bytes=6000) as t:
        _lifecycles(t, 40)
    rotated = sorted(log_path.parent.glob("kv_cache-*.log"))
    assert rotated, "expected rotated files"
    recs = [r for p in rotated + [log_path] for r in read_records(p)]
    assert all("hmac" in r for r in recs)
    seqs = [r["seq"] for r in recs if "seq" in r]
    assert len(seqs) == len(recs) and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    res = ForensicLogger.verify_all(log_path, hmac_secret=key)
    assert res["ok"] is True, res
    per_file = [f for f in res["files"] if "lines" in f]
    assert len(per_file) == len(rotated) + 1
    assert sum(f["lines"] for f in per_file) == len(recs)
    assert all(f["ok"] for f in per_file)

    assert ForensicLogger.verify_all(log_path, hmac_secret=b"wrong")["ok"] is False
    assert ForensicLogger.verify_chain(log_path, hmac_secret=key)["ok"] is True

    # Tamper with a rotated file: the chain of that file breaks.
    victim = rotated[0]
    lines = victim.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["tenant_id"] = "mallory"
    lines[1] = json.dumps(rec)
    victim.write_text("\n".join(lines) + "\n")
    res = ForensicLogger.verify_all(log_path, hmac_secret=key)
    assert res["ok"] is False
    bad = [f for f in res["files"] if f["file"] == victim.name and not f["ok"]]
    assert bad and bad[0].get("first_bad_line") == 1


def test_hmac_from_environment(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORENSIC_HMAC_SECRET", "env-secret")
    with CacheTracer(log_path) as t:
        _lifecycles(t, 2)
    assert all("hmac" in r for r in read_records(log_path))
    assert ForensicLogger.verify_chain(log_path)["ok"] is True  # key from the environment
    monkeypatch.setenv("FORENSIC_HMAC_SECRET", "other")
    assert ForensicLogger.verify_chain(log_path)["ok"] is False


def _seed_style_log(path: Path, n: int, key: bytes | None = None) -> None:
    """Write a log the way the seed's logger does (canonical JSON + chain)."""
    prev = "GENESIS"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            rec = {"event_type": "allocate", "handle": str(uuid.UUID(int=i + 1)), "tenant_id": "t",
                   "schema": 1, "ts": 1700000000.0 + i / 7, "trace_id": str(uuid.UUID(int=1000 + i)),
                   "prev_hash": prev, "nbytes": 4096, "note": "ünïcode <&>"}
            canonical = json.dumps(rec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            rec["curr_hash"] = hashlib.sha256((prev + canonical).encode()).hexdigest()
            if key:
                rec["hmac"] = hmac_mod.new(key, (prev + canonical).encode(), hashlib.sha256).hexdigest()
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            prev = rec["curr_hash"]


def test_verify_chain_accepts_seed_logs_and_locates_tampering(tmp_path: Path) -> None:
    p = tmp_path / "seed.log"
    _seed_style_log(p, 6)
    assert ForensicLogger.verify_chain(p) == {"ok": True, "lines": 6, "first_bad_line": None, "failures": []}
    lines = p.read_text().splitlines()
    lines[3] = lines[3].replace('"nbytes": 4096', '"nbytes": 4097')
    p.write_text("\n".join(lines) + "\n")
    res = ForensicLogger.verify_chain(p)
    assert res["ok"] is False and res["first_bad_line"] == 3 and res["lines"] == 3


def test_verify_chain_seed_hmac_log(tmp_path: Path) -> None:
    p = tmp_path / "seed.log"
    _seed_style_log(p, 4, key=b"secret")
    assert ForensicLogger.verify_chain(p, hmac_secret=b"secret")["ok"] is True
    assert ForensicLogger.verify_chain(p, hmac_secret=b"nope")["ok"] is False


def test_verify_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ForensicLogger.verify_chain(tmp_path / "absent.log")


def test_environment_defaults_in_process(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_COVERAGE_THRESHOLD", "95")
    monkeypatch.setenv("KV_DEFAULT_MAX_REUSE", "2")
    with CacheTracer(log_path) as t:
        assert t.COVERAGE_THRESHOLD == 95.0
        assert t.get_metrics()["threshold_pct"] == 95.0
        h = alloc(t)
        t.mark_reuse(h)
        t.mark_reuse(h)
        with pytest.raises(kvhygiene.PolicyViolationError):
            t.mark_reuse(h)
    monkeypatch.setenv("KV_DEFAULT_TTL_SEC", "0")
    with CacheTracer(log_path) as t:
        h = alloc(t)
        with pytest.raises(kvhygiene.PolicyViolationError):
            t.mark_in_use(h)  # default TTL 0 violates on first use
    # explicit arguments win over the environment
    with CacheTracer(log_path.with_name("b.log"), coverage_threshold=99.0, default_max_reuse=0) as t:
        assert t.COVERAGE_THRESHOLD == 99.0
        h = alloc(t)
        with pytest.raises(kvhygiene.PolicyViolationError):
            t.mark_reuse(h)


@pytest.mark.parametrize(
    "var,value",
    [("KV_COVERAGE_THRESHOLD", "lots"), ("KV_COVERAGE_THRESHOLD", "101"), ("KV_DOUBLE_PASS_DEFAULT", "maybe"),
     ("KV_DEFAULT_MAX_REUSE", "1.5"), ("KV_DEFAULT_TTL_SEC", "soon")],
)
def test_malformed_environment_names_the_variable(log_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(kvhygiene.ConfigError) as ei:
        CacheTracer(log_path)
    assert var in ei.value.message


def test_environment_defaults_in_fresh_process(tmp_path: Path) -> None:
    code = (
        "import kvhygiene\n"
        "t = kvhygiene.CacheTracer('f/kv.log')\n"
        "h = t.allocate(tenant_id='a', request_id='b', model_id='c', shape=(64,))\n"
        "t.mark_in_use(h)\n"
        "for _ in range(5): t.mark_reuse(h)\n"
        "print('threshold', t.COVERAGE_THRESHOLD, t.get_metrics()['threshold_pct'])\n"
        "t.close()\n"
    )
    r = run_python(code, {"KV_COVERAGE_THRESHOLD": "97.5", "KV_DEFAULT_MAX_REUSE": "-1"}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "threshold 97.5 97.5" in r.stdout


def test_closed_tracer_refuses_calls(log_path: Path) -> None:
    t = CacheTracer(log_path)
    h = alloc(t)
    t.close()
    t.close()  # idempotent
    assert t.closed
    # the lifecycle calls detect a closed tracer on their error path (the
    # library refuses the NULL tracer they pass); the others check first
    for call in (
        lambda: alloc(t),
        lambda: t.mark_in_use(h),
        lambda: t.sanitize(h),
        lambda: t.free(h),
        lambda: t.attest_coverage(h),
        lambda: t.quarantine(h, reason="x"),
    ):
        with pytest.raises(kvhygiene.TracerClosedError) as ei:
            call()
        assert ei.value.status_name == "KVH_E_CLOSED"


def test_tracer_del_does_not_crash(log_path: Path) -> None:
    t = CacheTracer(log_path)
    alloc(t)
    del t  # finalizer closes
    with CacheTracer(log_path) as t2:  # the log lock was released
        alloc(t2)


def test_second_writer_on_the_same_log_is_refused(tracer: CacheTracer, log_path: Path) -> None:
    with pytest.raises(kvhygiene.ForensicLogError):
        CacheTracer(log_path)


def test_retention_by_the_tracer_declares_what_it_prunes(log_path: Path) -> None:
    """The tracer holds the log's lock, so it prunes its own rotated files (the
    seed's CronJob could not while the engine runs); every removal is declared."""
    key = b"retention-secret"
    archive = log_path.parent / "archive"
    with CacheTracer(log_path, hmac_secret=key, max_log_bytes=4000, max_rotated=1, archive_dir=str(archive)) as t:
        _lifecycles(t, 60)
        t.flush()  # appends are group-committed: make the rotations happen now
        deadline = time.monotonic() + 5
        while len(list(log_path.parent.glob("kv_cache-*.log"))) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(list(log_path.parent.glob("kv_cache-*.log"))) == 1
    assert list(archive.glob("kv_cache-*.log")), "pruned files are archived, not deleted"
    recs = [r for p in sorted(log_path.parent.glob("kv_cache*.log")) for r in read_records(p)]
    assert any(r["event_type"] == "prune" for r in recs)
    assert ForensicLogger.verify_all(log_path, hmac_secret=key)["ok"] is True


def test_archive_dir_needs_a_limit(log_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="archive_dir"):
        CacheTracer(log_path, archive_dir=str(log_path.parent / "a"))


def test_retention_applies_on_close(log_path: Path) -> None:
    with CacheTracer(log_path, max_log_bytes=4000, max_rotated=0) as t:
        _lifecycles(t, 60)  # still queued when close() flushes them and rotates
    assert list(log_path.parent.glob("kv_cache-*.log")) == []
    assert ForensicLogger.verify_all(log_path)["ok"] is True
