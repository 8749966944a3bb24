#!/usr/bin/env bash
# Interleaved A/B of two forensic test binaries on a shared machine:
#   ab.sh A.test B.test 'BenchRegex' [rounds] [extra test flags...]
# Runs A then B, ROUNDS times (alternating, so load changes hit both), and
# prints per benchmark the median and best ns/op and the median of every
# other metric for each side. Build the binaries with
#   go test -c -o /tmp/B.test ./forensic   (and the same at the base commit).
set -euo pipefail
a=$1 b=$2 re=$3 rounds=${4:-5}
shift 3; [ $# -gt 0 ] && shift
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
here=$(cd "$(dirname "$0")/../../forensic" && pwd)
for ((r = 0; r < rounds; r++)); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    ( cd "$here" && "$bin" -test.run '^$' -test.bench "$re" -test.count 1 "$@" ) | grep '^Benchmark' | sed "s/^/$side /" >> "$raw"
  done
done
awk '
  { side=$1; name=$2; key=name SUBSEP side
    ns[key]=ns[key] " " $4
    for (i=7; i<=NF; i+=2) { m[key SUBSEP $(i)]=m[key SUBSEP $(i)] " " $(i-1); u[name]=u[name] " " $(i) }
    if (!(name in ord)) { ord[name]=++n; names[n]=name } }
  function sorted(s, a,   c, k, j, t) { c=split(s, a, " "); for (k=1;k<=c;k++) for (j=k+1;j<=c;j++) if (a[j]+0 < a[k]+0) { t=a[k]; a[k]=a[j]; a[j]=t }; return c }
  function med(s,   a, c) { c=sorted(s, a); return a[int((c+1)/2)] }
  function best(s,   a, c) { c=sorted(s, a); return a[1] }
  END {
    printf "| benchmark | side | runs | median ns/op | best ns/op | median metrics |\n|---|---|---|---|---|---|\n"
    for (k=1;k<=n;k++) { name=names[k]
      for (si=1; si<=2; si++) { side=(si==1?"A":"B"); key=name SUBSEP side; if (!(key in ns)) continue
        c=split(ns[key], tmp, " "); out=""; split(u[name], us, " "); delete seen
        for (j in us) { x=us[j]; if (x in seen || x=="ns/op") continue; seen[x]=1; if ((key SUBSEP x) in m) out=out sprintf("%s %s; ", med(m[key SUBSEP x]), x) }
        printf "| %s | %s | %d | %s | %s | %s |\n", name, side, c, med(ns[key]), best(ns[key]), out } } }' "$raw"
