/* status.c — the pure-C part of the API: status names and the version. These
 * never enter the Go runtime, so they also work in a forked child and after
 * poisoning. */
#include "kvh_internal.h"

#define KVHC_STR2(x) #x
#define KVHC_STR(x) KVHC_STR2(x)

const char *kvh_version(void) {
  return KVHC_STR(KVH_VERSION_MAJOR) "." KVHC_STR(KVH_VERSION_MINOR) "." KVHC_STR(KVH_VERSION_PATCH);
}

uint32_t kvh_version_number(void) { return (uint32_t)KVH_VERSION_NUMBER; }

const char *kvh_status_str(kvh_status status) {
  switch (status) {
  case KVH_OK: return "KVH_OK";
  case KVH_E_INVALID_ARG: return "KVH_E_INVALID_ARG";
  case KVH_E_NULL_ARG: return "KVH_E_NULL_ARG";
  case KVH_E_STRUCT_SIZE: return "KVH_E_STRUCT_SIZE";
  case KVH_E_INVALID_ID: return "KVH_E_INVALID_ID";
  case KVH_E_UNKNOWN_HANDLE: return "KVH_E_UNKNOWN_HANDLE";
  case KVH_E_FREED: return "KVH_E_FREED";
  case KVH_E_STATE: return "KVH_E_STATE";
  case KVH_E_COVERAGE: return "KVH_E_COVERAGE";
  case KVH_E_QUARANTINED: return "KVH_E_QUARANTINED";
  case KVH_E_ISOLATION: return "KVH_E_ISOLATION";
  case KVH_E_POLICY: return "KVH_E_POLICY";
  case KVH_E_VERIFY: return "KVH_E_VERIFY";
  case KVH_E_PENDING: return "KVH_E_PENDING";
  case KVH_E_UNSUPPORTED: return "KVH_E_UNSUPPORTED";
  case KVH_E_DEVICE: return "KVH_E_DEVICE";
  case KVH_E_NOMEM: return "KVH_E_NOMEM";
  case KVH_E_IO: return "KVH_E_IO";
  case KVH_E_LOG: return "KVH_E_LOG";
  case KVH_E_BUFFER_TOO_SMALL: return "KVH_E_BUFFER_TOO_SMALL";
  case KVH_E_CLOSED: return "KVH_E_CLOSED";
  case KVH_E_FORKED: return "KVH_E_FORKED";
  case KVH_E_POISONED: return "KVH_E_POISONED";
  case KVH_E_INTERNAL: return "KVH_E_INTERNAL";
  case KVH_E_CONFIG: return "KVH_E_CONFIG";
  case KVH_E_BUSY: return "KVH_E_BUSY";
  default: return "KVH_E_UNKNOWN";
  }
}
