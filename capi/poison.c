/* poison.c — after a recovered internal panic every later call fails with
 * KVH_E_POISONED (checked in C, before the Go runtime is entered), and the
 * forked-child refusal. */
#include <string.h>

#include "kvh_internal.h"

int kvhc_poisoned;
static char kvhc_poison_msg[512];
static int kvhc_poison_claimed;

void kvhc_poison(const char *msg, size_t n) {
  /* the first panic's message is kept; later ones only keep the flag set */
  if (__atomic_exchange_n(&kvhc_poison_claimed, 1, __ATOMIC_SEQ_CST) == 0) {
    if (n >= sizeof kvhc_poison_msg) n = sizeof kvhc_poison_msg - 1;
    memcpy(kvhc_poison_msg, msg, n);
    kvhc_poison_msg[n] = '\0';
  }
  __atomic_store_n(&kvhc_poisoned, 1, __ATOMIC_SEQ_CST);
}

kvh_status kvhc_refuse(const char *fn) {
  if (__atomic_load_n(&kvhc_forked, __ATOMIC_ACQUIRE)) {
    kvhc_set_errorf("%s: called in a child process after fork(); libkvhygiene cannot be used "
                    "after fork (exec a new program or use a spawn start method)",
                    fn);
    return KVH_E_FORKED;
  }
  kvhc_set_errorf("%s: the library is poisoned by an earlier internal error (%s); "
                  "restart the process",
                  fn, kvhc_poison_msg);
  return KVH_E_POISONED;
}
