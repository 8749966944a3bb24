/* Why core/cpuzero's non-temporal kernels end with non-temporal stores of whole lines.
 *
 * Zeroes 1 GiB in 1 MiB chunks (what cpuzero.Zero does above its non-temporal threshold) three
 * ways, interleaved, 15 rounds, and prints the median and best GB/s of each:
 *   - non-temporal stores only (the kernels since 2026-11-23);
 *   - the earlier kernels' shape: one regular store of the first line of each chunk, non-temporal
 *     stores of the rest, then regular stores of the last 256 bytes again, over lines just written
 *     non-temporally: each such store waits for the line to reach memory and reads it back;
 *   - glibc memset over the whole GiB.
 *
 * Build and run (x86-64 with AVX-512F):
 *   cc -O2 -mavx512f -o /tmp/nt_tail benchmarks/cpuzero/c/nt_tail.c && /tmp/nt_tail
 * Development VM (AMD EPYC Zen 4, 2 vCPUs), two runs: 66.4 / 70.7 GB/s vs 58.6 / 62.2 vs memset
 * 58.7 / 60.0 (medians).
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void nt_only(char *p, size_t n) {
  __m512i z = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 256) {
    _mm512_stream_si512((void *)(p + i), z);
    _mm512_stream_si512((void *)(p + i + 64), z);
    _mm512_stream_si512((void *)(p + i + 128), z);
    _mm512_stream_si512((void *)(p + i + 192), z);
  }
  _mm_sfence();
}

__attribute__((noinline)) static void nt_regular_edges(char *p, size_t n) {
  __m512i z = _mm512_setzero_si512();
  char *end = p + n;
  _mm512_storeu_si512((void *)p, z);
  char *d = (char *)(((uintptr_t)p + 64) & ~(uintptr_t)63);
  for (; d <= end - 256; d += 256) {
    _mm512_stream_si512((void *)d, z);
    _mm512_stream_si512((void *)(d + 64), z);
    _mm512_stream_si512((void *)(d + 128), z);
    _mm512_stream_si512((void *)(d + 192), z);
  }
  for (int k = 4; k > 0; k--) _mm512_storeu_si512((void *)(end - 64 * k), z);
  _mm_sfence();
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  const size_t n = (size_t)1 << 30, chunk = 1 << 20;
  char *p = aligned_alloc(4096, n);
  if (p == NULL) return 1;
  memset(p, 1, n);
  enum { ROUNDS = 15 };
  double r[3][ROUNDS];
  for (int it = 0; it < ROUNDS; it++) {
    double t0 = now();
    for (size_t o = 0; o < n; o += chunk) nt_only(p + o, chunk);
    r[0][it] = n / (now() - t0) / 1e9;
    t0 = now();
    for (size_t o = 0; o < n; o += chunk) nt_regular_edges(p + o, chunk);
    r[1][it] = n / (now() - t0) / 1e9;
    t0 = now();
    memset(p, 0, n);
    r[2][it] = n / (now() - t0) / 1e9;
  }
  const char *name[] = {"non-temporal only, 1 MiB chunks", "regular first line + last 256 B", "glibc memset, 1 GiB"};
  for (int c = 0; c < 3; c++) {
    qsort(r[c], ROUNDS, sizeof(double), cmp);
    printf("%-34s median %5.1f GB/s  best %5.1f\n", name[c], r[c][ROUNDS / 2], r[c][ROUNDS - 1]);
  }
  free(p);
  return 0;
}
