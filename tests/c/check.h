/* check.h — the assertion macros shared by the C tests. Each test program
 * counts into passed/failed and ends with "<name>: N passed, M failed". */
#ifndef KVH_TESTS_CHECK_H
#define KVH_TESTS_CHECK_H

#include <stdio.h>

#include "kvhygiene.h"

static int passed, failed;

/* CHECK(cond, fmt, ...): count cond; on failure print where, why, and the
 * thread's last library error. */
#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (cond) {                                                                 \
      passed++;                                                                 \
    } else {                                                                    \
      failed++;                                                                 \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                      \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, "  [kvh_last_error: %s]\n", kvh_last_error());            \
    }                                                                           \
  } while (0)

/* EXPECT(call, status): the call returns status; on failure statuses the
 * thread's last error is non-empty. */
#define EXPECT(call, want)                                                      \
  do {                                                                          \
    kvh_status s_ = (call);                                                     \
    CHECK(s_ == (want), "%s -> %s, want %s", #call, kvh_status_str(s_),         \
          kvh_status_str(want));                                                \
    if (s_ == (want) && (want) != KVH_OK)                                       \
      CHECK(kvh_last_error()[0] != '\0', "%s: empty kvh_last_error", #call);    \
  } while (0)

#endif /* KVH_TESTS_CHECK_H */
