/* How much independent SHA-256 lanes can gain with SHA-NI on this CPU: the cost of one
 * sha256rnds2 in 1, 2, 4 and 6 interleaved dependency chains (no message schedule, no loads:
 * an upper bound on what more lanes could give the hashing). Cited by
 * benchmarks/results/forensic.md.
 * Build and run: cc -O2 -msha -msse4.1 -o build/sha_lanes benchmarks/forensic/c/sha_lanes.c &&
 * build/sha_lanes */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define N 50000000L

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define R(a, b) b = _mm_sha256rnds2_epu32(b, a, k), a = _mm_sha256rnds2_epu32(a, b, k)

int main(void) {
  __m128i k = _mm_set1_epi32(0x428a2f98);
  __m128i a0 = _mm_set1_epi32(1), b0 = _mm_set1_epi32(2), a1 = _mm_set1_epi32(3), b1 = _mm_set1_epi32(4);
  __m128i a2 = _mm_set1_epi32(5), b2 = _mm_set1_epi32(6), a3 = _mm_set1_epi32(7), b3 = _mm_set1_epi32(8);
  __m128i a4 = _mm_set1_epi32(9), b4 = _mm_set1_epi32(10), a5 = _mm_set1_epi32(11), b5 = _mm_set1_epi32(12);
  double t, d;
  t = now();
  for (long n = 0; n < N; n++) R(a0, b0);
  d = now() - t;
  printf("1 lane : %.2f ns per sha256rnds2\n", d / N / 2 * 1e9);
  t = now();
  for (long n = 0; n < N; n++) { R(a0, b0); R(a1, b1); }
  d = now() - t;
  printf("2 lanes: %.2f ns per sha256rnds2\n", d / N / 4 * 1e9);
  t = now();
  for (long n = 0; n < N; n++) { R(a0, b0); R(a1, b1); R(a2, b2); R(a3, b3); }
  d = now() - t;
  printf("4 lanes: %.2f ns per sha256rnds2\n", d / N / 8 * 1e9);
  t = now();
  for (long n = 0; n < N; n++) { R(a0, b0); R(a1, b1); R(a2, b2); R(a3, b3); R(a4, b4); R(a5, b5); }
  d = now() - t;
  printf("6 lanes: %.2f ns per sha256rnds2\n", d / N / 12 * 1e9);
  __m128i s = _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(a0, b0), _mm_xor_si128(a1, b1)),
                            _mm_xor_si128(_mm_xor_si128(a2, b2), _mm_xor_si128(a3, b3)));
  s = _mm_xor_si128(s, _mm_xor_si128(_mm_xor_si128(a4, b4), _mm_xor_si128(a5, b5)));
  return _mm_cvtsi128_si32(s) == 42;
}
