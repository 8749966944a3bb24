/* Zero-then-verify ceiling on this machine: glibc memset of 2 GiB against zeroing 32 KiB chunks
 * with each store flavour and reading every chunk back (the full-verification pool release), and
 * non-temporal zeroing alone (what a sampled release does). One thread, medians of 3.
 * Build and run: cc -O2 -march=native -o build/ceiling benchmarks/pool/c/ceiling.c && build/ceiling
 * (CLZERO rows only on AMD CPUs that have it.) Cited by benchmarks/results/pool.md. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define CH (32 * 1024)
#define TOTAL ((size_t)2 << 30)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
__attribute__((target("avx512f"))) static uint64_t or_reduce(const uint8_t *p, size_t n) {
  __m512i a = _mm512_setzero_si512(), b = a;
  for (size_t i = 0; i < n; i += 128) {
    a = _mm512_or_si512(a, _mm512_load_si512(p + i));
    b = _mm512_or_si512(b, _mm512_load_si512(p + i + 64));
  }
  return _mm512_reduce_or_epi64(_mm512_or_si512(a, b));
}
__attribute__((target("avx512f"))) static void stores(uint8_t *p, size_t n) {
  __m512i z = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 64) _mm512_store_si512(p + i, z);
}
__attribute__((target("avx512f"))) static void nt_stores(uint8_t *p, size_t n) {
  __m512i z = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 64) _mm512_stream_si512((void *)(p + i), z);
  _mm_sfence();
}
static void rep_stosb(uint8_t *p, size_t n) { __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0) : "memory"); }
static void clzero(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i += 64) __asm__ volatile("clzero" ::"a"(p + i) : "memory");
}
static int cmp(const void *a, const void *b) { return *(const double *)a < *(const double *)b ? -1 : 1; }

int main(void) {
  unsigned a, b, c, d;
  int has_clzero = __get_cpuid(0x80000008, &a, &b, &c, &d) && (b & 1);
  if (!__builtin_cpu_supports("avx512f")) {
    fprintf(stderr, "ceiling: needs AVX-512F\n");
    return 1;
  }
  uint8_t *m = mmap(0, TOTAL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) return 1;
  struct { const char *name; void (*zero)(uint8_t *, size_t); int verify; } rows[] = {
      {"glibc memset, whole range", NULL, 0},
      {"AVX-512 stores + OR-reduce per chunk", stores, 1},
      {"rep stosb + OR-reduce per chunk", rep_stosb, 1},
      {"CLZERO + OR-reduce per chunk", clzero, 1},
      {"non-temporal + OR-reduce per chunk", nt_stores, 1},
      {"non-temporal stores only", nt_stores, 0},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    if (rows[r].zero == clzero && !has_clzero) continue;
    double t[3];
    uint64_t acc = 0;
    for (int k = 0; k < 3; k++) {
      memset(m, 0x5a, TOTAL); /* the previous tenant's data, cold */
      double t0 = now();
      if (!rows[r].zero) {
        memset(m, 0, TOTAL);
      } else {
        for (size_t o = 0; o < TOTAL; o += CH) {
          rows[r].zero(m + o, CH);
          if (rows[r].verify) acc |= or_reduce(m + o, CH);
        }
      }
      t[k] = now() - t0;
    }
    qsort(t, 3, sizeof t[0], cmp);
    printf("%-40s %6.1f GB/s%s\n", rows[r].name, TOTAL / t[1] / 1e9, acc ? " (NOT ZERO)" : "");
  }
  return 0;
}
