"""Reads JSON documents (one per line) on stdin and prints each one's
canonical form (json.dumps sort_keys, ensure_ascii=False, compact) as a JSON
string per line, so the output stays one line even for U+2028."""
import json, sys

out = sys.stdout
for line in sys.stdin.buffer:
    obj = json.loads(line)
    s = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    out.write(json.dumps(s) + "\n")
    out.flush()
