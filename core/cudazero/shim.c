// shim.c — dlopen/resolve the CUDA driver and call it through function pointers.
#include "shim.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// CUdriverProcAddressQueryResult / cuGetProcAddress flags (cuda.h, CUDA >= 11.3 / 12.0).
#define KVH_CU_GET_PROC_ADDRESS_LEGACY_STREAM 1ULL
#define KVH_CU_SYMBOL_FOUND 0

typedef kvh_CUresult (*kvh_getproc_v2)(const char *, void **, int, unsigned long long, int *);
typedef kvh_CUresult (*kvh_getproc_v1)(const char *, void **, int, unsigned long long);

// One entry per field of kvh_cu, in field order: the base name given to
// cuGetProcAddress and the versioned export names tried with dlsym.
struct kvh_sym {
  const char *base;
  const char *dl1;
  const char *dl2;
};

static const struct kvh_sym kvh_syms[] = {
    {"cuInit", "cuInit", NULL},
    {"cuDriverGetVersion", "cuDriverGetVersion", NULL},
    {"cuDeviceGet", "cuDeviceGet", NULL},
    {"cuDeviceGetCount", "cuDeviceGetCount", NULL},
    {"cuDeviceGetAttribute", "cuDeviceGetAttribute", NULL},
    {"cuDeviceGetUuid", "cuDeviceGetUuid_v2", "cuDeviceGetUuid"},
    {"cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRetain", NULL},
    {"cuCtxGetCurrent", "cuCtxGetCurrent", NULL},
    {"cuCtxGetDevice", "cuCtxGetDevice", NULL},
    {"cuCtxPushCurrent", "cuCtxPushCurrent_v2", "cuCtxPushCurrent"},
    {"cuCtxPopCurrent", "cuCtxPopCurrent_v2", "cuCtxPopCurrent"},
    {"cuPointerGetAttributes", "cuPointerGetAttributes", NULL},
    {"cuMemAlloc", "cuMemAlloc_v2", "cuMemAlloc"},
    {"cuMemFree", "cuMemFree_v2", "cuMemFree"},
    {"cuMemAllocHost", "cuMemAllocHost_v2", "cuMemAllocHost"},
    {"cuMemFreeHost", "cuMemFreeHost", NULL},
    {"cuMemsetD8Async", "cuMemsetD8Async", NULL},
    {"cuMemsetD32Async", "cuMemsetD32Async", NULL},
    {"cuMemcpyHtoDAsync", "cuMemcpyHtoDAsync_v2", "cuMemcpyHtoDAsync"},
    {"cuMemcpyDtoHAsync", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoHAsync"},
    {"cuModuleLoadData", "cuModuleLoadData", NULL},
    {"cuModuleGetFunction", "cuModuleGetFunction", NULL},
    {"cuLaunchKernel", "cuLaunchKernel", NULL},
    {"cuEventCreate", "cuEventCreate", NULL},
    {"cuEventRecord", "cuEventRecord", NULL},
    {"cuEventQuery", "cuEventQuery", NULL},
    {"cuEventSynchronize", "cuEventSynchronize", NULL},
    {"cuEventDestroy", "cuEventDestroy_v2", "cuEventDestroy"},
    {"cuStreamIsCapturing", "cuStreamIsCapturing", NULL},
    {"cuGetErrorName", "cuGetErrorName", NULL},
};

_Static_assert(sizeof(kvh_syms) / sizeof(kvh_syms[0]) == sizeof(kvh_cu) / sizeof(void *),
               "kvh_syms must list every kvh_cu field");

int kvhcu_cu_open(const char *path, kvh_cu *cu, char *err, size_t errlen, int *code,
                int *version, int *how) {
  memset(cu, 0, sizeof(*cu));
  *code = 0;
  *version = 0;
  *how = 0;
  dlerror();
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *e = dlerror();
    snprintf(err, errlen, "%s", e ? e : "dlopen failed");
    return KVH_CU_NO_LIBRARY;
  }
  // The library is never closed: function pointers stay valid for the process.
  kvh_CUresult (*init)(unsigned int) = (kvh_CUresult(*)(unsigned int))dlsym(h, "cuInit");
  kvh_CUresult (*getver)(int *) = (kvh_CUresult(*)(int *))dlsym(h, "cuDriverGetVersion");
  if (init == NULL || getver == NULL) {
    snprintf(err, errlen, "%s", init == NULL ? "cuInit" : "cuDriverGetVersion");
    return KVH_CU_NO_SYMBOL;
  }
  kvh_CUresult r = init(0);
  if (r == 0) r = getver(version);
  if (r != 0) {
    *code = r;
    cu->GetErrorName = (kvh_CUresult(*)(kvh_CUresult, const char **))dlsym(h, "cuGetErrorName");
    snprintf(err, errlen, "%s", "cuInit");
    return KVH_CU_INIT_FAILED;
  }
  void **slots = (void **)cu;
  size_t n = sizeof(kvh_syms) / sizeof(kvh_syms[0]);
  kvh_getproc_v2 gp2 = (kvh_getproc_v2)dlsym(h, "cuGetProcAddress_v2");
  kvh_getproc_v1 gp1 = (kvh_getproc_v1)dlsym(h, "cuGetProcAddress");
  // Ask for the symbol versions of CUDA 12.0 (or the driver's own, if older).
  int want = *version < 12000 ? *version : 12000;
  if (gp2 != NULL) {
    int status = 0;
    void *probe = NULL;
    if (gp2("cuInit", &probe, want, KVH_CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status) == 0 &&
        probe != NULL) {
      *how = KVH_RESOLVE_PROCADDR_V2;
      for (size_t i = 0; i < n; i++) {
        void *fn = NULL;
        status = 0;
        kvh_CUresult gr =
            gp2(kvh_syms[i].base, &fn, want, KVH_CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status);
        if (gr != 0 || status != KVH_CU_SYMBOL_FOUND || fn == NULL) {
          snprintf(err, errlen, "%s", kvh_syms[i].base);
          return KVH_CU_NO_SYMBOL;
        }
        slots[i] = fn;
      }
      return KVH_CU_OK;
    }
  }
  if (gp1 != NULL) {
    void *probe = NULL;
    if (gp1("cuInit", &probe, *version, KVH_CU_GET_PROC_ADDRESS_LEGACY_STREAM) == 0 &&
        probe != NULL) {
      *how = KVH_RESOLVE_PROCADDR_V1;
      for (size_t i = 0; i < n; i++) {
        void *fn = NULL;
        if (gp1(kvh_syms[i].base, &fn, *version, KVH_CU_GET_PROC_ADDRESS_LEGACY_STREAM) != 0 ||
            fn == NULL) {
          snprintf(err, errlen, "%s", kvh_syms[i].base);
          return KVH_CU_NO_SYMBOL;
        }
        slots[i] = fn;
      }
      return KVH_CU_OK;
    }
  }
  *how = KVH_RESOLVE_DLSYM;
  for (size_t i = 0; i < n; i++) {
    void *fn = dlsym(h, kvh_syms[i].dl1);
    if (fn == NULL && kvh_syms[i].dl2 != NULL) fn = dlsym(h, kvh_syms[i].dl2);
    if (fn == NULL) {
      snprintf(err, errlen, "%s", kvh_syms[i].dl1);
      return KVH_CU_NO_SYMBOL;
    }
    slots[i] = fn;
  }
  return KVH_CU_OK;
}

// CUpointer_attribute values (cuda.h): MEMORY_TYPE 2, DEVICE_ORDINAL 9,
// RANGE_START_ADDR 11, RANGE_SIZE 12.
kvh_CUresult kvhcu_ptr_attrs(const kvh_cu *cu, kvh_CUdeviceptr p, unsigned int *memtype,
                           int *ordinal, kvh_CUdeviceptr *start, size_t *size) {
  int attrs[4] = {2, 9, 11, 12};
  void *data[4] = {memtype, ordinal, start, size};
  *memtype = 0;
  *ordinal = -1;
  *start = 0;
  *size = 0;
  return cu->PointerGetAttributes(4, attrs, data, p);
}

kvh_CUresult kvhcu_launch(const kvh_cu *cu, kvh_CUfunction f, unsigned int grid, unsigned int block,
                        kvh_CUstream s, kvh_CUdeviceptr table, unsigned int n,
                        kvh_CUdeviceptr counter, kvh_CUdeviceptr result) {
  void *params[4] = {&table, &n, &counter, &result};
  return cu->LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, s, params, NULL);
}

kvh_CUresult kvhcu_pool_launch(const kvh_cu *cu, kvh_CUfunction f, unsigned int grid, unsigned int block,
                             uintptr_t s, kvh_CUdeviceptr regions, unsigned int nregions, kvh_CUdeviceptr ids,
                             unsigned int nblocks, unsigned int nchunk, kvh_CUdeviceptr counter,
                             kvh_CUdeviceptr result) {
  void *params[7] = {&regions, &nregions, &ids, &nblocks, &nchunk, &counter, &result};
  return cu->LaunchKernel(f, grid, 1, 1, block, 1, 1, 0, (kvh_CUstream)s, params, NULL);
}

const char *kvhcu_err_name(const kvh_cu *cu, kvh_CUresult r) {
  const char *name = NULL;
  if (cu->GetErrorName == NULL || cu->GetErrorName(r, &name) != 0 || name == NULL) return NULL;
  return name;
}
