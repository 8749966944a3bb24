package core

import (
	"slices"
	"testing"
	"time"

	"github.com/kvhygiene/kvhygiene/core/cudazero"
)

// nopDriver is a CUDA driver whose pool release enqueues nothing: what
// BenchmarkPoolReleaseCUDAAsync measures is the tracer's own host cost.
type nopDriver struct{ fakeCUDA }
type nopOp struct{}

func (nopOp) Wait() (uint64, error) { return 0, nil }
func (n *nopDriver) ZeroPoolAsync(o int, s uint64, l *cudazero.PoolLayout, blocks []uint32, verify bool) (cudaOp, error) {
	return nopOp{}, nil
}

// BenchmarkPoolReleaseCUDAAsync is the tracer's share of the host cost of
// one async pool release of 1024 blocks x 64 regions (the driver's share is
// measured on a GPU by cudazero's TestRealHostCostProbe); the metric is the
// median of the release calls alone.
func BenchmarkPoolReleaseCUDAAsync(b *testing.B) {
	f := &nopDriver{}
	old := cudaLoad
	cudaLoad = func() (cudaDriver, error) { return f, nil }
	defer func() { cudaLoad = old }()
	tr, _ := newTracer(b, nil)
	var regs []PoolRegion
	for r := uint64(0); r < 64; r++ {
		regs = append(regs, PoolRegion{Base: 1<<40 + r*(64<<10), Stride: 64 * (64 << 10), BlockBytes: 32 << 10})
	}
	ph, err := tr.PoolRegister(PoolDesc{Device: DeviceCUDA, NumBlocks: 1024, Regions: regs, Model: "m"})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]uint32, 1024)
	for i := range ids {
		ids[i] = uint32(i)
	}
	var xs []float64
	for i := 0; i < b.N; i++ {
		if err := tr.PoolAssign(ph, ids, "t", "r"); err != nil {
			b.Fatal(err)
		}
		st := time.Now()
		if _, err := tr.PoolRelease(ph, ids, true); err != nil {
			b.Fatal(err)
		}
		xs = append(xs, float64(time.Since(st).Nanoseconds()))
		if _, err := tr.PoolSync(ph); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(xs)
	b.ReportMetric(xs[len(xs)/2], "release-median-ns")
}

// BenchmarkMarkReleasing is the release path's id check: 1024 consecutive
// assigned blocks of a 16384-block pool (and the reset of their states).
func BenchmarkMarkReleasing(b *testing.B) {
	p := &pool{blocks: make([]block, 16384), state: make([]uint8, 16384)}
	ids := make([]uint32, 1024)
	for i := range ids {
		ids[i] = uint32(4096 + i)
		p.state[ids[i]] = bAssigned
	}
	for b.Loop() {
		if err := markReleasing(p, ids); err != nil {
			b.Fatal(err)
		}
		setStates(p.state, ids, bAssigned)
	}
}
