//go:build !linux

package cpuzero

// testMem returns n zero bytes.
func testMem(n int) []byte { return make([]byte, n) }
