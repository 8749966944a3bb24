// Uses only the C ABI target (kvhygiene::kvhygiene): header + library.
#include <kvhygiene.h>

#include <cstdio>

int main() {
  const unsigned major = kvh_version_number() / 10000;
  std::printf("consumer_c: library %s (major %u, header major %d), %s\n", kvh_version(), major,
              KVH_VERSION_MAJOR, kvh_status_str(KVH_E_FREED));
  return major == KVH_VERSION_MAJOR && kvh_tracer_close(nullptr) == KVH_E_NULL_ARG ? 0 : 1;
}
