/* test_dlopen.c — the library loads with a plain dlopen(RTLD_NOW) (every
 * symbol resolved at load, as on a machine without an NVIDIA driver), its
 * public symbols resolve, and private ones (kvhgo_*, kvhc_*, Go's runtime)
 * do not. Usage: test_dlopen path/to/libkvhygiene.so */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "kvhygiene.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s LIB\n", argv[0]);
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    fprintf(stderr, "dlopen(RTLD_NOW) failed: %s\n", dlerror());
    return 1;
  }
  int failed = 0;
  const char *(*version)(void) = (const char *(*)(void))dlsym(h, "kvh_version");
  uint32_t (*number)(void) = (uint32_t(*)(void))dlsym(h, "kvh_version_number");
  kvh_status (*cinit)(kvh_config *, size_t) =
      (kvh_status(*)(kvh_config *, size_t))dlsym(h, "kvh_config_init");
  if (!version || !number || !cinit) {
    fprintf(stderr, "public symbols missing\n");
    return 1;
  }
  if (strcmp(version(), "1.0.0") != 0 || number() != KVH_VERSION_NUMBER) {
    fprintf(stderr, "version %s / %u\n", version(), number());
    failed++;
  }
  kvh_config cfg;
  if (cinit(&cfg, sizeof cfg) != KVH_OK || cfg.struct_size != sizeof cfg) {
    fprintf(stderr, "kvh_config_init through dlsym failed\n");
    failed++;
  }
  const char *hidden[] = {"kvhgo_free", "kvhc_forked", "kvhc_set_error", "crosscall2",
                          "_cgo_topofstack", "x_cgo_init", "main"};
  for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
    if (dlsym(h, hidden[i]) != NULL) {
      fprintf(stderr, "private symbol %s is visible\n", hidden[i]);
      failed++;
    }
  }
  /* never dlclose: the Go runtime cannot be unloaded (header: THREADS AND PROCESSES) */
  printf("dlopen test: %s\n", failed ? "FAILED" : "OK");
  return failed ? 1 : 0;
}
