"""Checks that the ctypes mirrors in kvh_ctypes.py match include/kvhygiene.h:
the size of every struct and the offset of every field, as the C compiler sees
them. Run by `make test-cuda` (CI has cc; a GPU machine needs none of this).
Usage: check_layout.py <include dir>"""
import ctypes
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvh_ctypes as k  # noqa: E402

MIRRORS = {"kvh_config": k.Config, "kvh_alloc_desc": k.AllocDesc, "kvh_sanitize_opts": k.SanitizeOpts,
           "kvh_pool_region": k.PoolRegion, "kvh_pool_desc": k.PoolDesc}


def main() -> int:
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "kvhygiene.h"', "int main(void) {"]
    want = []
    for cname, py in MIRRORS.items():
        lines.append(f'  printf("%zu\\n", sizeof({cname}));')
        want.append((f"sizeof({cname})", ctypes.sizeof(py)))
        for f in py._fields_:
            lines.append(f'  printf("%zu\\n", offsetof({cname}, {f[0]}));')
            want.append((f"offsetof({cname}, {f[0]})", getattr(py, f[0]).offset))
    lines.append("  return 0;\n}")
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
        with open(src, "w") as fh:
            fh.write("\n".join(lines))
        subprocess.run(["cc", "-I", sys.argv[1], src, "-o", exe], check=True)
        got = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.split()
    bad = [f"{what}: C {g}, ctypes {w}" for (what, w), g in zip(want, map(int, got)) if g != w]
    for b in bad:
        print("layout mismatch:", b, file=sys.stderr)
    print(f"check_layout: {len(want) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
