package cpuzerobench

import (
	"fmt"
	"testing"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
)

var benchSizes = []int{4 << 10, 64 << 10, 2 << 20, 64 << 20}

// BenchmarkZero compares cpuzero.Zero (single thread: the parallel threshold is raised)
// with glibc memset and Go's clear on the same buffer.
func BenchmarkZero(b *testing.B) {
	nt, par := cpuzero.Thresholds()
	cpuzero.SetThresholds(nt, 1<<62)
	defer cpuzero.SetThresholds(nt, par)
	for _, n := range benchSizes {
		buf := make([]byte, n)
		run := func(name string, f func(int)) {
			b.Run(fmt.Sprintf("%s/%dKiB", name, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				f(1)
				b.ResetTimer()
				f(b.N)
			})
		}
		run("cpuzero-"+cpuzero.Kernel(), func(it int) {
			for range it {
				cpuzero.Zero(buf)
			}
		})
		run("memset", func(it int) { MemsetLoop(buf, it) })
		run("clear", func(it int) {
			for range it {
				clear(buf)
			}
		})
	}
}

// BenchmarkVerify compares cpuzero.IsZero with the C OR-reduce.
func BenchmarkVerify(b *testing.B) {
	nt, par := cpuzero.Thresholds()
	cpuzero.SetThresholds(nt, 1<<62)
	defer cpuzero.SetThresholds(nt, par)
	for _, n := range benchSizes {
		buf := make([]byte, n)
		b.Run(fmt.Sprintf("cpuzero-%s/%dKiB", cpuzero.Kernel(), n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if !cpuzero.IsZero(buf) {
					b.Fatal("not zero")
				}
			}
		})
		b.Run(fmt.Sprintf("c-or/%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ResetTimer()
			if ORLoop(buf, b.N) {
				b.Fatal("not zero")
			}
		})
	}
}
