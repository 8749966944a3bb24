package core

import (
	"slices"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// PoolReleaseQuarantine returns quarantined blocks to service: it zeroizes
// every region of every listed block and verifies every byte (whatever the
// pool's verify mode); the blocks that read back zero become free, and a
// release_quarantine record names them and the reason, after the
// pool_release record of the scrub. Blocks that fail verification stay
// quarantined and the call returns StatusVerify. Every listed block must be
// quarantined (StatusState otherwise, and nothing is done); reason is
// required. A CUDA pool's scrub is waited for before the call returns.
func (t *Tracer) PoolReleaseQuarantine(ph PoolHandle, ids []uint32, reason string) (float64, error) {
	if err := t.enter(); err != nil {
		return 0, err
	}
	defer t.leave()
	if err := ValidateID("reason", reason); err != nil {
		return 0, err
	}
	p, err := t.poolLookup(ph)
	if err != nil {
		return 0, err
	}
	defer p.mu.Unlock()
	if err := checkBlocks("pool_release_quarantine", p, ids); err != nil {
		return 0, err
	}
	for _, b := range ids {
		if st := p.state[b]; st != bQuarantined {
			return 0, errorf(StatusState, "pool_release_quarantine: block %d is %s, not quarantined", b, blockStateNames[st])
		}
	}
	ids = slices.Clone(ids) // the log encodes it after the call returns
	setStates(p.state, ids, bReleasing)
	cov, err := t.releaseLocked(p, ids, false, VerifyFull, func() { setStates(p.state, ids, bQuarantined) })
	freed := slices.DeleteFunc(slices.Clone(ids), func(b uint32) bool { return p.state[b] != bFree })
	if len(freed) == 0 {
		return cov, err
	}
	fs := make([]forensic.Field, 0, 8)
	fs = t.poolFields(fs, p)
	fs = append(fs,
		forensic.Field{Key: "blocks", Value: freed},
		forensic.Field{Key: "reason", Value: reason},
		forensic.Field{Key: "coverage_pct", Value: cov},
	)
	if lerr := t.append("release_quarantine", fs); err == nil {
		err = lerr
	}
	return cov, err
}
