package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
)

// VerifyOptions configures verification. HMACKey set means every record
// must carry a valid hmac. CheckpointDir + PublicKey (a note verifier key
// from GenerateKey) enable checkpoint checks in VerifyAll.
//
// FSVerifyKey (the text GenerateFSKey returned) checks a forward-secure
// log instead: every record's hmac against its epoch's key, epoch order and
// one seal per ended epoch (HMACKey must then be empty). FSNow, when set,
// adds freshness: epochs that ended one epoch or more before FSNow must be
// sealed, which detects a log cut back by someone holding a later key.
type VerifyOptions struct {
	HMACKey       []byte
	CheckpointDir string
	PublicKey     string
	FSVerifyKey   string
	FSNow         time.Time
}

// Failure is one verification finding. Line is the 0-based line index in
// File (blank lines count, like the seed's verifier).
type Failure struct {
	File   string
	Line   int
	Reason string
	Detail string
}

// PrunedFile is a file removed by Prune, as declared by a prune record.
type PrunedFile struct {
	File     string `json:"file"`
	LastHash string `json:"last_hash"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Records  int    `json:"records"`
}

// Result is the outcome of VerifyChain / VerifyAll.
type Result struct {
	OK       bool
	Records  int
	Files    []string
	Failures []Failure
	Pruned   []PrunedFile // declared gaps (VerifyAll)
	// CheckpointSize is the size of the newest checkpoint checked (0: none).
	CheckpointSize uint64
}

// Failure reasons.
const (
	ReasonBadHash              = "bad_hash"
	ReasonBadHMAC              = "bad_hmac"
	ReasonMissingHMAC          = "missing_hmac"
	ReasonSeqGap               = "seq_gap"
	ReasonRotationLink         = "rotation_link_mismatch"
	ReasonMissingRotate        = "missing_rotate"
	ReasonTruncated            = "truncated_against_checkpoint"
	ReasonMalformed            = "malformed_json"
	ReasonCheckpointMismatch   = "checkpoint_mismatch"
	ReasonCheckpointInvalid    = "checkpoint_invalid"
	ReasonCheckpointUnverified = "checkpoint_unverifiable"
	ReasonNonCanonical         = "non_canonical"
	// The forward-secure reasons (ReasonFSBadMAC, ReasonFSMissingSeal,
	// ReasonFSEpochOrder, ReasonFSStale) are in fsmac.go.
)

// JSON returns {"ok":..,"records":..,"files":[..],"failures":[{"file","line","reason","detail"}],"pruned":[..]}.
func (r *Result) JSON() []byte {
	type jf struct {
		File   string `json:"file"`
		Line   int    `json:"line"`
		Reason string `json:"reason"`
		Detail string `json:"detail,omitempty"`
	}
	out := struct {
		OK             bool         `json:"ok"`
		Records        int          `json:"records"`
		Files          []string     `json:"files"`
		Failures       []jf         `json:"failures"`
		Pruned         []PrunedFile `json:"pruned,omitempty"`
		CheckpointSize uint64       `json:"checkpoint_size,omitempty"`
	}{OK: r.OK, Records: r.Records, Files: r.Files, Failures: []jf{}, Pruned: r.Pruned, CheckpointSize: r.CheckpointSize}
	if out.Files == nil {
		out.Files = []string{}
	}
	for _, f := range r.Failures {
		out.Failures = append(out.Failures, jf(f))
	}
	b, _ := json.Marshal(out)
	return b
}

type verifier struct {
	o       VerifyOptions
	res     *Result
	sha     hash.Hash
	mac     hash.Hash
	sum     []byte
	seqAt   int // where the last line's top-level `,"seq":` was (topLevelSeqAt)
	lastSeq uint64
	haveSeq bool
	prunes  []PrunedFile
	files   []logFile
	tc      transcoder
	collect bool      // record leaves instead of feeding them (parallel chunks)
	leaves  []leafRec // collected leaves

	// checkpoints
	cps       []*CheckpointState
	cpIdx     int
	cr        *compact.Range
	crState   int // 0 not started, 1 running, 2 broken
	lastFile  string
	lastLines int
	raw       [32]byte

	fs *fsVerifier // forward-secure checks (nil: off)

	// interleaved SHA-256 (sha2x.go, sha16x.go; nil without SHA-NI): dual
	// hashes a line and its HMAC together, and a batch of lines at once;
	// pre is the line's hash when computed ahead (batch.sums holds it),
	// preMac its HMAC when keyed (batch.macs holds it).
	dual   *sha2Mac
	pre    *[32]byte
	preMac *[32]byte
	batch  lineBatch
	// a seed-layout line in a batch keeps its projection in one of the
	// batch's transcoders, and checkLine takes it from preTC / preCanon
	// instead of projecting the line again
	preTC    *transcoder
	preCanon []byte
}

// fileSum summarises one verified file for link checks.
type fileSum struct {
	name       string
	records    int
	first      map[string]any // first record, parsed
	firstLine  int
	lastHash   string
	firstSeq   uint64
	hasSeq     bool
	firstSeqLn int
	lines      int
}

func newVerifier(o VerifyOptions) *verifier {
	v := &verifier{o: o, res: &Result{}, sha: sha256.New()}
	if len(o.HMACKey) > 0 {
		v.mac = hmacNew(o.HMACKey)
	}
	if sha2xFast && !sha2xOff.Load() {
		v.dual = newSHA2Mac(o.HMACKey)
	}
	return v
}

// newVerifierFS is newVerifier for the entry points: it validates the
// forward-secure options and parses the verification key.
func newVerifierFS(o VerifyOptions) (*verifier, error) {
	if o.FSVerifyKey == "" {
		if !o.FSNow.IsZero() {
			return nil, errors.New("forensic: verify: FSNow is set without FSVerifyKey")
		}
		return newVerifier(o), nil
	}
	if len(o.HMACKey) > 0 {
		return nil, errors.New("forensic: verify: HMACKey and FSVerifyKey are exclusive (a forward-secure log has no static key)")
	}
	f, err := newFSVerifier(o)
	if err != nil {
		return nil, fmt.Errorf("forensic: verify: %w", err)
	}
	v := newVerifier(o)
	v.fs = f
	return v, nil
}

// finishFS applies the end-of-log forward-secure checks.
func (v *verifier) finishFS() {
	if v.fs != nil {
		v.fs.finish(v)
	}
}

func (v *verifier) fail(file string, line int, reason, detail string) {
	v.res.Failures = append(v.res.Failures, Failure{File: file, Line: line, Reason: reason, Detail: detail})
}

var closeBrace = []byte{'}'}

// verifyFile checks every line of one file starting at byte offset start,
// with prev as the running hash. startLine is the line index of start.
func (v *verifier) verifyFile(path, name string, start int64, startLine int, prev string) (*fileSum, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
	}
	defer f.Close()
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
		}
	}
	bufSize := 4 << 20
	st, err := f.Stat()
	if err == nil && st.Size()-start < int64(bufSize) {
		bufSize = max(int(st.Size()-start), 4096) // what is left (incremental verification)
	}
	if err == nil && st.Size()-start >= parallelMin && v.fs == nil {
		return v.verifyParallel(f, st.Size()-start, path, name, startLine, prev)
	}
	return v.verifyReader(f, bufSize, path, name, startLine, prev)
}

// verifyReader is verifyFile over any reader (tests use it in memory).
func (v *verifier) verifyReader(f io.Reader, bufSize int, path, name string, startLine int, prev string) (*fileSum, error) {
	return v.verifyLines(newLineReader(f, bufSize), path, name, startLine, prev)
}

// verifyLines is verifyReader over a line reader (newMemLineReader for
// data already in memory: no copies).
func (v *verifier) verifyLines(lr *lineReader, path, name string, startLine int, prev string) (*fileSum, error) {
	fs := &fileSum{name: name, lastHash: "GENESIS", firstLine: -1}
	prevB := append(make([]byte, 0, 128), prev...)
	defer func() { fs.lastHash = string(prevB) }()
	lineNo := startLine - 1
	// Consecutive lines are hashed together (lineBatch): a line's prev is
	// the claimed curr_hash of the line before it, so their hashes (and
	// HMACs) are independent and share the SIMD lanes (sha2x.go,
	// sha16x.go). Seed-layout lines take part through their projections.
	keyed := v.dual != nil && v.dual.keyed && v.mac != nil
	batched := v.dual != nil && v.fs == nil && (v.mac == nil || keyed)
	b := &v.batch
	b.reset(v.dual)
	for {
		line, _, term, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fs, fmt.Errorf("forensic: verify %s: %w", path, err)
		}
		lineNo++
		fs.lines = lineNo + 1
		if isBlank(line) {
			continue
		}
		if !term {
			v.flushBatch(fs, name, b, &prevB, keyed)
			v.fail(name, lineNo, ReasonMalformed, "last line is not newline-terminated (torn write or truncation)")
			break
		}
		if batched {
			if v.batchAdd(b, lr.stable(), lineNo, line) {
				if b.n == len(b.slots) {
					v.flushBatch(fs, name, b, &prevB, keyed)
				}
				continue
			}
			v.flushBatch(fs, name, b, &prevB, keyed)
		}
		v.take(fs, name, lineNo, line, &prevB)
	}
	v.flushBatch(fs, name, b, &prevB, keyed)
	v.lastFile, v.lastLines = name, fs.lines
	return fs, nil
}

// lineBatch holds the lines verifyLines hashes together: sha16Batch of
// them with the sixteen-lane hashing, two otherwise.
type lineBatch struct {
	slots         []batchLine
	n             int // lines waiting, in slots[:n]
	tcs           []transcoder
	prevs, bodies [][]byte
	sums, macs    [][32]byte
}

// batchLine is a line waiting in a lineBatch: body is what is hashed after
// prev (the closing '}' excepted), curr the claimed curr_hash (the next
// line's prev), tc and canon a seed-layout line's projection (tc nil: our
// layout), buf the line's copy when the reader's lines do not stay valid.
type batchLine struct {
	lineNo      int
	line, body  []byte
	curr, canon []byte
	tc          *transcoder
	buf         []byte
}

// reset empties the batch and sizes it for m's hashing.
func (b *lineBatch) reset(m *sha2Mac) {
	size := 2
	if m != nil && m.x16 != nil {
		size = sha16Batch
	}
	b.n = 0
	if len(b.slots) != size {
		b.slots, b.tcs = make([]batchLine, size), make([]transcoder, size)
		b.prevs, b.bodies = make([][]byte, size), make([][]byte, size)
		b.sums, b.macs = make([][32]byte, size), make([][32]byte, size)
	}
}

// batchAdd adds a line in our layout, or a seed-layout line the fast path
// can take, to the batch (copying it unless the reader's lines stay
// valid) and reports whether it did; the caller takes any other line alone.
func (v *verifier) batchAdd(b *lineBatch, stable bool, lineNo int, line []byte) bool {
	s := &b.slots[b.n]
	if prefix, curr, _, fast := fastSplit(line); fast {
		if !stable { // the copy's own prefix and curr_hash
			s.buf = append(s.buf[:0], line...)
			line = s.buf
			prefix, curr, _, _ = fastSplit(line)
		}
		s.lineNo, s.line, s.body, s.curr, s.tc, s.canon = lineNo, line, prefix, curr, nil, nil
		b.n++
		return true
	}
	if !stable {
		s.buf = append(s.buf[:0], line...)
		line = s.buf
	}
	tc := &b.tcs[b.n]
	canon, ok := v.seedProject(tc, line)
	if !ok {
		return false
	}
	s.lineNo, s.line, s.body, s.curr, s.tc, s.canon = lineNo, line, canon[:len(canon)-1], tc.curr, tc, canon
	b.n++
	return true
}

// flushBatch hashes the waiting lines together and takes them in order.
// A line's sums hold only if the chain went on from the claimed curr_hash
// of the line before it; otherwise checkLine hashes it again.
func (v *verifier) flushBatch(fs *fileSum, name string, b *lineBatch, prevB *[]byte, keyed bool) {
	n := b.n
	b.n = 0
	if n == 0 {
		return
	}
	if n > 1 {
		prevs, bodies := b.prevs[:n], b.bodies[:n]
		prevs[0] = *prevB
		for i := range n {
			if i > 0 {
				prevs[i] = b.slots[i-1].curr
			}
			bodies[i] = b.slots[i].body
		}
		v.dual.sumChainBatch(b.sums[:n], b.macs[:n], prevs, bodies)
	}
	for i := range n {
		s := &b.slots[i]
		if n > 1 && (i == 0 || bytes.Equal(*prevB, b.prevs[i])) {
			v.pre = &b.sums[i]
			if keyed {
				v.preMac = &b.macs[i]
			}
		}
		v.preTC, v.preCanon = s.tc, s.canon
		v.take(fs, name, s.lineNo, s.line, prevB)
	}
}

// seedProject projects a seed-layout line into tc (transcode.go) and
// reports whether checkLine's fast path can take it from there: the
// projection worked, curr_hash is 64 characters, and the hmac is present
// exactly when a key is configured (or well formed when there is none).
// checkLine still refuses the fast path when a special key appears twice.
func (v *verifier) seedProject(tc *transcoder, line []byte) ([]byte, bool) {
	canon, err := tc.transcode(line)
	ok := err == nil && len(tc.curr) == 64 && (v.mac != nil || tc.mac == nil || isLowerHex(tc.mac)) &&
		(v.mac == nil || tc.mac != nil)
	return canon, ok
}

// take checks one non-blank, terminated line and advances the chain and
// the file summary.
func (v *verifier) take(fs *fileSum, name string, lineNo int, line []byte, prevp *[]byte) {
	curr, seq, hasSeq, m, ok := v.checkLine(name, lineNo, line, *prevp)
	v.pre, v.preMac, v.preTC, v.preCanon = nil, nil, nil, nil
	if !ok {
		return
	}
	if fs.records == 0 {
		fs.firstLine = lineNo
		if m == nil {
			m, _ = parseLine(line)
		}
		fs.first = m
	}
	fs.records++
	v.res.Records++
	*prevp = append((*prevp)[:0], curr...)
	if hasSeq {
		if v.haveSeq && seq != v.lastSeq+1 {
			v.fail(name, lineNo, ReasonSeqGap, fmt.Sprintf("seq %d follows %d", seq, v.lastSeq))
		}
		if !fs.hasSeq {
			fs.firstSeq, fs.hasSeq, fs.firstSeqLn = seq, true, lineNo
		}
		v.lastSeq, v.haveSeq = seq, true
		if v.cps != nil {
			v.feedLeaf(name, lineNo, seq, curr)
		} else if v.collect {
			var lr leafRec
			lr.seq, lr.line = seq, lineNo
			copy(lr.curr[:], curr)
			lr.n = len(curr)
			v.leaves = append(v.leaves, lr)
		}
	}
}

// checkLine verifies one record against prev. It returns the record's
// claimed curr_hash (the chain continues from it even when the record is
// bad, so one tampered line yields one failure), its seq and, when it had
// to be parsed, the parsed object.
func (v *verifier) checkLine(name string, lineNo int, line []byte, prev []byte) (curr []byte, seq uint64, hasSeq bool, m map[string]any, ok bool) {
	if prefix, c, mac, fast := fastSplit(line); fast {
		// digests are compared with the line's hex digits as they are
		// encoded (hexEqual32), in constant time, without a hex buffer
		var sum, ms [32]byte
		macDone := false // ms already holds the HMAC, computed along with the hash
		switch {
		case v.pre != nil: // hashed with its neighbour (verifyLines)
			sum = *v.pre
			if v.preMac != nil {
				ms, macDone = *v.preMac, true
			}
		case v.dual != nil && v.fs == nil:
			v.dual.sumMacChain(&sum, &ms, prev, prefix)
			macDone = v.dual.keyed
		default:
			v.binSum(&sum, v.sha, prev, prefix, closeBrace)
		}
		if hexEqual32(&sum, c) {
			if v.fs != nil {
				r := fsParseRecord(prefix, nil)
				r.prev, r.canonA, r.canonB, r.macHex = prev, prefix, closeBrace, mac
				v.fs.check(v, name, lineNo, &r)
				return c, r.seq, r.hasSeq, nil, true
			}
			if v.mac != nil {
				if mac == nil {
					v.fail(name, lineNo, ReasonMissingHMAC, "record has no hmac")
				} else {
					if !macDone {
						v.binSum(&ms, v.mac, prev, prefix, closeBrace)
					}
					if !hexEqual32(&ms, mac) {
						v.fail(name, lineNo, ReasonBadHMAC, "hmac does not match")
					}
				}
			}
			seq, hasSeq = topLevelSeqAt(prefix, &v.seqAt)
			return c, seq, hasSeq, nil, true
		}
	}
	_, _, _, ourLayout := fastSplit(line)
	var proj []byte // the seed-layout projection that did not hash right
	tc := &v.tc     // and the transcoder that holds its fields
	if !ourLayout && v.fs == nil {
		// seed layout: project onto canonical bytes without building
		// values, and accept the line when its hashes match. Anything
		// else goes to the parser below, which decides and names the
		// failure: no UTF-8 check is needed here (a projection with bad
		// bytes cannot hash right), and an hmac with no key to check it
		// against must at least be well formed.
		canon, ok := v.preCanon, v.preTC != nil // projected by verifyLines
		if ok {
			tc = v.preTC
		} else {
			canon, ok = v.seedProject(tc, line)
		}
		if ok {
			if !tc.dup && v.seedHashesMatch(tc, prev, canon) {
				return tc.curr, tc.seq, tc.hasSeq, nil, true
			}
			proj = canon
		}
	}
	m, err := parseLine(line)
	if err != nil {
		v.fail(name, lineNo, ReasonMalformed, err.Error())
		return nil, 0, false, nil, false
	}
	canon, c, mac, hasMac, err := slowCanonical(m)
	if err != nil {
		v.fail(name, lineNo, ReasonMalformed, err.Error())
		return nil, 0, false, nil, false
	}
	var sum [32]byte
	v.binSum(&sum, v.sha, prev, canon, nil)
	if !hexEqual32(&sum, []byte(c)) {
		v.fail(name, lineNo, ReasonBadHash, "curr_hash does not match SHA-256(prev_hash + canonical record)")
	} else if ourLayout || proj != nil && (tc.dup || !bytes.Equal(proj, canon) || string(tc.curr) != c || hasMac && string(tc.mac) != mac) ||
		hasDuplicateKey(line) {
		// the writer's layout is canonical bytes, and the seed writes
		// every scalar in its canonical form (the projection of a line
		// it wrote is canonical): these hash only after re-encoding, so
		// the line was edited in a meaning-preserving way (a re-spelled
		// number or escape, a duplicate key that a parser ignores, also
		// where the projection does not apply, e.g. under an escaped key)
		v.fail(name, lineNo, ReasonNonCanonical, "line bytes differ from the canonical encoding of the record")
	} else if v.fs != nil {
		r := fsParseRecord(nil, m)
		r.prev, r.canonA = prev, canon
		if hasMac {
			r.macHex = []byte(mac)
		}
		v.fs.check(v, name, lineNo, &r)
	} else if v.mac != nil {
		if !hasMac {
			v.fail(name, lineNo, ReasonMissingHMAC, "record has no hmac")
		} else {
			v.binSum(&sum, v.mac, prev, canon, nil)
			if !hexEqual32(&sum, []byte(mac)) {
				v.fail(name, lineNo, ReasonBadHMAC, "hmac does not match")
			}
		}
	}
	seq, hasSeq = getUint(m, "seq")
	return []byte(c), seq, hasSeq, m, true
}

// seedHashesMatch reports whether the projection canon of a seed-layout
// line hashes to the line's curr_hash and, with a key, its hmac (both in
// tc). verifyLines may have computed both with the neighbouring line's
// (v.pre, v.preMac).
func (v *verifier) seedHashesMatch(tc *transcoder, prev, canon []byte) bool {
	var sum, ms [32]byte
	macDone := false // ms already holds the HMAC, computed along with the hash
	switch {
	case v.pre != nil:
		sum = *v.pre
		if v.preMac != nil {
			ms, macDone = *v.preMac, true
		}
	case v.dual != nil && v.dual.keyed && tc.mac != nil && len(canon) > 0 && canon[len(canon)-1] == '}':
		v.dual.sumMacChain(&sum, &ms, prev, canon[:len(canon)-1])
		macDone = true
	default:
		v.binSum(&sum, v.sha, prev, canon, nil)
	}
	if !hexEqual32(&sum, tc.curr) {
		return false
	}
	if v.mac == nil {
		return true
	}
	if !macDone {
		v.binSum(&ms, v.mac, prev, canon, nil)
	}
	return hexEqual32(&ms, tc.mac)
}

// binSum puts the digest of a || b || c under h (the chain hash or the HMAC)
// in sum.
func (v *verifier) binSum(sum *[32]byte, h hash.Hash, a, b, c []byte) {
	h.Reset()
	h.Write(a)
	h.Write(b)
	h.Write(c)
	v.sum = h.Sum(v.sum[:0])
	copy(sum[:], v.sum)
}

// collectPrunes reads the prune records of a file set. Only needed when the
// oldest file links to a missing file, so the fast path never looks for them.
func collectPrunes(files []logFile) []PrunedFile {
	out := []PrunedFile{}
	pat := []byte(`"prune"`)
	for _, lf := range files {
		f, err := openNoFollow(lf.path)
		if err != nil {
			continue
		}
		lr := newLineReader(f, 1<<20)
		for {
			line, _, term, err := lr.next()
			if err != nil || !term {
				break
			}
			if !bytes.Contains(line, pat) {
				continue
			}
			if m, err := parseLine(line); err == nil {
				out = collectPrune(out, m)
			}
		}
		f.Close()
	}
	return out
}

func collectPrune(out []PrunedFile, m map[string]any) []PrunedFile {
	if getString(m, "event_type") != "prune" {
		return out
	}
	list, _ := m["pruned"].([]any)
	for _, e := range list {
		pm, ok := e.(map[string]any)
		if !ok {
			continue
		}
		pf := PrunedFile{File: getString(pm, "file"), LastHash: getString(pm, "last_hash")}
		pf.FirstSeq, _ = getUint(pm, "first_seq")
		pf.LastSeq, _ = getUint(pm, "last_seq")
		r, _ := getUint(pm, "records")
		pf.Records = int(r)
		out = append(out, pf)
	}
	return out
}

// feedLeaf extends the Merkle range with one record and checks every
// checkpoint whose size is reached.
func (v *verifier) feedLeaf(name string, lineNo int, seq uint64, curr []byte) {
	switch v.crState {
	case 2:
		return
	case 0:
		for v.cpIdx < len(v.cps) && v.cps[v.cpIdx].Size < seq {
			v.cpIdx++ // checkpoints before the retained records
		}
		if seq == 0 {
			v.cr = rangeFactory.NewEmptyRange(0)
		} else if v.cpIdx < len(v.cps) && v.cps[v.cpIdx].Size == seq {
			r, ok := v.cps[v.cpIdx].rangeFrom()
			if !ok {
				v.crState = 2
				v.fail(name, lineNo, ReasonCheckpointUnverified, fmt.Sprintf("no Merkle state for seq %d (records before it were pruned)", seq))
				return
			}
			v.cr = r
			v.cpIdx++
		} else {
			v.crState = 2
			if len(v.cps) > 0 {
				v.fail(name, lineNo, ReasonCheckpointUnverified, fmt.Sprintf("no checkpoint at seq %d where the retained records start", seq))
			}
			return
		}
		v.crState = 1
	}
	if seq != v.cr.End() {
		v.crState = 2
		return
	}
	if len(curr) != 64 {
		v.crState = 2
		v.fail(name, lineNo, ReasonCheckpointUnverified, "curr_hash is not 64 hex digits")
		return
	}
	if _, err := hex.Decode(v.raw[:], curr); err != nil {
		v.crState = 2
		v.fail(name, lineNo, ReasonCheckpointUnverified, "curr_hash is not 64 hex digits")
		return
	}
	v.cr.Append(rfcLeaf(v.raw[:]), nil)
	for v.cpIdx < len(v.cps) && v.cps[v.cpIdx].Size == v.cr.End() {
		cp := v.cps[v.cpIdx]
		root, err := v.cr.GetRootHash(nil)
		if err != nil || !bytes.Equal(root, cp.Root) || (cp.Head != "" && cp.Head != string(curr)) {
			v.fail(name, lineNo, ReasonCheckpointMismatch, fmt.Sprintf("records 0..%d do not match signed checkpoint %s", cp.Size-1, filepath.Base(cp.Note)))
		}
		v.res.CheckpointSize = cp.Size
		v.cpIdx++
	}
}

// finishCheckpoints reports checkpoints the log never reached (tail truncation).
func (v *verifier) finishCheckpoints() {
	if v.cps == nil || v.crState == 2 {
		return
	}
	if v.cpIdx < len(v.cps) {
		newest := v.cps[len(v.cps)-1]
		have := uint64(0)
		if v.cr != nil {
			have = v.cr.End()
		}
		v.fail(v.lastFile, v.lastLines, ReasonTruncated,
			fmt.Sprintf("signed checkpoint %s covers %d records, the log has %d", filepath.Base(newest.Note), newest.Size, have))
	}
}

func (v *verifier) loadCheckpoints() {
	if v.o.CheckpointDir == "" {
		return
	}
	if v.o.PublicKey == "" {
		v.fail(v.o.CheckpointDir, 0, ReasonCheckpointUnverified, "checkpoint dir given without a public key")
		return
	}
	cps, bad, err := LoadCheckpoints(v.o.CheckpointDir, v.o.PublicKey)
	if err != nil {
		v.fail(v.o.CheckpointDir, 0, ReasonCheckpointUnverified, err.Error())
		return
	}
	v.res.Failures = append(v.res.Failures, bad...)
	v.cps = cps
	if v.cps == nil {
		v.cps = []*CheckpointState{}
	}
}

// VerifyChain verifies one file on its own: every record's curr_hash (and
// hmac when a key is given), seq continuity inside the file. Checkpoints
// are checked by VerifyAll. The error is only for I/O on path itself.
func VerifyChain(path string, o VerifyOptions) (*Result, error) {
	v, err := newVerifierFS(o)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
	}
	name := filepath.Base(path)
	if _, err := v.verifyFile(path, name, 0, 0, "GENESIS"); err != nil {
		return nil, err
	}
	v.res.Files = []string{name}
	v.finishFS()
	v.res.OK = len(v.res.Failures) == 0
	return v.res, nil
}

// VerifyAll verifies the active file path and all its rotated files
// (<stem>-*.log, oldest first): every chain, every rotation link, seq
// continuity across files, declared prune gaps, and, when configured, every
// signed checkpoint (tail truncation and rewrites by an HMAC key holder).
func VerifyAll(path string, o VerifyOptions) (*Result, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
	}
	files, err := listFiles(path)
	if err != nil {
		return nil, err
	}
	v, err := newVerifierFS(o)
	if err != nil {
		return nil, err
	}
	v.files = files
	v.loadCheckpoints()
	sums := make([]*fileSum, 0, len(files))
	for _, lf := range files {
		fs, err := v.verifyFile(lf.path, lf.name, 0, 0, "GENESIS")
		if err != nil {
			if lf.active {
				return nil, err
			}
			v.fail(lf.name, 0, ReasonMalformed, err.Error())
			fs = &fileSum{name: lf.name}
		}
		sums = append(sums, fs)
		v.res.Files = append(v.res.Files, lf.name)
	}
	v.finishCheckpoints()
	v.finishFS()
	v.checkLinks(sums)
	if v.fs != nil && len(sums) > 0 && sums[0].first != nil {
		// records before the first one can only be missing as a declared
		// prune gap, which starts with a rotate record (checkLinks)
		first := sums[0].first
		if seq, ok := getUint(first, "seq"); ok && seq > 0 && getString(first, "event_type") != "rotate" {
			v.fail(sums[0].name, sums[0].firstLine, ReasonFSMissingSeal,
				fmt.Sprintf("the log starts at seq %d without a rotate record of a declared prune gap: the epochs before it cannot be checked", seq))
		}
	}
	if len(v.prunes) > 0 {
		v.res.Pruned = v.prunes
	}
	v.res.OK = len(v.res.Failures) == 0
	return v.res, nil
}

// checkLinks checks that each file after the first opens with a rotate
// record naming its predecessor and that predecessor's last hash; the first
// file may link to a file only if a prune record declared it removed.
func (v *verifier) checkLinks(sums []*fileSum) {
	for i, fs := range sums {
		isRotate := fs.first != nil && getString(fs.first, "event_type") == "rotate"
		if i == 0 {
			if !isRotate {
				continue
			}
			pf, ph := getString(fs.first, "prev_file"), getString(fs.first, "prev_file_last_hash")
			if v.prunes == nil {
				v.prunes = collectPrunes(v.files)
			}
			declared := false
			for _, p := range v.prunes {
				if p.File == pf && p.LastHash == ph {
					declared = true
				}
			}
			if !declared {
				v.fail(fs.name, fs.firstLine, ReasonRotationLink,
					fmt.Sprintf("previous file %s is missing and no prune record declares it", pf))
			}
			continue
		}
		prev := sums[i-1]
		if fs.records == 0 {
			if i == len(sums)-1 {
				continue // empty active file right after a rotation crash
			}
			v.fail(fs.name, 0, ReasonMissingRotate, "file has no records")
			continue
		}
		if !isRotate {
			v.fail(fs.name, fs.firstLine, ReasonMissingRotate, "first record is not a rotate record")
			continue
		}
		pf, ph := getString(fs.first, "prev_file"), getString(fs.first, "prev_file_last_hash")
		if pf == fs.name && ph == prev.lastHash {
			continue // the seed's benign self reference
		}
		if pf != prev.name || ph != prev.lastHash {
			v.fail(fs.name, fs.firstLine, ReasonRotationLink,
				fmt.Sprintf("rotate names %s/%s, expected %s/%s", pf, short(ph), prev.name, short(prev.lastHash)))
		}
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// VerifyIncremental verifies only what was appended after the newest signed
// checkpoint that carries resumable state: it starts at the checkpoint's
// head hash, seq and byte offset and checks the rest of that file and every
// later file (cost proportional to the new records). The records the
// checkpoint covers are trusted on the strength of its signature.
func VerifyIncremental(path string, o VerifyOptions) (*Result, error) {
	if o.CheckpointDir == "" || o.PublicKey == "" {
		return nil, errors.New("forensic: verify incremental: CheckpointDir and PublicKey are required")
	}
	if _, err := newVerifierFS(o); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
	}
	cps, bad, err := LoadCheckpoints(o.CheckpointDir, o.PublicKey)
	if err != nil {
		return nil, err
	}
	var cp *CheckpointState
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Hashes != nil || cps[i].Size == 0 {
			cp = cps[i]
			break
		}
	}
	if cp == nil {
		return VerifyAll(path, o)
	}
	files, err := listFiles(path)
	if err != nil {
		return nil, err
	}
	// the record with seq cp.Size lives in the first file rotated after it
	idx := len(files) - 1
	offset := cp.Offset
	for i, lf := range files[:len(files)-1] {
		if lf.seq >= 0 && uint64(lf.seq) == cp.Size {
			offset = 0 // that file ended right at the checkpoint: record <size> opens the next one
		}
		if lf.seq >= 0 && uint64(lf.seq) > cp.Size {
			idx = i
			break
		}
	}
	v, _ := newVerifierFS(o) // validated above
	v.res.Failures = append(v.res.Failures, bad...)
	r, _ := cp.rangeFrom()
	v.cr, v.crState, v.cps = r, 1, []*CheckpointState{}
	v.lastSeq, v.haveSeq = cp.Size-1, cp.Size > 0
	if v.fs != nil && cp.Size > 0 {
		// the epoch state continues from the checkpoint's head record
		var head []byte
		if offset > 0 {
			head = lastLineBefore(files[idx].path, offset)
		} else if idx > 0 {
			head = lastLineBefore(files[idx-1].path, -1)
		}
		if c, _, _, ok := quickFields(head); ok && c == cp.Head {
			v.fs.prime(head)
		}
	}
	prev := cp.Head
	if prev == "" {
		prev = "GENESIS"
	}
	st, err := os.Stat(files[idx].path)
	if err != nil {
		return nil, fmt.Errorf("forensic: verify %s: %w", files[idx].path, err)
	}
	if st.Size() < offset {
		v.fail(files[idx].name, 0, ReasonTruncated, fmt.Sprintf("file is %d bytes, checkpoint %d ends at %d", st.Size(), cp.Size, offset))
		v.res.OK = false
		return v.res, nil
	}
	var sums []*fileSum
	for i := idx; i < len(files); i++ {
		lf := files[i]
		start, p := int64(0), "GENESIS"
		if i == idx && offset > 0 {
			start, p = offset, prev
		}
		fs, err := v.verifyFile(lf.path, lf.name, start, 0, p)
		if err != nil {
			return nil, err
		}
		if i == idx && offset > 0 {
			fs.first = nil // the file's first record is covered by the checkpoint
		}
		sums = append(sums, fs)
		v.res.Files = append(v.res.Files, lf.name)
	}
	if offset == 0 && cp.Size > 0 && len(sums) > 0 && sums[0].first != nil {
		// a rotation checkpoint: the file starts with the rotate record
		// that must link to the checkpoint's head
		if getString(sums[0].first, "prev_file_last_hash") != cp.Head {
			v.fail(sums[0].name, sums[0].firstLine, ReasonRotationLink, "rotate record does not link to the checkpoint head")
		}
	}
	for i := 1; i < len(sums); i++ {
		fs := sums[i]
		if fs.records == 0 || fs.first == nil {
			continue
		}
		if getString(fs.first, "event_type") != "rotate" {
			v.fail(fs.name, fs.firstLine, ReasonMissingRotate, "first record is not a rotate record")
			continue
		}
		if getString(fs.first, "prev_file") != sums[i-1].name || getString(fs.first, "prev_file_last_hash") != sums[i-1].lastHash {
			v.fail(fs.name, fs.firstLine, ReasonRotationLink, "rotate record does not link to the previous file")
		}
	}
	v.res.CheckpointSize = cp.Size
	v.finishFS()
	v.res.OK = len(v.res.Failures) == 0
	return v.res, nil
}

func hmacNew(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// leafRec is a record hash collected by a parallel chunk for the Merkle check.
type leafRec struct {
	seq  uint64
	line int
	n    int
	curr [64]byte
}

// chunkBufs keeps chunk buffers (*[]byte) from one parallel verification
// to the next: a fresh one costs page faults and a clear of its size, which
// was about a tenth of the CPU time of verifying a 13 MB file.
var chunkBufs sync.Pool

// parallelMin is the file size from which verification splits the file
// into chunks checked on all cores. Lines are independent once the
// previous line's claimed curr_hash is known, which the chunk cutter reads
// from the line before each cut; the merge restores seq continuity, the
// Merkle feed and failure order, so the result equals the sequential one.
var (
	parallelMin int64 = 8 << 20
	chunkSize         = 4 << 20
	chunkSlack        = 64 << 10 // extra capacity of a chunk buffer for the line carried over
)

type chunkJob struct {
	data      []byte
	startLine int
	prev      []byte
	sub       *verifier
	fs        *fileSum
	err       error
	done      chan struct{} // closed when sub, fs and err are set
}

// parallelChunk is the chunk size for a file of size bytes on workers
// cores: at most chunkSize, and small enough that each worker gets about
// four chunks (the first chunk is read before any work starts, and the
// last one may run alone), but not below minChunk, where the per-chunk
// setup starts to show.
func parallelChunk(size int64, workers int) int {
	const minChunk = 1 << 20
	c := size / int64(4*workers)
	return int(min(int64(chunkSize), max(c, minChunk)))
}

func (v *verifier) verifyParallel(f io.Reader, size int64, path, name string, startLine int, prev string) (*fileSum, error) {
	workers := runtime.GOMAXPROCS(0)
	chunkSize := parallelChunk(size, workers)
	fs := &fileSum{name: name, lastHash: prev, firstLine: -1}
	var carry []byte
	line := startLine
	prevB := []byte(prev)
	eof := false
	var free [][]byte // chunk buffers of merged chunks, for reuse
	// cutNext reads the next chunk and cuts it at a newline that ends a
	// line in our layout; nil at the end of the file (main goroutine only)
	cutNext := func() (*chunkJob, error) {
		for !eof {
			var buf []byte
			need := len(carry) + chunkSize
			if n := len(free); n > 0 && cap(free[n-1]) >= need {
				buf, free = free[n-1][:len(carry)], free[:n-1]
			} else if p, _ := chunkBufs.Get().(*[]byte); p != nil && cap(*p) >= need {
				buf = (*p)[:len(carry)]
			} else {
				// slack for the carried-over partial line, so that the
				// buffer serves the next chunks too (a fresh one costs a
				// clear of chunkSize bytes)
				buf = make([]byte, len(carry), need+chunkSlack)
			}
			copy(buf, carry)
			n, err := io.ReadFull(f, buf[len(carry):need])
			buf = buf[:len(carry)+n]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				eof = true
			} else if err != nil {
				return nil, fmt.Errorf("forensic: verify %s: %w", path, err)
			}
			if eof {
				carry = nil
				if len(buf) == 0 {
					return nil, nil
				}
				return &chunkJob{data: buf, startLine: line, prev: prevB}, nil
			}
			cut := -1
			var next []byte
			end := len(buf)
			for tries := 0; end > 0 && tries < 64; tries++ {
				nl := bytes.LastIndexByte(buf[:end], '\n')
				if nl < 0 {
					break
				}
				ls := bytes.LastIndexByte(buf[:nl], '\n') + 1
				// the sequential verifier continues from the claimed
				// curr_hash of any line that parses; quickFields agrees
				if c, _, _, ok := quickFields(buf[ls:nl]); ok {
					cut, next = nl+1, []byte(c)
					break
				}
				end = nl
			}
			if cut < 0 { // no usable boundary: grow the chunk
				carry = buf
				continue
			}
			j := &chunkJob{data: buf[:cut], startLine: line, prev: prevB}
			line += bytes.Count(buf[:cut], []byte{'\n'})
			carry = append(carry[:0:0], buf[cut:]...)
			prevB = next
			return j, nil
		}
		return nil, nil
	}
	// Each chunk is verified as soon as it is cut, on at most `workers`
	// goroutines, while this goroutine reads the next one; outcomes are
	// merged in file order. No round barrier: a worker that finishes
	// takes the next chunk at once.
	sem := make(chan struct{}, workers)
	var inflight []*chunkJob // dispatched and not merged, in file order
	var verr error           // the first chunk error, in file order
	merge := func() {
		j := inflight[0]
		inflight = inflight[1:]
		<-j.done
		if verr == nil && j.err != nil {
			verr = j.err
		}
		if verr == nil {
			v.mergeChunk(fs, j)
		}
		free = append(free, j.data[:0]) // merged: nothing refers to it
	}
	var rerr error
	for verr == nil {
		// bound the chunks held when an early one is slow
		for len(inflight) >= 2*workers {
			merge()
		}
		j, err := cutNext()
		if err != nil || j == nil {
			rerr = err
			break
		}
		j.done = make(chan struct{})
		sem <- struct{}{}
		go func(j *chunkJob) {
			defer func() { <-sem; close(j.done) }()
			j.sub = newVerifier(v.o)
			if v.dual == nil {
				j.sub.dual = nil
			}
			j.sub.collect = v.cps != nil
			j.fs, j.err = j.sub.verifyLines(newMemLineReader(j.data), path, name, j.startLine, string(j.prev))
		}(j)
		inflight = append(inflight, j)
		for len(inflight) > 0 && isDone(inflight[0].done) {
			merge()
		}
	}
	for len(inflight) > 0 { // every goroutine ends before we return
		merge()
	}
	for i := range free {
		chunkBufs.Put(&free[i])
	}
	if verr != nil {
		return fs, verr
	}
	if rerr != nil {
		return fs, rerr
	}
	v.lastFile, v.lastLines = name, fs.lines
	return fs, nil
}

// isDone reports whether done is closed, without blocking.
func isDone(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// mergeChunk folds one chunk's outcome into the file summary, in order.
func (v *verifier) mergeChunk(fs *fileSum, j *chunkJob) {
	sub, cf := j.sub, j.fs
	subFails := sub.res.Failures
	if cf.hasSeq {
		if v.haveSeq && cf.firstSeq != v.lastSeq+1 {
			// in line order: the sequential pass reports a line's own
			// findings before the gap it opens
			k := 0
			for k < len(subFails) && subFails[k].Line <= cf.firstSeqLn {
				k++
			}
			v.res.Failures = append(v.res.Failures, subFails[:k]...)
			subFails = subFails[k:]
			v.fail(fs.name, cf.firstSeqLn, ReasonSeqGap, fmt.Sprintf("seq %d follows %d", cf.firstSeq, v.lastSeq))
		}
		if !fs.hasSeq {
			fs.firstSeq, fs.hasSeq, fs.firstSeqLn = cf.firstSeq, true, cf.firstSeqLn
		}
		v.lastSeq, v.haveSeq = sub.lastSeq, true
	}
	v.res.Failures = append(v.res.Failures, subFails...)
	for i := range sub.leaves {
		l := &sub.leaves[i]
		v.feedLeaf(fs.name, l.line, l.seq, l.curr[:l.n])
	}
	if fs.records == 0 && cf.records > 0 {
		fs.first, fs.firstLine = cf.first, cf.firstLine
	}
	fs.records += cf.records
	v.res.Records += cf.records
	if cf.records > 0 {
		fs.lastHash = cf.lastHash
	}
	if cf.lines > 0 {
		fs.lines = cf.lines
	}
}
