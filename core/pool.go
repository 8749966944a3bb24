package core

import (
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/kvhygiene/kvhygiene/core/cudazero"
	"github.com/kvhygiene/kvhygiene/forensic"
)

// PoolRegion is one region-per-block entry: block b is
// [Base + b*Stride, + BlockBytes).
type PoolRegion struct{ Base, Stride, BlockBytes uint64 }

// PoolDesc describes a paged KV layout (kvh_pool_desc).
type PoolDesc struct {
	Device    Device
	Ordinal   int
	NumBlocks uint32
	Stream    uint64
	Regions   []PoolRegion
	Model     string // required
	Name      string // optional label
	Verify    VerifyMode
}

// PoolHandle identifies a pool: tracer tag (16 bits) | pool id (32 bits).
type PoolHandle uint64

// String is the decimal form used in the log.
func (p PoolHandle) String() string { return strconv.FormatUint(uint64(p), 10) }

const (
	maxPoolBlocks  = 1 << 26
	maxPoolRegions = 1 << 16
	parallelBytes  = 8 << 20
)

// block states
const (
	bFree uint8 = iota // clean: never used, or sanitized since its last use
	bAssigned
	bReleasing // async device release enqueued
	bQuarantined
)

var blockStateNames = [...]string{"free", "assigned", "releasing", "quarantined"}

// block is who holds (or last held) a pool block; its state is in
// pool.state, a dense array the release path scans.
type block struct {
	tenant  string // current (assigned) or last owner
	request string
}

type poolPending struct {
	op     cudaOp
	blocks []uint32
	bytes  uint64
	start  int64
	verify VerifyMode
}

type pool struct {
	mu          sync.Mutex
	h           PoolHandle
	device      Device
	ordinal     int
	stream      uint64
	regions     []PoolRegion
	layout      *cudazero.PoolLayout // CUDA pools: the regions, checked once for every release
	perBlock    uint64               // sum of the regions' block_bytes
	model, name string
	verify      VerifyMode
	samples     int
	blocks      []block
	state       []uint8 // per block: bFree, bAssigned, bReleasing or bQuarantined
	pending     []*poolPending
	seen        []uint64 // checkBlocks' scratch bitmap, one bit per block
	quarantined int
	gone        bool
}

// PoolRegister validates and registers a paged layout. Regions must not
// overlap (no block of one entry may intersect a block of another; the
// interleaved FlashInfer layout is fine), block_bytes <= stride unless
// NumBlocks == 1, no address arithmetic may overflow, and for CUDA every
// region lies inside one device allocation. Blocks start free and clean.
func (t *Tracer) PoolRegister(d PoolDesc) (PoolHandle, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	if err := ValidateID("model_id", d.Model); err != nil {
		return 0, err
	}
	if err := validateOptID("name", d.Name); err != nil {
		return 0, err
	}
	if d.NumBlocks == 0 || d.NumBlocks > maxPoolBlocks {
		return 0, errorf(StatusInvalidArg, "pool_register: num_blocks %d is outside 1..%d", d.NumBlocks, maxPoolBlocks)
	}
	if len(d.Regions) == 0 || len(d.Regions) > maxPoolRegions {
		return 0, errorf(StatusInvalidArg, "pool_register: %d regions, need 1..%d", len(d.Regions), maxPoolRegions)
	}
	verify := d.Verify
	switch verify {
	case VerifyDefault:
		verify = VerifyFull
	case VerifyNone, VerifySampled, VerifyFull:
	default:
		return 0, errorf(StatusInvalidArg, "pool_register: verify %d is not a kvh_verify_mode", d.Verify)
	}
	switch d.Device {
	case DeviceCPU:
		if d.Ordinal != 0 {
			return 0, errorf(StatusInvalidArg, "pool_register: device_ordinal %d must be 0 on the CPU", d.Ordinal)
		}
	case DeviceCUDA:
		if d.Ordinal < 0 {
			return 0, errorf(StatusInvalidArg, "pool_register: device_ordinal %d is negative", d.Ordinal)
		}
	default:
		return 0, errorf(StatusInvalidArg, "pool_register: device %d is not a kvh_device", d.Device)
	}
	ext := make([]uint64, len(d.Regions))
	for i, r := range d.Regions {
		e, err := regionExtent(i, r, d.NumBlocks)
		if err != nil {
			return 0, err
		}
		ext[i] = e
	}
	if err := checkOverlap(d.Regions, ext, d.NumBlocks); err != nil {
		return 0, err
	}
	for i, r := range d.Regions {
		var err error
		if d.Device == DeviceCUDA {
			err = t.poolValidateCUDA(d.Ordinal, cudazero.Range{Ptr: r.Base, Len: ext[i]})
		} else {
			err = checkMapped("pool_register: region "+strconv.Itoa(i), r.Base, ext[i])
		}
		if err != nil {
			return 0, err
		}
	}
	p := &pool{device: d.Device, ordinal: d.Ordinal, stream: d.Stream, regions: slices.Clone(d.Regions),
		model: d.Model, name: d.Name, verify: verify, samples: t.cfg.VerifySamplesDefault,
		blocks: make([]block, d.NumBlocks), state: make([]uint8, d.NumBlocks)}
	var devRegions []cudazero.PoolRegion
	for _, r := range p.regions {
		p.perBlock += r.BlockBytes
		if p.device == DeviceCUDA {
			devRegions = append(devRegions, cudazero.PoolRegion{Base: r.Base, Stride: r.Stride, BlockBytes: r.BlockBytes})
		}
	}
	if p.device == DeviceCUDA {
		l, err := cudazero.NewPoolLayout(devRegions, uint64(d.NumBlocks))
		if err != nil {
			return 0, cudaErr("pool_register", err)
		}
		p.layout = l
	}
	t.poolMu.Lock()
	defer t.poolMu.Unlock()
	if t.poolSeq == ^uint32(0) {
		return 0, errorf(StatusNoMem, "pool_register: pool ids exhausted")
	}
	t.poolSeq++
	p.h = PoolHandle(uint64(t.tag)<<(idxBits+genBits) | uint64(t.poolSeq))
	t.pools[t.poolSeq] = p
	return p.h, nil
}

func regionExtent(i int, r PoolRegion, n uint32) (uint64, error) {
	if r.Base == 0 {
		return 0, errorf(StatusInvalidArg, "pool_register: region %d has base 0", i)
	}
	if r.BlockBytes == 0 {
		return 0, errorf(StatusInvalidArg, "pool_register: region %d has block_bytes 0", i)
	}
	if n > 1 && r.BlockBytes > r.Stride {
		return 0, errorf(StatusInvalidArg, "pool_register: region %d block_bytes %d exceeds block_stride %d (blocks would overlap)", i, r.BlockBytes, r.Stride)
	}
	hi, lo := bits.Mul64(uint64(n-1), r.Stride)
	e, c := bits.Add64(lo, r.BlockBytes, 0)
	if hi != 0 || c != 0 {
		return 0, errorf(StatusInvalidArg, "pool_register: region %d extent overflows (%d blocks x stride %d)", i, n, r.Stride)
	}
	if _, c := bits.Add64(r.Base, e, 0); c != 0 {
		return 0, errorf(StatusInvalidArg, "pool_register: region %d base 0x%x + extent %d overflows", i, r.Base, e)
	}
	return e, nil
}

// checkOverlap refuses any two regions with intersecting blocks. Regions
// whose extents do not overlap are skipped; same-stride pairs are decided
// exactly in O(1) (periodic layout), others by merging their block lists.
func checkOverlap(rs []PoolRegion, ext []uint64, n uint32) error {
	ord := make([]int, len(rs))
	for i := range ord {
		ord[i] = i
	}
	sort.Slice(ord, func(a, b int) bool { return rs[ord[a]].Base < rs[ord[b]].Base })
	for x := 0; x < len(ord); x++ {
		i := ord[x]
		endI := rs[i].Base + ext[i]
		for y := x + 1; y < len(ord); y++ {
			j := ord[y]
			if rs[j].Base >= endI {
				break
			}
			if blocksIntersect(rs[i], rs[j], n) {
				return errorf(StatusInvalidArg, "pool_register: regions %d and %d overlap", i, j)
			}
		}
	}
	return nil
}

// blocksIntersect reports whether a block of a intersects a block of b,
// with a.Base <= b.Base.
func blocksIntersect(a, b PoolRegion, n uint32) bool {
	if a.Base == b.Base {
		return true
	}
	if n == 1 {
		return b.Base < a.Base+a.BlockBytes
	}
	if a.Stride == b.Stride {
		s := a.Stride
		delta := b.Base - a.Base
		q, r := delta/s, delta%s
		// block m of b starts at offset r inside block q+m of a's period.
		if r < a.BlockBytes && q < uint64(n) {
			return true
		}
		if r+b.BlockBytes > s && q+1 < uint64(n) {
			return true
		}
		return false
	}
	// general case: merge the two sorted block sequences
	var i, j uint64
	for i < uint64(n) && j < uint64(n) {
		as := a.Base + i*a.Stride
		bs := b.Base + j*b.Stride
		ae, be := as+a.BlockBytes, bs+b.BlockBytes
		if as < be && bs < ae {
			return true
		}
		if ae <= bs {
			i++
		} else {
			j++
		}
	}
	return false
}

func (t *Tracer) poolLookup(ph PoolHandle) (*pool, error) {
	if ph == 0 {
		return nil, errorf(StatusUnknownHandle, "pool handle 0 is never valid")
	}
	if uint16(uint64(ph)>>(idxBits+genBits)) != t.tag || uint64(ph)&(1<<(idxBits+genBits)-1) > uint64(^uint32(0)) {
		return nil, errorf(StatusUnknownHandle, "pool handle %d was not issued by this tracer", uint64(ph))
	}
	id := uint32(ph)
	t.poolMu.RLock()
	p, ok := t.pools[id]
	seq := t.poolSeq
	t.poolMu.RUnlock()
	if !ok {
		if id != 0 && id <= seq {
			return nil, errorf(StatusFreed, "pool %d was unregistered", uint64(ph))
		}
		return nil, errorf(StatusUnknownHandle, "pool handle %d was never issued", uint64(ph))
	}
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return nil, errorf(StatusFreed, "pool %d was unregistered", uint64(ph))
	}
	return p, nil
}

// checkBlocks validates ids (range, duplicates) with the pool's scratch
// bitmap. p is locked.
func checkBlocks(op string, p *pool, ids []uint32) error {
	if len(ids) == 0 {
		return errorf(StatusInvalidArg, "%s: no blocks given", op)
	}
	if p.seen == nil {
		p.seen = make([]uint64, (len(p.blocks)+63)/64)
	}
	seen, n := p.seen, len(p.state)
	clear(seen)
	// The bitmap word of the current id stays in cur while the ids stay in
	// it (runs of consecutive ids, the common case), so the loop carries no
	// store-to-load dependency through memory from one id to the next.
	cw, cur := -1, uint64(0)
	for _, b := range ids {
		if int(b) >= n {
			return errorf(StatusInvalidArg, "%s: block %d is out of range (pool has %d blocks)", op, b, n)
		}
		if w := int(b / 64); w != cw {
			if cw >= 0 {
				seen[cw] = cur
			}
			cw, cur = w, seen[w]
		}
		bit := uint64(1) << (b % 64)
		if cur&bit != 0 {
			return errorf(StatusInvalidArg, "%s: block %d is listed twice", op, b)
		}
		cur |= bit
	}
	return nil
}

// markReleasing checks the ids of a pool_release (in range, listed once,
// every block assigned) and marks them bReleasing, in one pass: the mark is
// also the duplicate check. On error no block is left marked. p is locked.
func markReleasing(p *pool, ids []uint32) error {
	const op = "pool_release"
	if len(ids) == 0 {
		return errorf(StatusInvalidArg, "%s: no blocks given", op)
	}
	state := p.state
	for i, b := range ids {
		if int(b) >= len(state) {
			setStates(state, ids[:i], bAssigned)
			return errorf(StatusInvalidArg, "%s: block %d is out of range (pool has %d blocks)", op, b, len(state))
		}
		if st := state[b]; st != bAssigned {
			setStates(state, ids[:i], bAssigned)
			if st == bReleasing && slices.Contains(ids[:i], b) {
				return errorf(StatusInvalidArg, "%s: block %d is listed twice", op, b)
			}
			if st == bQuarantined {
				return errorf(StatusQuarantined, "%s: block %d is quarantined", op, b)
			}
			return errorf(StatusState, "%s: block %d is not assigned (state %s); only assigned blocks can be released", op, b, blockStateNames[st])
		}
		state[b] = bReleasing
	}
	return nil
}

// setStates sets the state of blocks ids.
func setStates(state []uint8, ids []uint32, st uint8) {
	for _, b := range ids {
		state[b] = st
	}
}

// poolFields appends the fields every pool record starts with.
func (t *Tracer) poolFields(fs []forensic.Field, p *pool) []forensic.Field {
	return append(fs,
		forensic.Field{Key: "pool", Value: forensic.Decimal(p.h)},
		forensic.Field{Key: "pool_name", Value: optString(p.name)},
		forensic.Field{Key: "model_id", Value: p.model},
		forensic.Field{Key: "device", Value: deviceName(uint8(p.device), int32(p.ordinal))},
		forensic.Field{Key: "handle", Value: forensic.Decimal(p.h)},
	)
}

// quarantineBlocks quarantines blocks and logs one quarantine record.
func (t *Tracer) quarantineBlocks(p *pool, ids []uint32, cat uint8, reason string) error {
	for _, b := range ids {
		if p.state[b] != bQuarantined {
			p.quarantined++
		}
		p.state[b] = bQuarantined
	}
	t.m.quarantine(cat)
	fs := make([]forensic.Field, 0, 8)
	fs = t.poolFields(fs, p)
	fs = append(fs,
		forensic.Field{Key: "blocks", Value: slices.Clone(ids)},
		forensic.Field{Key: "reason", Value: reason},
	)
	return t.append("quarantine", fs)
}

// PoolAssign assigns blocks to tenant/request, all or nothing, and logs one
// pool_assign. A block assigned to (last used by) another tenant and not
// sanitized since is refused with StatusIsolation: it is quarantined and an
// isolation_violation logged. Quarantined blocks are StatusQuarantined; a
// block already assigned to the same tenant is StatusState. Blocks with an
// async release outstanding are completed first.
func (t *Tracer) PoolAssign(ph PoolHandle, ids []uint32, tenant, request string) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := ValidateID("tenant_id", tenant); err != nil {
		return err
	}
	if err := ValidateID("request_id", request); err != nil {
		return err
	}
	p, err := t.poolLookup(ph)
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	if err := checkBlocks("pool_assign", p, ids); err != nil {
		return err
	}
	for _, b := range ids {
		if p.state[b] == bReleasing {
			if err := t.poolSyncLocked(p); err != nil {
				return err
			}
			break
		}
	}
	var violating []uint32
	var victims []string
	for _, b := range ids {
		bl := &p.blocks[b]
		switch p.state[b] {
		case bQuarantined:
			return errorf(StatusQuarantined, "pool_assign: block %d is quarantined", b)
		case bAssigned:
			if bl.tenant != tenant {
				violating = append(violating, b)
				victims = append(victims, bl.tenant)
			}
		}
	}
	if len(violating) > 0 {
		fs := make([]forensic.Field, 0, 10)
		fs = t.poolFields(fs, p)
		fs = append(fs,
			forensic.Field{Key: "attacker_tenant", Value: tenant},
			forensic.Field{Key: "target_tenant", Value: victims[0]},
			forensic.Field{Key: "target_tenants", Value: victims},
			forensic.Field{Key: "request_id", Value: request},
			forensic.Field{Key: "blocks", Value: violating},
			forensic.Field{Key: "operation", Value: "pool_assign"},
		)
		t.m.isolation.Inc()
		if err := t.append("isolation_violation", fs); err != nil {
			return err
		}
		if err := t.quarantineBlocks(p, violating, qIsolation, "isolation_violation"); err != nil {
			return err
		}
		return errorf(StatusIsolation, "pool_assign: block %d was last used by tenant %q and not sanitized since; %d block(s) quarantined, none assigned", violating[0], victims[0], len(violating))
	}
	for _, b := range ids {
		if bl := &p.blocks[b]; p.state[b] == bAssigned {
			return errorf(StatusState, "pool_assign: block %d is already assigned to this tenant (request %q); release it first", b, bl.request)
		}
	}
	tn := t.internStr(tenant)
	for _, b := range ids {
		p.blocks[b] = block{tenant: tn, request: request}
		p.state[b] = bAssigned
	}
	fs := make([]forensic.Field, 0, 8)
	fs = t.poolFields(fs, p)
	fs = append(fs,
		forensic.Field{Key: "tenant_id", Value: tenant},
		forensic.Field{Key: "request_id", Value: request},
		forensic.Field{Key: "blocks", Value: slices.Clone(ids)},
	)
	return t.append("pool_assign", fs)
}

// PoolRelease zeroizes every region of every listed block in one pass,
// verifies it (the pool's verify mode, full by default) and logs one
// pool_release record with the block ids, bytes and coverage. Blocks that
// fail verification are quarantined (StatusVerify). Unassigned blocks are
// StatusState, quarantined ones StatusQuarantined (nothing is released
// then). On a CUDA pool, one pool-shaped ZeroPoolAsync (one launch that
// zeroes and reads back) covers every region of every block; with async the
// call returns 0 after enqueueing and PoolSync (or the next assign of those
// blocks) completes it. CPU pools are always synchronous. ids is read during
// the call only: the release keeps a copy.
func (t *Tracer) PoolRelease(ph PoolHandle, ids []uint32, async bool) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	p, err := t.poolLookup(ph)
	if err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if err := markReleasing(p, ids); err != nil {
		return 0, err
	}
	c := slices.Clone(ids)
	return t.releaseLocked(p, c, async, p.verify, func() { setStates(p.state, c, bAssigned) })
}

// releaseLocked zeroizes blocks ids of p (locked), which the caller has
// marked bReleasing, and verifies them with mode; async leaves a CUDA
// release pending for PoolSync. If nothing could be enqueued, unmark puts
// the blocks back in the states they had before the mark.
func (t *Tracer) releaseLocked(p *pool, ids []uint32, async bool, mode VerifyMode, unmark func()) (float64, error) {
	start := t.now()
	if p.device == DeviceCUDA {
		// One pool-shaped launch: the region table and the block ids go to
		// the device, not one range per (block, region).
		op, total, err := t.poolReleaseCUDAShaped(p, ids, mode != VerifyNone)
		if err != nil {
			unmark()
			return 0, err
		}
		pd := &poolPending{op: op, blocks: ids, bytes: total, start: start, verify: mode}
		if async {
			p.pending = append(p.pending, pd)
			return 0, nil
		}
		return t.finishPoolCUDA(p, pd)
	}
	return t.releaseCPU(p, ids, start, mode)
}

// completeRelease updates block states, metrics and logs pool_release (p
// locked). bad lists the blocks that failed verification.
func (t *Tracer) completeRelease(p *pool, ids, bad []uint32, total, nonzero uint64, mode VerifyMode, dur int64, extra ...forensic.Field) (float64, error) {
	cov := pct(total, nonzero)
	if mode == VerifyNone && total > 0 {
		cov = 0
	}
	for _, b := range ids {
		p.state[b] = bFree // clean; tenant stays as the last owner
	}
	t.m.sanitized(p.device, total, dur)
	t.m.poolReleased(cov)
	fs := make([]forensic.Field, 0, 14)
	fs = t.poolFields(fs, p)
	fs = append(fs,
		forensic.Field{Key: "blocks", Value: ids},
		forensic.Field{Key: "regions_per_block", Value: len(p.regions)},
		forensic.Field{Key: "bytes", Value: total},
		forensic.Field{Key: "coverage_pct", Value: cov},
		forensic.Field{Key: "duration_ms", Value: float64(dur) / 1e6},
		forensic.Field{Key: "verify", Value: mode.value()},
	)
	fs = append(fs, extra...)
	if len(bad) > 0 {
		fs = append(fs, forensic.Field{Key: "quarantined_blocks", Value: bad}, forensic.Field{Key: "nonzero_bytes", Value: nonzero})
	}
	if err := t.append("pool_release", fs); err != nil {
		return cov, err
	}
	if len(bad) > 0 {
		if err := t.quarantineBlocks(p, bad, qVerify, "verification_failed"); err != nil {
			return cov, err
		}
		return cov, errorf(StatusVerify, "pool_release: %d non-zero bytes in %d block(s) after zeroization (first block %d); quarantined", nonzero, len(bad), bad[0])
	}
	return cov, nil
}

func (t *Tracer) finishPoolCUDA(p *pool, pd *poolPending) (float64, error) {
	var nz uint64
	var err error
	if pd.op != nil {
		nz, err = pd.op.Wait()
	}
	if err != nil {
		// nothing proven: every block is quarantined
		_, _ = t.completeRelease(p, pd.blocks, pd.blocks, pd.bytes, pd.bytes, pd.verify, t.now()-pd.start)
		return 0, cudaErr("pool_release: wait", err)
	}
	var bad []uint32
	if nz != 0 {
		bad = pd.blocks // one count for the launch: cannot attribute, quarantine all
	}
	return t.completeRelease(p, pd.blocks, bad, pd.bytes, nz, pd.verify, t.now()-pd.start)
}

// poolSyncLocked completes every async release of p; returns the first error.
func (t *Tracer) poolSyncLocked(p *pool) error {
	_, err := t.poolSyncMin(p)
	return err
}

func (t *Tracer) poolSyncMin(p *pool) (float64, error) {
	minCov := 100.0
	var first error
	for len(p.pending) > 0 {
		pd := p.pending[0]
		p.pending = p.pending[1:]
		cov, err := t.finishPoolCUDA(p, pd)
		minCov = min(minCov, cov)
		if err != nil && first == nil {
			first = err
		}
	}
	return minCov, first
}

// PoolSync completes all async releases of the pool and returns the lowest
// coverage among them (100 if none).
func (t *Tracer) PoolSync(ph PoolHandle) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	p, err := t.poolLookup(ph)
	if err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	return t.poolSyncMin(p)
}

// PoolUnregister removes the pool after completing async releases. Blocks
// still assigned are StatusState unless force, which releases (zeroizes and
// logs) them first.
func (t *Tracer) PoolUnregister(ph PoolHandle, force bool) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	p, err := t.poolLookup(ph)
	if err != nil {
		return err
	}
	defer p.mu.Unlock()
	if err := t.poolSyncLocked(p); err != nil {
		return err
	}
	// Assigned and quarantined blocks may still hold a tenant's data: they
	// are never dropped unscrubbed.
	var dirty []uint32
	for i := range p.blocks {
		if st := p.state[i]; st == bAssigned || st == bQuarantined {
			dirty = append(dirty, uint32(i))
		}
	}
	if len(dirty) > 0 {
		if !force {
			return errorf(StatusState, "pool_unregister: %d block(s) still assigned or quarantined (first %d); release them or force", len(dirty), dirty[0])
		}
		prev := make([]uint8, len(dirty))
		for i, b := range dirty {
			prev[i] = p.state[b]
		}
		setStates(p.state, dirty, bReleasing)
		unmark := func() {
			for i, b := range dirty {
				p.state[b] = prev[i]
			}
		}
		if _, err := t.releaseLocked(p, dirty, false, p.verify, unmark); err != nil {
			return err
		}
	}
	p.gone = true
	t.poolMu.Lock()
	delete(t.pools, uint32(p.h))
	t.poolMu.Unlock()
	return nil
}
