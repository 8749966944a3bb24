#!/usr/bin/env bash
# check_abi.sh LIB HEADER — the shipped .so exports exactly the kvh_* functions
# declared in the public header (and nothing else), carries the right SONAME
# and symbol version, and needs nothing beyond glibc (libc, libdl, libpthread,
# and the dynamic loader for TLS) to load.
set -euo pipefail
lib=${1:?usage: check_abi.sh LIB HEADER}
hdr=${2:?usage: check_abi.sh LIB HEADER}
fail=0
err() { echo "check_abi: $*" >&2; fail=1; }

real=$(readlink -f "$lib")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# 1. exported (defined, dynamic) symbols == functions declared KVH_API in the header
nm -D --defined-only "$real" | awk '{print $NF}' | sed 's/@.*//' | grep -v '^KVHYGIENE_1$' | sort -u >"$tmp/exported"
grep -v '^#' "$hdr" | grep -o 'KVH_API[^(]*(' | sed -E 's/.*[ *](kvh_[a-z0-9_]+)\($/\1/' | sort -u >"$tmp/declared"
if bad=$(grep -v '^kvh_' "$tmp/exported"); then err "non-kvh_ symbols exported: $(echo $bad)"; fi
if d=$(comm -23 "$tmp/declared" "$tmp/exported") && [ -n "$d" ]; then err "declared in the header but not exported: $(echo $d)"; fi
if d=$(comm -13 "$tmp/declared" "$tmp/exported") && [ -n "$d" ]; then err "exported but not in the header: $(echo $d)"; fi
[ "$(wc -l <"$tmp/declared")" -ge 30 ] || err "parsed only $(wc -l <"$tmp/declared") functions from $hdr"

# 2. every exported symbol carries the KVHYGIENE_1 version node
objdump -T "$real" | awk '$2 != "" && $0 !~ /\*UND\*/ && $NF ~ /^kvh_/ {print $(NF-1), $NF}' >"$tmp/versions"
if v=$(awk '$1 != "KVHYGIENE_1" {print $2}' "$tmp/versions") && [ -n "$v" ]; then err "kvh_ symbols without version KVHYGIENE_1: $(echo $v)"; fi

# 3. undefined symbols: only versioned glibc symbols (or glibc's weak hooks)
objdump -T "$real" | grep '\*UND\*' >"$tmp/undef" || true
while read -r line; do
  sym=$(echo "$line" | awk '{print $NF}')
  ver=$(echo "$line" | awk '{print $(NF-1)}')
  case "$ver" in
    GLIBC_*|"(GLIBC_"*) ;;
    *)
      case "$sym" in
        __gmon_start__|_ITM_deregisterTMCloneTable|_ITM_registerTMCloneTable|__cxa_finalize) ;;
        *) err "undefined symbol not from glibc: $sym ($ver)";;
      esac;;
  esac
done <"$tmp/undef"
if grep -Eiq 'nvml|cu[A-Z][a-zA-Z]+' <(awk '{print $NF}' "$tmp/undef"); then
  err "CUDA/NVML symbols are linked directly: $(grep -Eio '(nvml|cu[A-Z])[a-zA-Z_0-9]*' "$tmp/undef" | head -5 | xargs)"
fi

# 4. NEEDED libraries and SONAME
readelf -d "$real" >"$tmp/dyn"
while read -r needed; do
  case "$needed" in
    libc.so.6|libdl.so.2|libpthread.so.0|ld-linux-x86-64.so.2|ld-linux-aarch64.so.1) ;;
    *) err "needs $needed (only libc, libdl, libpthread allowed)";;
  esac
done < <(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' "$tmp/dyn")
grep -q '(SONAME).*\[libkvhygiene.so.1\]' "$tmp/dyn" || err "SONAME is not libkvhygiene.so.1: $(grep SONAME "$tmp/dyn" || echo none)"

n=$(wc -l <"$tmp/exported")
if [ "$fail" -ne 0 ]; then echo "check_abi: FAILED" >&2; exit 1; fi
echo "check_abi: OK ($n kvh_* symbols exported, all versioned KVHYGIENE_1; $(wc -l <"$tmp/undef") undefined, all glibc; NEEDED: $(sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' "$tmp/dyn" | xargs))"
