package forensic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Forward-secure MAC, the writer's side: checking the log against the state
// file on open, the per-epoch key and the seals at epoch boundaries.

// fsLastRecord describes the log's last record for the writer's checks.
type fsLastRecord struct {
	kid       string
	fse       uint64
	hasFSE    bool
	seal      bool
	sealTo    uint64
	seq       uint64
	hasRecord bool
}

func parseFSLast(line []byte) (fsLastRecord, error) {
	var r fsLastRecord
	if len(line) == 0 {
		return r, nil
	}
	m, err := parseLine(line)
	if err != nil {
		return r, err
	}
	r.hasRecord = true
	r.kid = getString(m, "kid")
	r.seq, _ = getUint(m, "seq")
	r.fse, r.hasFSE = getUint(m, "fse")
	if getString(m, "event_type") == "seal" {
		r.seal = true
		to, ok := getUint(m, "sealed_to")
		if !ok {
			to = r.fse
		}
		r.sealTo = to
	}
	return r, nil
}

// fsCheckLog reconciles the state with the log's last record before the
// writer appends anything: the key must be the log's, the state may not be
// behind the log, and a crash between sealing (log fsynced) and evolving
// (state file written) is completed here.
func (w *Writer) fsCheckLog(last []byte) error {
	r, err := parseFSLast(last)
	if err != nil {
		return fmt.Errorf("forensic: open %s: last record: %w", w.path, err)
	}
	s := w.fs
	if s == nil {
		if r.hasFSE || strings.HasPrefix(r.kid, "fs:") {
			return fmt.Errorf("forensic: open %s: the log is in forward-secure mode (kid %s): set FSStatePath", w.path, r.kid)
		}
		return nil
	}
	if !r.hasRecord {
		return nil
	}
	if !r.hasFSE {
		return fmt.Errorf("forensic: open %s: %w: the log's last record (seq %d) has no forward-secure epoch; start forward-secure mode on a new log", w.path, ErrFSState, r.seq)
	}
	if r.kid != s.kid() {
		return fmt.Errorf("forensic: open %s: %w: state file %s is key %s but the log is written with %s (wrong state file?)", w.path, ErrFSState, s.path, s.kid(), r.kid)
	}
	next := r.fse // first epoch the writer may still use
	if r.seal {
		next = r.sealTo + 1
	}
	switch {
	case next == s.epoch:
		return nil
	case next > s.epoch && r.fse >= s.epoch && next-s.epoch <= fsMaxSteps && fsRecordVerifies(s, r.fse, last):
		// the seals were written and fsynced (perhaps with a rotation in
		// between), but the crash came before the state file evolved: the
		// last record verifies with our key evolved forward, so finish the
		// evolution
		for s.epoch < next {
			s.evolveMem()
		}
		w.setFSKey()
		return s.persist()
	case next > s.epoch:
		return fmt.Errorf("forensic: open %s: %w: state file %s is at epoch %d but the log already has epoch %d and its last record does not verify with this state", w.path, ErrFSState, s.path, s.epoch, r.fse)
	default:
		return fmt.Errorf("forensic: open %s: %w: the log ends in epoch %d but the state is at epoch %d: seals for epochs %d..%d are missing (log truncated or replaced?); verify it and start a new log", w.path, ErrFSState, next, s.epoch, next, s.epoch-1)
	}
}

// fsRecordVerifies reports whether the record line's hmac is valid under the
// key of epoch e, derived forward from the state's key.
func fsRecordVerifies(s *fsState, e uint64, line []byte) bool {
	m, err := parseLine(line)
	if err != nil {
		return false
	}
	canon, _, mac, hasMac, err := slowCanonical(m)
	if err != nil || !hasMac {
		return false
	}
	k := s.key
	defer clear(k[:])
	for i := s.epoch; i < e; i++ {
		fsEvolve(&k, i)
	}
	h := hmac.New(sha256.New, k[:])
	h.Write([]byte(getString(m, "prev_hash")))
	h.Write(canon)
	var hx [64]byte
	hex.Encode(hx[:], h.Sum(nil))
	return hmac.Equal(hx[:], []byte(mac))
}

// setFSKey (re)keys the writer's MACs with the current epoch key.
func (w *Writer) setFSKey() {
	w.mac = hmac.New(sha256.New, w.fs.key[:])
	for _, e := range w.encs {
		e.mac = hmac.New(sha256.New, w.fs.key[:])
	}
}

// macKey is the key new pipeline workers MAC with (nil: none).
func (w *Writer) macKey() []byte {
	if w.fs != nil {
		return w.fs.key[:]
	}
	return w.o.HMACKey
}

// fseValue is the epoch recorded in new records (-1: not FS mode).
func (w *Writer) fseValue() int64 {
	if w.fs == nil {
		return -1
	}
	return int64(w.fs.epoch)
}

// fsAdvance seals every epoch that ended (by the state's clock) and evolves
// the key past them. Up to fsSealEach epochs get a seal record each, MACed
// with their own key; a longer gap gets one range seal MACed with the key
// of its first epoch. The seals are written and fsynced before the state
// file is overwritten, so a crash never loses the key of an unsealed epoch
// (Open completes an interrupted evolution).
func (w *Writer) fsAdvance() error {
	s := w.fs
	target := s.epochNow()
	if target <= s.epoch {
		return nil
	}
	gap := target - s.epoch
	if gap > fsMaxSteps {
		return fmt.Errorf("forensic: %s: %w: %d epochs elapsed since epoch %d (more than %d); generate a new key and start a new log", w.path, ErrFSState, gap, s.epoch, fsMaxSteps)
	}
	ts := s.now().UnixNano()
	if gap > fsSealEach {
		from := s.epoch
		if err := w.appendRecord("seal", []Field{{"sealed_from", from}, {"sealed_to", target - 1}}, ts); err != nil {
			return err
		}
		for s.epoch < target {
			s.evolveMem()
		}
	} else {
		for s.epoch < target {
			if err := w.appendRecord("seal", []Field{{"sealed_from", s.epoch}, {"sealed_to", s.epoch}}, ts); err != nil {
				return err
			}
			s.evolveMem()
			w.setFSKey()
		}
	}
	w.setFSKey()
	if err := w.writeOut(); err != nil {
		return err
	}
	if !w.sync() {
		return fmt.Errorf("forensic: seal %s: %w (state not evolved)", w.path, ErrFsync)
	}
	return s.persist()
}
