/* fork.c — the fork guard. A pthread_atfork child handler, registered when the
 * library is loaded, marks the child; every kvh_* wrapper (wrappers.c) checks
 * the mark before it enters the Go runtime, whose threads do not exist in the
 * child (entering it there can hang forever). */
#include <pthread.h>

#include "kvh_internal.h"

int kvhc_forked;

static void kvhc_atfork_child(void) { __atomic_store_n(&kvhc_forked, 1, __ATOMIC_SEQ_CST); }

__attribute__((constructor)) static void kvhc_fork_init(void) {
  /* pthread_atfork only fails with ENOMEM at load time; nothing to do then. */
  (void)pthread_atfork(NULL, NULL, kvhc_atfork_child);
}
