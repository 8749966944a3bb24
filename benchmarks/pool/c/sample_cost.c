/* What sampling costs a streamed pool release, and whether prefetching hides it: 2 GiB of dirty
 * memory zeroed in 4 MiB pieces with non-temporal stores (as a sampled release does), then
 *   - "zero only": nothing read back;
 *   - "zero+sample": 8 random words per 32 KiB read right after each piece (the sampled check);
 *   - "pipelined": the same reads, but the words of piece i are prefetched in bursts between the
 *     1 MiB chunks of piece i+1 and read after it.
 * One thread, 5 rounds; prints GB/s per round. Positions come from xorshift, not the keyed stream:
 * only the memory traffic is compared. argv[1]: prefetch hint (0 = T0, 1 = T1).
 * Build and run: cc -O2 -march=native -o build/sample_cost benchmarks/pool/c/sample_cost.c &&
 * build/sample_cost 0. Cited by benchmarks/results/pool.md. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define TOTAL ((size_t)2 << 30)
#define PIECE ((size_t)4 << 20)
#define CHUNKS 4
#define REGION (32 * 1024)
#define PER_REGION 8
#define NS (PIECE / REGION * PER_REGION)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx512f"))) static void zero_nt(char *p, size_t n) {
  __m512i z = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 256) {
    _mm512_stream_si512((void *)(p + i), z);
    _mm512_stream_si512((void *)(p + i + 64), z);
    _mm512_stream_si512((void *)(p + i + 128), z);
    _mm512_stream_si512((void *)(p + i + 192), z);
  }
  _mm_sfence();
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static uint64_t *pos[2][NS];

static void draw(char *p, uint64_t **out) {
  int k = 0;
  for (size_t r = 0; r < PIECE; r += REGION)
    for (int j = 0; j < PER_REGION; j++) out[k++] = (uint64_t *)(p + r + (xorshift() % (REGION / 8)) * 8);
}

static uint64_t check(uint64_t **ps) {
  uint64_t acc = 0;
  for (int k = 0; k < NS; k++) acc |= *(volatile uint64_t *)ps[k];
  return acc;
}

int main(int argc, char **argv) {
  int hint = argc > 1 ? atoi(argv[1]) : 0;
  char *a = mmap(0, TOTAL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  const char *names[] = {"zero+sample", "pipelined", "zero only"};
  size_t np = TOTAL / PIECE;
  for (int round = 0; round < 5; round++) {
    for (int m = 0; m < 3; m++) {
      memset(a, 0xa5, TOTAL); /* the previous tenant's data */
      uint64_t acc = 0;
      double t0 = now();
      if (m == 0) {
        for (size_t i = 0; i < np; i++) {
          zero_nt(a + i * PIECE, PIECE);
          draw(a + i * PIECE, pos[0]);
          acc |= check(pos[0]);
        }
      } else if (m == 1) {
        int cur = 0;
        for (size_t i = 0; i <= np; i++) {
          int prev = cur ^ 1;
          if (i < np) {
            char *p = a + i * PIECE;
            for (int c = 0; c < CHUNKS; c++) {
              zero_nt(p + c * (PIECE / CHUNKS), PIECE / CHUNKS);
              if (i == 0) continue;
              for (int k = c * (NS / CHUNKS); k < (c + 1) * (NS / CHUNKS); k++) {
                if (hint == 0)
                  _mm_prefetch((const char *)pos[prev][k], _MM_HINT_T0);
                else
                  _mm_prefetch((const char *)pos[prev][k], _MM_HINT_T1);
              }
            }
          }
          if (i > 0) acc |= check(pos[prev]);
          if (i < np) draw(a + i * PIECE, pos[cur]);
          cur ^= 1;
        }
      } else {
        for (size_t i = 0; i < np; i++) zero_nt(a + i * PIECE, PIECE);
      }
      double t = now() - t0;
      if (acc) {
        fprintf(stderr, "a sampled word was not zero\n");
        return 1;
      }
      printf("%s: %.1f GB/s  ", names[m], TOTAL / t / 1e9);
    }
    printf("\n");
  }
  return 0;
}
