/* shim.h — the CUDA driver entry points cudazero uses, resolved at run time.
 * No CUDA header is needed at build time: the handful of types used here are
 * declared with the driver API's ABI (CUresult is int, CUdeviceptr is a
 * 64-bit integer, handles are opaque pointers). */
#ifndef KVH_CUDAZERO_SHIM_H
#define KVH_CUDAZERO_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef int kvh_CUresult;
typedef unsigned long long kvh_CUdeviceptr;
typedef int kvh_CUdevice;
typedef void *kvh_CUcontext;
typedef void *kvh_CUmodule;
typedef void *kvh_CUfunction;
typedef void *kvh_CUstream;
typedef void *kvh_CUevent;

typedef struct kvh_cu {
  kvh_CUresult (*Init)(unsigned int);
  kvh_CUresult (*DriverGetVersion)(int *);
  kvh_CUresult (*DeviceGet)(kvh_CUdevice *, int);
  kvh_CUresult (*DeviceGetCount)(int *);
  kvh_CUresult (*DeviceGetAttribute)(int *, int, kvh_CUdevice);
  kvh_CUresult (*DeviceGetUuid)(unsigned char *, kvh_CUdevice);
  kvh_CUresult (*DevicePrimaryCtxRetain)(kvh_CUcontext *, kvh_CUdevice);
  kvh_CUresult (*CtxGetCurrent)(kvh_CUcontext *);
  kvh_CUresult (*CtxGetDevice)(kvh_CUdevice *);
  kvh_CUresult (*CtxPushCurrent)(kvh_CUcontext);
  kvh_CUresult (*CtxPopCurrent)(kvh_CUcontext *);
  kvh_CUresult (*PointerGetAttributes)(unsigned int, int *, void **, kvh_CUdeviceptr);
  kvh_CUresult (*MemAlloc)(kvh_CUdeviceptr *, size_t);
  kvh_CUresult (*MemFree)(kvh_CUdeviceptr);
  kvh_CUresult (*MemAllocHost)(void **, size_t);
  kvh_CUresult (*MemFreeHost)(void *);
  kvh_CUresult (*MemsetD8Async)(kvh_CUdeviceptr, unsigned char, size_t, kvh_CUstream);
  kvh_CUresult (*MemsetD32Async)(kvh_CUdeviceptr, unsigned int, size_t, kvh_CUstream);
  kvh_CUresult (*MemcpyHtoDAsync)(kvh_CUdeviceptr, const void *, size_t, kvh_CUstream);
  kvh_CUresult (*MemcpyDtoHAsync)(void *, kvh_CUdeviceptr, size_t, kvh_CUstream);
  kvh_CUresult (*ModuleLoadData)(kvh_CUmodule *, const void *);
  kvh_CUresult (*ModuleGetFunction)(kvh_CUfunction *, kvh_CUmodule, const char *);
  kvh_CUresult (*LaunchKernel)(kvh_CUfunction, unsigned int, unsigned int, unsigned int,
                               unsigned int, unsigned int, unsigned int, unsigned int,
                               kvh_CUstream, void **, void **);
  kvh_CUresult (*EventCreate)(kvh_CUevent *, unsigned int);
  kvh_CUresult (*EventRecord)(kvh_CUevent, kvh_CUstream);
  kvh_CUresult (*EventQuery)(kvh_CUevent);
  kvh_CUresult (*EventSynchronize)(kvh_CUevent);
  kvh_CUresult (*EventDestroy)(kvh_CUevent);
  kvh_CUresult (*StreamIsCapturing)(kvh_CUstream, int *);
  kvh_CUresult (*GetErrorName)(kvh_CUresult, const char **);
} kvh_cu;

/* Result of kvhcu_cu_open. */
enum {
  KVH_CU_OK = 0,
  KVH_CU_NO_LIBRARY = 1,  /* dlopen failed; err holds dlerror() */
  KVH_CU_NO_SYMBOL = 2,   /* a symbol is missing; err holds its name */
  KVH_CU_INIT_FAILED = 3  /* cuInit / cuDriverGetVersion failed; *code holds the CUresult */
};

/* Resolution method recorded in kvhcu_cu_open's *how. */
enum { KVH_RESOLVE_PROCADDR_V2 = 1, KVH_RESOLVE_PROCADDR_V1 = 2, KVH_RESOLVE_DLSYM = 3 };

int kvhcu_cu_open(const char *path, kvh_cu *cu, char *err, size_t errlen, int *code,
                int *version, int *how);

/* Trampolines: cgo cannot call C function pointers directly. */
kvh_CUresult kvhcu_ptr_attrs(const kvh_cu *cu, kvh_CUdeviceptr p, unsigned int *memtype,
                           int *ordinal, kvh_CUdeviceptr *start, size_t *size);
kvh_CUresult kvhcu_launch(const kvh_cu *cu, kvh_CUfunction f, unsigned int grid, unsigned int block,
                        kvh_CUstream s, kvh_CUdeviceptr table, unsigned int n,
                        kvh_CUdeviceptr counter, kvh_CUdeviceptr result);
/* One launch of a pool kernel (ptx.go): regions, nregions, ids, nblocks, nchunk, counter, result. */
kvh_CUresult kvhcu_pool_launch(const kvh_cu *cu, kvh_CUfunction f, unsigned int grid, unsigned int block,
                             uintptr_t s, kvh_CUdeviceptr regions, unsigned int nregions, kvh_CUdeviceptr ids,
                             unsigned int nblocks, unsigned int nchunk, kvh_CUdeviceptr counter,
                             kvh_CUdeviceptr result);
const char *kvhcu_err_name(const kvh_cu *cu, kvh_CUresult r);

#endif
