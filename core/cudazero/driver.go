package cudazero

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"

static kvh_CUresult kvh_cuDeviceGet(const kvh_cu *c, kvh_CUdevice *d, int o) { return c->DeviceGet(d, o); }
static kvh_CUresult kvh_cuDeviceGetCount(const kvh_cu *c, int *n) { return c->DeviceGetCount(n); }
static kvh_CUresult kvh_cuDeviceGetUuid(const kvh_cu *c, unsigned char *u, kvh_CUdevice d) { return c->DeviceGetUuid(u, d); }
static kvh_CUresult kvh_cuDevicePrimaryCtxRetain(const kvh_cu *c, kvh_CUcontext *x, kvh_CUdevice d) { return c->DevicePrimaryCtxRetain(x, d); }
static kvh_CUresult kvh_cuCtxGetCurrent(const kvh_cu *c, kvh_CUcontext *x) { return c->CtxGetCurrent(x); }
static kvh_CUresult kvh_cuCtxGetDevice(const kvh_cu *c, kvh_CUdevice *d) { return c->CtxGetDevice(d); }
static kvh_CUresult kvh_cuCtxPushCurrent(const kvh_cu *c, kvh_CUcontext x) { return c->CtxPushCurrent(x); }
static kvh_CUresult kvh_cuCtxPopCurrent(const kvh_cu *c) { kvh_CUcontext x; return c->CtxPopCurrent(&x); }
static kvh_CUresult kvh_cuStreamIsCapturing(const kvh_cu *c, uintptr_t s, int *st) { return c->StreamIsCapturing((kvh_CUstream)s, st); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrNoDriver is wrapped by every error that means "there is no usable CUDA
// driver in this process": libcuda cannot be opened, cuInit fails, or a
// required entry point is missing.
var ErrNoDriver = errors.New("cudazero: no CUDA driver")

// ErrMissingSymbol is wrapped (together with ErrNoDriver) when the driver
// library lacks an entry point cudazero needs.
var ErrMissingSymbol = errors.New("cudazero: driver symbol missing")

// ErrInvalidRange is wrapped when a range is not device memory of the declared
// device, is empty where that is not allowed, overflows, or runs past the end
// of its allocation. No device work is ever issued for such a range.
var ErrInvalidRange = errors.New("cudazero: invalid device range")

// ErrCapturing is wrapped when the stream is being captured into a CUDA graph:
// stream-ordered zeroization and the event it records cannot be captured.
var ErrCapturing = errors.New("cudazero: stream is capturing a CUDA graph")

// maxCachedDevices is how many device ordinals Driver caches handles for.
const maxCachedDevices = 64

// CUDA result codes cudazero looks at (cuda.h CUresult).
const (
	cuSuccess     = 0
	cuOutOfMemory = 2
	cuNotReady    = 600
)

// Error is a failed CUDA driver call.
type Error struct {
	Op   string // the driver call or step, e.g. "cuLaunchKernel(kvh_scatter_zero)"
	Code int    // the CUresult
	Name string // cuGetErrorName, e.g. "CUDA_ERROR_ILLEGAL_ADDRESS"
}

func (e *Error) Error() string {
	return fmt.Sprintf("cudazero: %s: %s (%d)", e.Op, e.Name, e.Code)
}

// OutOfMemory reports whether the driver ran out of memory (CUDA_ERROR_OUT_OF_MEMORY).
func (e *Error) OutOfMemory() bool { return e.Code == cuOutOfMemory }

type symbolError struct {
	path, name string
}

func (e *symbolError) Error() string {
	return fmt.Sprintf("cudazero: CUDA driver %s lacks entry point %s", e.path, e.name)
}

func (e *symbolError) Is(target error) bool {
	return target == ErrNoDriver || target == ErrMissingSymbol
}

// Driver is the loaded CUDA driver. It is safe for concurrent use.
type Driver struct {
	cu      *C.kvh_cu // C memory: the resolved entry points
	path    string
	version int
	how     int

	// devs caches cuDeviceGet per ordinal (CUdevice+1; 0: not asked yet):
	// the answer never changes in a process and every call needs it.
	devs [maxCachedDevices]atomic.Int32

	mu      sync.Mutex
	primary map[int]C.kvh_CUcontext       // retained primary contexts (never released)
	ctxs    map[C.kvh_CUcontext]*ctxState // module + resources per context
}

var (
	loadOnce sync.Once
	loaded   *Driver
	loadErr  error
)

// LibraryPath is the driver library Load opens: $KVH_LIBCUDA or "libcuda.so.1".
func LibraryPath() string {
	if p := os.Getenv("KVH_LIBCUDA"); p != "" {
		return p
	}
	return "libcuda.so.1"
}

// Load opens the CUDA driver once per process (later calls return the same
// driver or the same error). KVH_LIBCUDA overrides the library path. Entry
// points are resolved with cuGetProcAddress_v2 (CUDA >= 12.0), else
// cuGetProcAddress (11.3+), else dlsym of the versioned export names; the
// library is never closed.
func Load() (*Driver, error) {
	loadOnce.Do(func() { loaded, loadErr = open(LibraryPath()) })
	return loaded, loadErr
}

// open loads the driver at path (a fresh Driver; dlopen itself is refcounted).
func open(path string) (*Driver, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	cu := (*C.kvh_cu)(C.calloc(1, C.size_t(unsafe.Sizeof(C.kvh_cu{}))))
	if cu == nil {
		return nil, fmt.Errorf("cudazero: load %s: out of host memory", path)
	}
	var errbuf [512]C.char
	var code, version, how C.int
	rc := C.kvhcu_cu_open(cpath, cu, &errbuf[0], C.size_t(len(errbuf)), &code, &version, &how)
	msg := C.GoString(&errbuf[0])
	switch rc {
	case C.KVH_CU_OK:
	case C.KVH_CU_NO_LIBRARY:
		C.free(unsafe.Pointer(cu))
		return nil, fmt.Errorf("%w: %s", ErrNoDriver, msg)
	case C.KVH_CU_NO_SYMBOL:
		C.free(unsafe.Pointer(cu))
		return nil, &symbolError{path: path, name: msg}
	default:
		name := ""
		if cu.GetErrorName != nil {
			name = cString(C.kvhcu_err_name(cu, code))
		}
		C.free(unsafe.Pointer(cu))
		if name == "" {
			name = fmt.Sprintf("CUresult %d", int(code))
		}
		return nil, fmt.Errorf("%w: %s: %s failed: %s", ErrNoDriver, path, msg, name)
	}
	return &Driver{
		cu:      cu,
		path:    path,
		version: int(version),
		how:     int(how),
		primary: map[int]C.kvh_CUcontext{},
		ctxs:    map[C.kvh_CUcontext]*ctxState{},
	}, nil
}

func cString(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// check turns a CUresult into nil or an *Error naming the call.
func (d *Driver) check(op string, r C.kvh_CUresult) error {
	if r == cuSuccess {
		return nil
	}
	name := cString(C.kvhcu_err_name(d.cu, r))
	if name == "" {
		name = fmt.Sprintf("CUDA_ERROR_%d", int(r))
	}
	return &Error{Op: op, Code: int(r), Name: name}
}

// Path is the library the driver was loaded from.
func (d *Driver) Path() string { return d.path }

// Resolver says how entry points were resolved: "cuGetProcAddress_v2",
// "cuGetProcAddress" or "dlsym".
func (d *Driver) Resolver() string {
	switch d.how {
	case C.KVH_RESOLVE_PROCADDR_V2:
		return "cuGetProcAddress_v2"
	case C.KVH_RESOLVE_PROCADDR_V1:
		return "cuGetProcAddress"
	default:
		return "dlsym"
	}
}

// DriverVersion is cuDriverGetVersion (e.g. 12040 for CUDA 12.4).
func (d *Driver) DriverVersion() (int, error) { return d.version, nil }

// DeviceCount is cuDeviceGetCount.
func (d *Driver) DeviceCount() (int, error) {
	var n C.int
	if err := d.check("cuDeviceGetCount", C.kvh_cuDeviceGetCount(d.cu, &n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

func (d *Driver) device(ordinal int) (C.kvh_CUdevice, error) {
	if ordinal < 0 {
		return 0, fmt.Errorf("%w: device ordinal %d is negative", ErrInvalidRange, ordinal)
	}
	if ordinal < maxCachedDevices {
		if v := d.devs[ordinal].Load(); v != 0 {
			return C.kvh_CUdevice(v - 1), nil
		}
	}
	var dev C.kvh_CUdevice
	if err := d.check(fmt.Sprintf("cuDeviceGet(%d)", ordinal), C.kvh_cuDeviceGet(d.cu, &dev, C.int(ordinal))); err != nil {
		return 0, err
	}
	if ordinal < maxCachedDevices && dev >= 0 && int64(dev) < math.MaxInt32 {
		d.devs[ordinal].Store(int32(dev) + 1)
	}
	return dev, nil
}

// DeviceUUID is the device's UUID from cuDeviceGetUuid, formatted like
// nvidia-smi: "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
func (d *Driver) DeviceUUID(ordinal int) (string, error) {
	dev, err := d.device(ordinal)
	if err != nil {
		return "", err
	}
	var u [16]C.uchar
	if err := d.check("cuDeviceGetUuid", C.kvh_cuDeviceGetUuid(d.cu, &u[0], dev)); err != nil {
		return "", err
	}
	var b [16]byte
	for i := range u {
		b[i] = byte(u[i])
	}
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// withContext runs f with a CUDA context of device ordinal current on a
// locked OS thread. If the calling thread already has a current context on
// that device (the normal case when an engine such as PyTorch calls in through
// the C ABI: the cgo callback runs on the caller's thread), that context is
// used as is. Otherwise the device's primary context (the one the CUDA runtime
// and PyTorch use) is retained once per process and pushed for the duration of
// f, then popped, so the caller's context stack is left as it was.
//
// ordinal -1 means "the thread's current context, whatever its device, else
// device 0's primary context".
func (d *Driver) withContext(ordinal int, f func(ctx C.kvh_CUcontext) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ordinal < 0 {
		var cur C.kvh_CUcontext
		if err := d.check("cuCtxGetCurrent", C.kvh_cuCtxGetCurrent(d.cu, &cur)); err != nil {
			return err
		}
		if cur != nil {
			return f(cur)
		}
		ordinal = 0
	}
	dev, err := d.device(ordinal)
	if err != nil {
		return err
	}
	var cur C.kvh_CUcontext
	if err := d.check("cuCtxGetCurrent", C.kvh_cuCtxGetCurrent(d.cu, &cur)); err != nil {
		return err
	}
	if cur != nil {
		if d.loadedOn(cur, ordinal) {
			return f(cur)
		}
		var cdev C.kvh_CUdevice
		if C.kvh_cuCtxGetDevice(d.cu, &cdev) == cuSuccess && cdev == dev {
			return f(cur)
		}
	}
	prim, err := d.primaryContext(ordinal, dev)
	if err != nil {
		return err
	}
	if err := d.check("cuCtxPushCurrent", C.kvh_cuCtxPushCurrent(d.cu, prim)); err != nil {
		return err
	}
	ferr := f(prim)
	if err := d.check("cuCtxPopCurrent", C.kvh_cuCtxPopCurrent(d.cu)); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// loadedOn reports whether ctx is a context whose state (module, slots) was
// loaded for device ordinal: such a context needs no cuCtxGetDevice.
func (d *Driver) loadedOn(ctx C.kvh_CUcontext, ordinal int) bool {
	d.mu.Lock()
	cs := d.ctxs[ctx]
	d.mu.Unlock()
	return cs != nil && cs.ordinal == ordinal
}

func (d *Driver) primaryContext(ordinal int, dev C.kvh_CUdevice) (C.kvh_CUcontext, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.primary[ordinal]; ok {
		return c, nil
	}
	var c C.kvh_CUcontext
	if err := d.check(fmt.Sprintf("cuDevicePrimaryCtxRetain(%d)", ordinal), C.kvh_cuDevicePrimaryCtxRetain(d.cu, &c, dev)); err != nil {
		return nil, err
	}
	d.primary[ordinal] = c
	return c, nil
}

// CheckStream returns an error wrapping ErrCapturing when stream is being
// captured into a CUDA graph (cuStreamIsCapturing: ACTIVE or INVALIDATED).
// It runs in the calling thread's current context, else in device 0's primary
// context; CheckStreamOn names the device.
func (d *Driver) CheckStream(stream uint64) error {
	return d.withContext(-1, func(C.kvh_CUcontext) error { return d.checkStream(stream) })
}

// CheckStreamOn is CheckStream in a context of device ordinal.
func (d *Driver) CheckStreamOn(ordinal int, stream uint64) error {
	return d.withContext(ordinal, func(C.kvh_CUcontext) error { return d.checkStream(stream) })
}

func (d *Driver) checkStream(stream uint64) error {
	var st C.int
	if err := d.check("cuStreamIsCapturing", C.kvh_cuStreamIsCapturing(d.cu, C.uintptr_t(stream), &st)); err != nil {
		return err
	}
	switch st {
	case 0: // CU_STREAM_CAPTURE_STATUS_NONE
		return nil
	case 1: // CU_STREAM_CAPTURE_STATUS_ACTIVE
		return fmt.Errorf("%w: stream %#x is being captured (CU_STREAM_CAPTURE_STATUS_ACTIVE); sanitize outside the capture or after cuStreamEndCapture", ErrCapturing, stream)
	default: // CU_STREAM_CAPTURE_STATUS_INVALIDATED
		return fmt.Errorf("%w: stream %#x has an invalidated capture (CU_STREAM_CAPTURE_STATUS_INVALIDATED); end the capture first", ErrCapturing, stream)
	}
}
