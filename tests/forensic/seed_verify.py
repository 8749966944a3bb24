"""Re-implementation-free harness: runs the seed's verification algorithm
(json.loads, drop curr_hash/hmac, canonical json.dumps, SHA-256 chain, HMAC
when present, rotation links) on a log set and prints a JSON verdict.
Mirrors rnaarla/llmops-kv-hygiene tools/forensic_logger.py semantics."""
import hashlib, hmac, json, sys
from pathlib import Path


def verify_chain(path, key):
    prev = "GENESIS"
    with Path(path).open("r", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            obj = json.loads(line)
            curr = obj.get("curr_hash")
            tmp = dict(obj)
            tmp.pop("curr_hash", None)
            mac = tmp.pop("hmac", None)
            canon = json.dumps(tmp, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            calc = hashlib.sha256((prev + canon).encode("utf-8")).hexdigest()
            if curr != calc:
                return {"ok": False, "first_bad_line": i}
            if key and mac:
                if mac != hmac.new(key, (prev + canon).encode("utf-8"), hashlib.sha256).hexdigest():
                    return {"ok": False, "first_bad_line": i}
            prev = curr
    return {"ok": True}


def last_hash(p):
    lines = [l for l in Path(p).read_bytes().splitlines() if l.strip()]
    return json.loads(lines[-1]).get("curr_hash") if lines else "GENESIS"


def first(p):
    for l in Path(p).read_bytes().splitlines():
        if l.strip():
            return json.loads(l)
    return None


def verify_all(path, key):
    base = Path(path)
    rotated = sorted(base.parent.glob(f"{base.stem}-*.log"), key=lambda p: p.name)
    files = rotated + [base]
    ok = True
    for p in files:
        if not verify_chain(p, key)["ok"]:
            ok = False
    for i in range(1, len(files)):
        r = first(files[i])
        if r is None or r.get("event_type") != "rotate":
            ok = False
            continue
        if r.get("prev_file") != files[i - 1].name or r.get("prev_file_last_hash") != last_hash(files[i - 1]):
            ok = False
    return {"ok": ok, "files": [p.name for p in files]}


if __name__ == "__main__":
    key = sys.argv[2].encode() if len(sys.argv) > 2 else None
    print(json.dumps(verify_all(sys.argv[1], key)))
