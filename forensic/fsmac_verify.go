package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// Forward-secure MAC, the verifier's side: deriving every epoch key from k_0
// and checking each record's MAC and the seal of every epoch.

// Failure reasons of forward-secure verification.
const (
	// ReasonFSBadMAC: a record's hmac does not match its epoch's key (or it
	// has no hmac or no epoch).
	ReasonFSBadMAC = "fs_bad_mac"
	// ReasonFSMissingSeal: an epoch before a later record or seal has no seal.
	ReasonFSMissingSeal = "fs_missing_seal"
	// ReasonFSEpochOrder: epochs go backwards, a record follows its epoch's
	// seal, a seal is duplicated or malformed, or an epoch lies in the future.
	ReasonFSEpochOrder = "fs_epoch_order"
	// ReasonFSStale: epochs that ended before FSNow minus one epoch are not
	// sealed (tail truncation, or the writer is not running).
	ReasonFSStale = "fs_stale"
)

// fsVerifier checks forward-secure MACs, epochs and seals across the
// records of one verification, in order.
type fsVerifier struct {
	key     *FSKey
	now     time.Time // FSNow or time.Now(): bounds the epochs (and freshness when fresh)
	fresh   bool
	maxE    uint64 // highest epoch accepted (now's epoch + 1)
	curE    uint64 // derived key cache
	cur     [32]byte
	mac     hash.Hash
	macE    uint64
	hasMac  bool
	started bool
	lastE   uint64 // epoch of the last record
	sealed  int64  // all epochs <= sealed are sealed (-1: none)
	buf     [32]byte
}

func newFSVerifier(o VerifyOptions) (*fsVerifier, error) {
	k, err := ParseFSKey(o.FSVerifyKey)
	if err != nil {
		return nil, err
	}
	f := &fsVerifier{key: k, now: o.FSNow, fresh: !o.FSNow.IsZero(), sealed: -1}
	if f.now.IsZero() {
		f.now = time.Now()
	}
	f.maxE = k.EpochAt(f.now) + 1
	f.cur = k.k0
	return f, nil
}

// keyAt derives k_e (e <= maxE).
func (f *fsVerifier) keyAt(e uint64) hash.Hash {
	if f.hasMac && f.macE == e {
		return f.mac
	}
	if e < f.curE {
		f.cur, f.curE = f.key.k0, 0
	}
	for f.curE < e {
		fsEvolve(&f.cur, f.curE)
		f.curE++
	}
	f.mac = hmac.New(sha256.New, f.cur[:])
	f.macE, f.hasMac = e, true
	return f.mac
}

// fsFields are what the verifier needs of a record.
type fsFields struct {
	fse, seq         uint64
	hasFSE, hasSeq   bool
	seal             bool
	sealFrom, sealTo uint64
	hasFrom, hasTo   bool
	kid              string
	macHex           []byte
	canonA, canonB   []byte // MACed bytes after prev: canonA || canonB
	prev             []byte
	sealParseProblem string
}

// check verifies one record (whose hash already matched) and updates the
// epoch/seal state.
func (f *fsVerifier) check(v *verifier, name string, lineNo int, r *fsFields) {
	if !r.hasFSE {
		v.fail(name, lineNo, ReasonFSBadMAC, "record has no forward-secure epoch (fse)")
		return
	}
	if r.fse > f.maxE {
		v.fail(name, lineNo, ReasonFSEpochOrder, fmt.Sprintf("epoch %d lies in the future (now is epoch %d)", r.fse, f.maxE-1))
		return
	}
	if f.started && r.fse < f.lastE {
		// not MAC-checked: going back would mean deriving keys from k_0
		// again, which a crafted log could make costly
		v.fail(name, lineNo, ReasonFSEpochOrder, fmt.Sprintf("epoch %d follows epoch %d", r.fse, f.lastE))
		return
	}
	if r.macHex == nil {
		v.fail(name, lineNo, ReasonFSBadMAC, "record has no hmac")
	} else {
		m := f.keyAt(r.fse)
		m.Reset()
		m.Write(r.prev)
		m.Write(r.canonA)
		m.Write(r.canonB)
		var sum [32]byte
		copy(sum[:], m.Sum(f.buf[:0]))
		if !hexEqual32(&sum, r.macHex) {
			v.fail(name, lineNo, ReasonFSBadMAC, fmt.Sprintf("hmac does not match the key of epoch %d (kid %s, key fs:%s)", r.fse, r.kid, f.key.ID()))
		}
	}
	if !f.started {
		f.started = true
		if r.hasSeq && r.seq > 0 {
			// the log's beginning is not here (pruned, a single rotated
			// file, or incremental): seals before this epoch are unknown
			f.sealed = int64(r.fse) - 1
		}
	}
	if r.seal {
		from, to := r.fse, r.fse
		if r.sealParseProblem != "" || !r.hasFrom || !r.hasTo || r.sealFrom != r.fse || r.sealTo < r.sealFrom {
			v.fail(name, lineNo, ReasonFSEpochOrder, "malformed seal record (sealed_from must equal fse, sealed_to >= sealed_from)")
		} else {
			to = r.sealTo
		}
		if to >= f.maxE {
			v.fail(name, lineNo, ReasonFSEpochOrder, fmt.Sprintf("seal of epoch %d, which has not ended", to))
		}
		switch {
		case int64(from) <= f.sealed:
			v.fail(name, lineNo, ReasonFSEpochOrder, fmt.Sprintf("second seal of epoch %d", from))
		case int64(from) > f.sealed+1:
			v.fail(name, lineNo, ReasonFSMissingSeal, fmt.Sprintf("epochs %d..%d have no seal", f.sealed+1, from-1))
		}
		if int64(to) > f.sealed {
			f.sealed = int64(to)
		}
		if to > f.lastE {
			f.lastE = to
		}
		return
	}
	switch {
	case int64(r.fse) <= f.sealed:
		v.fail(name, lineNo, ReasonFSEpochOrder, fmt.Sprintf("record of epoch %d after that epoch's seal", r.fse))
	case int64(r.fse) > f.sealed+1:
		v.fail(name, lineNo, ReasonFSMissingSeal, fmt.Sprintf("epochs %d..%d have no seal before this record of epoch %d", f.sealed+1, r.fse-1, r.fse))
		f.sealed = int64(r.fse) - 1
	}
	if r.fse > f.lastE {
		f.lastE = r.fse
	}
}

// prime starts the epoch state from a record that is authenticated some
// other way (the head of a signed checkpoint, for VerifyIncremental).
func (f *fsVerifier) prime(line []byte) {
	m, err := parseLine(line)
	if err != nil {
		return
	}
	r := fsParseRecord(nil, m)
	if !r.hasFSE || r.fse > f.maxE {
		return
	}
	f.started, f.lastE, f.sealed = true, r.fse, int64(r.fse)-1
	if r.seal && r.hasTo && r.sealTo >= r.fse {
		f.lastE, f.sealed = r.sealTo, int64(r.sealTo)
	}
}

// lastLineBefore returns the last complete line that ends at or before
// byte off of path (off < 0: end of file), reading at most 4 MiB back.
func lastLineBefore(path string, off int64) []byte {
	f, err := openNoFollow(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if off < 0 {
		st, err := f.Stat()
		if err != nil {
			return nil
		}
		off = st.Size()
	}
	from := max(off-4<<20, 0)
	buf := make([]byte, off-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	buf = bytes.TrimRight(buf, "\n")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		return buf[i+1:]
	} else if from == 0 {
		return buf
	}
	return nil
}

// finish applies the freshness rule: with FSNow, every epoch that ended
// one epoch or more before FSNow must be sealed.
func (f *fsVerifier) finish(v *verifier) {
	if !f.fresh {
		return
	}
	g := f.key.EpochAt(f.now.Add(-f.key.Epoch)) // epochs < g ended before now - one epoch
	if int64(g)-1 > f.sealed {
		v.fail(v.lastFile, v.lastLines, ReasonFSStale,
			fmt.Sprintf("epochs %d..%d ended before %s minus one epoch but are not sealed (log truncated, or its writer is not running)",
				f.sealed+1, g-1, f.now.UTC().Format(time.RFC3339)))
	}
}

// fsParseRecord extracts the FS fields of a record in the writer's layout
// (prefix = canonical bytes without the final '}') or from a parsed map.
func fsParseRecord(prefix []byte, m map[string]any) fsFields {
	var r fsFields
	if m == nil {
		r.fse, r.hasFSE = topLevelUint(prefix, `,"fse":`)
		r.seq, r.hasSeq = topLevelSeq(prefix)
		if bytes.Contains(prefix, []byte(`"event_type":"seal"`)) {
			var err error
			if m, err = parseLine(append(append([]byte(nil), prefix...), '}')); err != nil {
				r.seal = true
				r.sealParseProblem = err.Error()
				return r
			}
		} else {
			r.kid = fsKidFast(prefix)
			return r
		}
	} else {
		r.fse, r.hasFSE = getUint(m, "fse")
		r.seq, r.hasSeq = getUint(m, "seq")
	}
	r.kid = getString(m, "kid")
	if getString(m, "event_type") == "seal" {
		r.seal = true
		r.sealFrom, r.hasFrom = getUint(m, "sealed_from")
		r.sealTo, r.hasTo = getUint(m, "sealed_to")
	}
	return r
}

// fsKidFast finds the kid of a canonical record (for messages only).
func fsKidFast(prefix []byte) string {
	i := bytes.Index(prefix, []byte(`"kid":"fs:`))
	if i < 0 || len(prefix) < i+len(`"kid":"fs:`)+8 {
		return "?"
	}
	return string(prefix[i+len(`"kid":"`) : i+len(`"kid":"fs:`)+8])
}

// topLevelUint finds a top-level integer key (pat = `,"key":`) in a
// canonical object prefix.
func topLevelUint(prefix []byte, pat string) (uint64, bool) {
	depth := 0
	inStr := false
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			if depth == 1 && prefix[i-1] == ',' && bytes.HasPrefix(prefix[i-1:], []byte(pat)) {
				return parseUintAt(prefix[i-1+len(pat):])
			}
			inStr = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
	}
	return 0, false
}
