/* lasterror.c — kvh_last_error: one message buffer per OS thread. cgo runs an
 * exported Go function on the C thread that called it, so a message written
 * here during a kvh_* call lands in the caller's thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kvh_internal.h"

#define KVHC_ERRBUF 1024

static __thread char kvhc_errbuf[KVHC_ERRBUF];

const char *kvh_last_error(void) { return kvhc_errbuf; }

void kvhc_set_error(const char *msg, size_t n) {
  if (n >= KVHC_ERRBUF) {
    n = KVHC_ERRBUF - 1;
    /* do not cut a UTF-8 sequence in half */
    while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) n--;
  }
  if (n > 0) memcpy(kvhc_errbuf, msg, n);
  kvhc_errbuf[n] = '\0';
}

void kvhc_set_errorf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kvhc_errbuf, KVHC_ERRBUF, fmt, ap);
  va_end(ap);
}
