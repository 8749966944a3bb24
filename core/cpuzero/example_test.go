package cpuzero_test

import (
	"fmt"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
)

func ExampleZero() {
	kv := []byte("tenant A's prompt and answer")
	cpuzero.Zero(kv)
	fmt.Println(cpuzero.IsZero(kv), cpuzero.NonZeroBytes(kv))
	// Output: true 0
}

func ExampleSampleVerify() {
	key := []byte("per-tracer secret")
	buf := make([]byte, 1<<20)
	checked, nonzero := cpuzero.SampleVerify(buf, 1000, key, 42)
	fmt.Println(checked, nonzero)

	// An auditor with the key reproduces the positions and finds a dirty sampled word.
	pos := cpuzero.SamplePositions(uint64(len(buf)), 1000, key, 42)
	buf[pos[0]] = 0xff
	_, nonzero = cpuzero.SampleVerify(buf, 1000, key, 42)
	fmt.Println(len(pos), nonzero)
	// Output:
	// 8000 0
	// 1000 1
}
