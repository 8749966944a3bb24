/* kvh_internal.h — private declarations shared by the C files of capi and its
 * cgo preambles. Nothing here is exported from the .so: the version script
 * (kvhygiene.map) keeps only kvh_* global, and every private name uses the
 * kvhc_ (C) or kvhgo_ (Go) prefix, which that pattern does not match. */
#ifndef KVH_INTERNAL_H
#define KVH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kvhygiene.h"

/* Set by the pthread_atfork child handler (fork.c). Read with __atomic. */
extern int kvhc_forked;
/* Set once when an internal panic was recovered (poison.c). */
extern int kvhc_poisoned;

/* Thread-local last error (lasterror.c). msg need not be NUL-terminated. */
void kvhc_set_error(const char *msg, size_t n);
void kvhc_set_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Poison the library; msg (n bytes) is kept for later KVH_E_POISONED messages. */
void kvhc_poison(const char *msg, size_t n);
/* Copies the poison reason into the calling thread's last error, prefixed by fn. */
kvh_status kvhc_refuse(const char *fn);

#endif
