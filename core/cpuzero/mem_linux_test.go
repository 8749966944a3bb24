package cpuzero

import "golang.org/x/sys/unix"

// testMem returns n zero bytes outside the Go heap (anonymous mmap, never unmapped: the
// test process is short-lived). The race detector does not track such memory, so the
// canary copies and comparisons of the exhaustive tests stay cheap under -race; the
// assembly kernels are not instrumented anyway.
func testMem(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		panic("cpuzero test: mmap: " + err.Error())
	}
	return b
}
