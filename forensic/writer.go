package forensic

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"
)

// FsyncPolicy says when the writer fsyncs (same values as kvh_fsync_policy).
type FsyncPolicy int

const (
	// FsyncInterval fsyncs at most every Options.FsyncInterval (group commit).
	FsyncInterval FsyncPolicy = 0
	// FsyncNone never fsyncs except on Flush, Checkpoint, rotation and Close.
	FsyncNone FsyncPolicy = 1
	// FsyncAlways makes Append return only after its record is durable.
	FsyncAlways FsyncPolicy = 2
)

// String returns "interval", "none" or "always".
func (p FsyncPolicy) String() string {
	switch p {
	case FsyncInterval:
		return "interval"
	case FsyncNone:
		return "none"
	case FsyncAlways:
		return "always"
	}
	return "FsyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Field is one caller-supplied key/value of a record. See Canonical for the
// value kinds. Slices and maps must not be modified after Append.
type Field struct {
	Key   string
	Value any
}

// Options configures a Writer.
type Options struct {
	Path               string              // active log file, e.g. forensics/kv_cache.log
	HMACKey            []byte              // nil = no HMAC
	KeyID              string              // "kid"; default: first 8 hex of SHA-256(key), or "none"
	MaxBytes           int64               // rotate above; 0 = 5_000_000
	Fsync              FsyncPolicy         // default FsyncInterval
	FsyncInterval      time.Duration       // 0 = 10ms
	CheckpointDir      string              // "" = no checkpoints
	CheckpointKeyPath  string              // note signer key file (GenerateKey)
	CheckpointEvery    int                 // records; 0 = 10000
	CheckpointInterval time.Duration       // 0 = 60s
	Origin             string              // checkpoint origin line; default "kvhygiene/<abs path>"
	OnFsync            func(time.Duration) // optional, metrics hook
	OnError            func(error)         // optional, async failures (fsync, rotation)
	// FSStatePath turns on the forward-secure MAC: the state file made by
	// GenerateFSKey (kvgate fs-keygen). Each record's hmac is then keyed
	// with the current epoch's key, every ended epoch gets a seal record
	// and the key evolves (the old one is overwritten). Exclusive with
	// HMACKey; kid is "fs:<key id>".
	FSStatePath string
	// FSClock is the clock that decides epochs (nil = time.Now); tests
	// inject one.
	FSClock func() time.Time
}

// Stats are the writer's counters.
type Stats struct {
	Records     uint64 // records written (including rotate/recovery records)
	Bytes       uint64 // bytes written
	Rotations   uint64
	FsyncErrors uint64
	LastSeq     uint64 // seq of the last record written
	Checkpoints uint64
}

var (
	// ErrLocked means another writer (process or Writer) holds the log.
	ErrLocked = errors.New("forensic: log is locked by another writer")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("forensic: writer closed")
	// ErrSymlink means the log path is a symbolic link (refused).
	ErrSymlink = errors.New("forensic: log path is a symbolic link")
	// ErrFsync is wrapped by the error an FsyncAlways Append gets when the
	// fsync covering its record failed (the file was rotated away).
	ErrFsync = errors.New("forensic: fsync failed")
)

// maxQueue bounds the records waiting for the writer goroutine; Append blocks
// beyond it (backpressure) and the queue stays cache-sized.
const maxQueue = 8192

type pending struct {
	ev     string
	fi, fn int
}

type ticketRange struct{ lo, hi uint64 }

// Writer appends records to a hash-chained log. It is safe for concurrent use.
type Writer struct {
	o         Options
	path      string
	dir       string
	stem, ext string
	kid       string
	origin    string
	lockf     *os.File
	syncFn    func(*os.File) error                // test hook
	writeFn   func(*os.File, []byte) (int, error) // test hook
	fs        *fsState                            // forward-secure MAC state (nil: off)

	mu        sync.Mutex
	cond      *sync.Cond
	q         []pending
	qf        []Field
	tickets   uint64 // records enqueued so far
	durable   uint64 // tickets fsynced
	flushWant uint64
	cpWant    uint64 // checkpoint requests
	cpDone    uint64
	cpErr     error
	closing   bool
	done      bool
	err       error
	fails     []ticketRange
	wake      chan struct{}
	parked    bool // writer goroutine waits for a signal (mu)
	exited    chan struct{}

	// owned by the writer goroutine (and Open before it starts)
	f          *os.File
	size       int64
	prev       []byte // running hash (hex) or GENESIS
	seq        uint64 // next seq
	fileRecs   int
	dirty      bool
	syncFailed bool // an fsync of the active file failed on the flusher: rotate, never retry
	lastSync   time.Time
	canon      []byte
	out        []byte
	enc        recordEncoder
	sha        hash.Hash
	mac        hash.Hash
	sum        []byte
	hexbuf     [64]byte
	rng        *mrand.ChaCha8
	signer     note.Signer
	cr         *compact.Range
	lastCPSize uint64
	lastCPTime time.Time
	pre        []preRec     // batch pipeline records
	encs       []*encWorker // batch pipeline workers
	chunkDone  chan int     // streamBatch: chunks encoded by helpers
	chunkReady []bool       // streamBatch: chunks encoded
	chunkErr   []error      // streamBatch: a chunk's encoding error
	dual       *sha2Mac     // interleaved hash+HMAC (sha2x.go) with the key of dualFor
	dualFor    hash.Hash
	fl         *flusher  // write(2) of the previous batch, in flight (flusher.go)
	bq         []pending // swapped batch
	bqf        []Field

	records, bytes, rotations, fsyncErrs, lastSeq, checkpoints atomic.Uint64
	pipelined                                                  atomic.Uint64 // records encoded by the batch pipeline
}

// Open opens (creating if needed) the log at o.Path for appending: it takes
// an exclusive flock on <path>.lock (a second writer gets an error wrapping
// ErrLocked), recovers a torn tail, finds the chain head and the next seq,
// and starts the writer goroutine.
func Open(o Options) (*Writer, error) {
	if o.Path == "" {
		return nil, errors.New("forensic: open: empty Path")
	}
	if o.Fsync < FsyncInterval || o.Fsync > FsyncAlways {
		return nil, fmt.Errorf("forensic: open %s: invalid fsync policy %d", o.Path, o.Fsync)
	}
	if o.MaxBytes < 0 || o.CheckpointEvery < 0 || o.FsyncInterval < 0 || o.CheckpointInterval < 0 {
		return nil, fmt.Errorf("forensic: open %s: negative size or interval option", o.Path)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 5_000_000
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = 10 * time.Millisecond
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 10000
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 60 * time.Second
	}
	if o.FSStatePath != "" && len(o.HMACKey) > 0 {
		return nil, fmt.Errorf("forensic: open %s: HMACKey and FSStatePath are exclusive (the forward-secure MAC replaces the static key)", o.Path)
	}
	abs, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("forensic: open %s: %w", o.Path, err)
	}
	w := &Writer{o: o, path: abs, dir: filepath.Dir(abs), syncFn: (*os.File).Sync, writeFn: (*os.File).Write}
	w.stem, w.ext = splitBase(filepath.Base(abs))
	w.kid = o.KeyID
	if w.kid == "" {
		if len(o.HMACKey) > 0 {
			s := sha256.Sum256(o.HMACKey)
			w.kid = hex.EncodeToString(s[:4])
		} else {
			w.kid = "none"
		}
	}
	w.origin = o.Origin
	if w.origin == "" {
		w.origin = "kvhygiene" + abs
	}
	w.cond = sync.NewCond(&w.mu)
	w.wake = make(chan struct{}, 1)
	w.exited = make(chan struct{})
	w.sha = sha256.New()
	if len(o.HMACKey) > 0 {
		w.mac = hmac.New(sha256.New, o.HMACKey)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("forensic: open %s: seed: %w", abs, err)
	}
	w.rng = mrand.NewChaCha8(seed)

	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return nil, fmt.Errorf("forensic: open %s: %w", abs, err)
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("forensic: open %s: %w", abs, ErrSymlink)
	} else if err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("forensic: open %s: not a regular file", abs)
	}
	lf, err := os.OpenFile(abs+".lock", os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("forensic: open %s: lock file: %w", abs, err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("forensic: open %s: %w", abs, ErrLocked)
		}
		return nil, fmt.Errorf("forensic: open %s: flock: %w", abs, err)
	}
	w.lockf = lf
	if o.FSStatePath != "" {
		if w.fs, err = openFSState(o.FSStatePath, o.FSClock); err != nil {
			w.releaseLock()
			return nil, fmt.Errorf("forensic: open %s: %w", abs, err)
		}
		w.kid = w.fs.kid()
		w.setFSKey()
	}
	if o.CheckpointDir != "" {
		if o.CheckpointKeyPath == "" {
			w.releaseLock()
			return nil, fmt.Errorf("forensic: open %s: CheckpointDir set without CheckpointKeyPath", abs)
		}
		if w.signer, err = loadSigner(o.CheckpointKeyPath); err != nil {
			w.releaseLock()
			return nil, err
		}
		if err := os.MkdirAll(o.CheckpointDir, 0o700); err != nil {
			w.releaseLock()
			return nil, fmt.Errorf("forensic: open %s: checkpoint dir: %w", abs, err)
		}
	}
	err = w.recover()
	if err == nil && w.fs != nil {
		err = w.fsAdvance()
	}
	if err != nil {
		if w.f != nil {
			w.f.Close()
		}
		w.releaseLock()
		return nil, err
	}
	w.lastSync = time.Now()
	w.lastCPTime = time.Now()
	w.fl = newFlusher()
	go w.loop()
	return w, nil
}

func (w *Writer) releaseLock() {
	if w.fs != nil {
		w.fs.close()
	}
	if w.lockf != nil {
		unix.Flock(int(w.lockf.Fd()), unix.LOCK_UN)
		w.lockf.Close()
		w.lockf = nil
	}
}

// scanInfo is what a scan of one file tells the writer.
type scanInfo struct {
	validEnd int64
	size     int64
	records  int
	lastHash string
	lastSeq  uint64
	hasSeq   bool
	firstSeq uint64
	lastLine []byte   // the last complete record line
	leaves   [][]byte // leaf hashes of records with seq >= leafFrom, in order
	leafSeq0 uint64   // seq of leaves[0]
}

// scanFile reads a whole file: every complete record line (terminated, JSON
// object with a curr_hash) advances validEnd; anything after the last one
// is a torn tail.
func scanFile(path string, leafFrom uint64, wantLeaves bool) (*scanInfo, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	si := &scanInfo{lastHash: "GENESIS"}
	lr := newLineReader(f, 1<<20)
	var pendingBlank int64 = -1
	for {
		line, off, term, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		si.size = lr.off
		if !term {
			break
		}
		if isBlank(line) {
			if pendingBlank < 0 {
				pendingBlank = off
			}
			continue
		}
		curr, seq, hasSeq, ok := quickFields(line)
		if !ok {
			break
		}
		pendingBlank = -1
		si.validEnd = lr.off
		si.records++
		si.lastHash = curr
		si.lastLine = append(si.lastLine[:0], line...)
		if hasSeq {
			if !si.hasSeq {
				si.firstSeq = seq
			}
			si.lastSeq, si.hasSeq = seq, true
			if wantLeaves && seq >= leafFrom {
				lh, ok := leafHash([]byte(curr))
				if ok {
					if len(si.leaves) == 0 {
						si.leaf0(seq)
					}
					si.leaves = append(si.leaves, lh)
				}
			}
		}
	}
	if st, err := f.Stat(); err == nil {
		si.size = st.Size()
	}
	return si, nil
}

func (si *scanInfo) leaf0(seq uint64) { si.leafSeq0 = seq }

// quickFields extracts curr_hash and seq from a record line (fast layout or
// any JSON layout). ok is false when the line is not a record.
func quickFields(line []byte) (curr string, seq uint64, hasSeq, ok bool) {
	if prefix, c, _, fast := fastSplit(line); fast {
		s, hs := topLevelSeq(prefix)
		return string(c), s, hs, true
	}
	m, err := parseLine(line)
	if err != nil {
		return "", 0, false, false
	}
	c := getString(m, "curr_hash")
	if c == "" {
		return "", 0, false, false
	}
	s, hs := getUint(m, "seq")
	return c, s, hs, true
}

// recover opens the active file, cuts a torn tail (backing it up to a
// .broken file and logging a recovery record), links an empty active file
// to the newest rotated file, and rebuilds the checkpoint Merkle state.
func (w *Writer) recover() error {
	files, err := listFiles(w.path)
	if err != nil {
		return err
	}
	rotated := files[:len(files)-1]
	var cpStart uint64
	var cpRange *compact.Range
	if w.signer != nil {
		cpRange, cpStart = w.loadOwnCheckpoint()
	}
	var si *scanInfo
	if _, err := os.Lstat(w.path); err == nil {
		if si, err = scanFile(w.path, cpStart, w.signer != nil); err != nil {
			return fmt.Errorf("forensic: open %s: scan: %w", w.path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forensic: open %s: %w", w.path, err)
	}
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("forensic: open %s: %w", w.path, err)
	}
	w.f = f
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("forensic: open %s: chmod: %w", w.path, err)
	}
	var recovery []Field
	if si != nil && si.size > si.validEnd {
		torn := make([]byte, si.size-si.validEnd)
		if _, err := f.ReadAt(torn, si.validEnd); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("forensic: open %s: read torn tail: %w", w.path, err)
		}
		broken, err := w.saveBroken(torn)
		if err != nil {
			return err
		}
		if err := f.Truncate(si.validEnd); err != nil {
			return fmt.Errorf("forensic: open %s: cut torn tail: %w", w.path, err)
		}
		if err := w.syncFn(f); err != nil {
			return fmt.Errorf("forensic: open %s: fsync after cut: %w", w.path, err)
		}
		sum := sha256.Sum256(torn)
		recovery = []Field{
			{"removed_bytes", len(torn)},
			{"removed_offset", si.validEnd},
			{"removed_sha256", hex.EncodeToString(sum[:])},
			{"broken_file", filepath.Base(broken)},
			{"reason", "torn tail"},
		}
	}
	w.size = 0
	w.prev = append(w.prev[:0], "GENESIS"...)
	if si != nil {
		w.size = si.validEnd
		w.fileRecs = si.records
		if si.records > 0 {
			w.prev = append(w.prev[:0], si.lastHash...)
		}
	}
	var needRotate *logFile
	var rotInfo *scanInfo
	if w.fileRecs == 0 && len(rotated) > 0 {
		needRotate = &rotated[len(rotated)-1]
		if rotInfo, err = scanFile(needRotate.path, cpStart, w.signer != nil); err != nil {
			return fmt.Errorf("forensic: open %s: scan %s: %w", w.path, needRotate.name, err)
		}
	}
	switch {
	case si != nil && si.hasSeq:
		w.seq = si.lastSeq + 1
	case rotInfo != nil && rotInfo.hasSeq:
		w.seq = rotInfo.lastSeq + 1
	case len(rotated) > 0:
		if ri, err := scanFile(rotated[len(rotated)-1].path, 0, false); err == nil && ri.hasSeq {
			w.seq = ri.lastSeq + 1
		}
	}
	if w.signer != nil {
		if err := w.rebuildRange(cpRange, cpStart, rotated, si, rotInfo); err != nil {
			return err
		}
	}
	var lastLine []byte
	switch {
	case si != nil && si.records > 0:
		lastLine = si.lastLine
	case rotInfo != nil:
		lastLine = rotInfo.lastLine
	case len(rotated) > 0:
		if ri, err := scanFile(rotated[len(rotated)-1].path, 0, false); err == nil {
			lastLine = ri.lastLine
		}
	}
	if err := w.fsCheckLog(lastLine); err != nil {
		return err
	}
	w.lastSeq.Store(w.seq - 1)
	if needRotate != nil {
		w.writeRotateRecord(needRotate.name, rotInfo.lastHash)
	}
	if recovery != nil {
		w.encodeAppend("recovery", recovery, time.Now().UnixNano())
	}
	if len(w.out) > 0 {
		if err := w.writeOut(); err != nil {
			return err
		}
		if err := w.syncFn(w.f); err != nil {
			return fmt.Errorf("forensic: open %s: fsync: %w", w.path, err)
		}
	}
	return nil
}

func (w *Writer) saveBroken(torn []byte) (string, error) {
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s.broken-%d-%d", w.path, time.Now().Unix(), i)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("forensic: open %s: back up torn tail: %w", w.path, err)
		}
		_, err = f.Write(torn)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("forensic: open %s: back up torn tail: %w", w.path, err)
		}
		return name, nil
	}
}

// loadOwnCheckpoint returns the newest checkpoint's compact range (verified
// with our own signer's public half is unnecessary: we only trust files in
// our own directory) and its size.
func (w *Writer) loadOwnCheckpoint() (*compact.Range, uint64) {
	ents, err := os.ReadDir(w.o.CheckpointDir)
	if err != nil {
		return rangeFactory.NewEmptyRange(0), 0
	}
	for i := len(ents) - 1; i >= 0; i-- {
		name := ents[i].Name()
		if filepath.Ext(name) != ".state" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(w.o.CheckpointDir, name))
		if err != nil {
			continue
		}
		var sc cpSidecar
		if json.Unmarshal(b, &sc) != nil {
			continue
		}
		var hs [][]byte
		okAll := true
		for _, h := range sc.Hashes {
			x, err := hex.DecodeString(h)
			if err != nil {
				okAll = false
				break
			}
			hs = append(hs, x)
		}
		if !okAll {
			continue
		}
		r, err := rangeFactory.NewRange(0, sc.Size, hs)
		if err != nil {
			continue
		}
		w.lastCPSize = sc.Size
		return r, sc.Size
	}
	return rangeFactory.NewEmptyRange(0), 0
}

// rebuildRange extends the checkpoint compact range with every record from
// the checkpoint's size up to the head.
func (w *Writer) rebuildRange(r *compact.Range, from uint64, rotated []logFile, active, rot *scanInfo) error {
	w.cr = r
	if w.seq <= from {
		if w.seq < from {
			// log is behind its own checkpoint (lost or cut records): say so,
			// then start the tree over from the log; verification against
			// the older, larger checkpoint will report the truncation.
			if w.o.OnError != nil {
				w.o.OnError(fmt.Errorf("forensic: open %s: log has %d records, its newest checkpoint covers %d", w.path, w.seq, from))
			}
			w.cr = rangeFactory.NewEmptyRange(0)
			from = 0
		} else {
			return nil
		}
	}
	// gather leaves [from, w.seq) from rotated files (newest ones only) and the active one
	var leaves [][]byte
	next := from
	for _, lf := range rotated {
		if lf.seq >= 0 && uint64(lf.seq) <= from {
			continue // rotated before the checkpoint
		}
		si := rot
		if si == nil || lf.path != rotated[len(rotated)-1].path {
			var err error
			if si, err = scanFile(lf.path, from, true); err != nil {
				return fmt.Errorf("forensic: open %s: rebuild checkpoint state: %w", w.path, err)
			}
		}
		for i, lh := range si.leaves {
			if si.leafSeq0+uint64(i) == next {
				leaves = append(leaves, lh)
				next++
			}
		}
	}
	if active != nil {
		for i, lh := range active.leaves {
			if active.leafSeq0+uint64(i) == next {
				leaves = append(leaves, lh)
				next++
			}
		}
	}
	if next != w.seq {
		return fmt.Errorf("forensic: open %s: cannot rebuild checkpoint state: records %d..%d not found", w.path, next, w.seq)
	}
	for _, lh := range leaves {
		if err := w.cr.Append(lh, nil); err != nil {
			return fmt.Errorf("forensic: open %s: rebuild checkpoint state: %w", w.path, err)
		}
	}
	return nil
}

// Append adds one record. It validates the fields and enqueues them; the
// writer goroutine computes the chain and writes in batches. With
// FsyncAlways it returns after the record is durable. It returns an error
// once the writer has failed or is closed (ErrClosed).
func (w *Writer) Append(eventType string, fields ...Field) error {
	if err := checkKeys(eventType, fields); err != nil {
		return err
	}
	return w.appendValues(eventType, fields)
}

// AppendConst is Append for callers whose event type and field keys are
// constants of their own code (the core's lifecycle records): only the values
// are validated on the caller's path. The keys are checked once per distinct
// field list when the writer goroutine builds its encoding template; a list
// that Append would refuse (a reserved or duplicate key, invalid UTF-8) stops
// the writer with an error naming it, before the record holding it is written.
func (w *Writer) AppendConst(eventType string, fields ...Field) error {
	if eventType == "" || !validUTF8(eventType) {
		return checkKeys(eventType, nil)
	}
	return w.appendValues(eventType, fields)
}

// checkKeys is Append's check of the event type and the field keys.
func checkKeys(eventType string, fields []Field) error {
	if eventType == "" {
		return errors.New("forensic: append: empty event type")
	}
	if !validUTF8(eventType) {
		return fmt.Errorf("forensic: append: event type: %w: not valid UTF-8", ErrUnsupported)
	}
	// One pass over the keys: the high bits of all their bytes (ASCII is
	// checked once at the end; a key with others is then checked alone), and
	// a signature of each (length and first eight bytes). A key is compared
	// with an earlier one only when their signatures agree, which for
	// distinct keys is nearly never (and looked for only when a 64-bit filter
	// of the earlier signatures has its bit), and with the reserved keys only
	// when its length is one of theirs.
	var sigs [16]uint64
	var high, seen uint64
	for i := range fields {
		k := fields[i].Key
		pfx, h := keyScan(k)
		high |= h
		if len(k) < 64 && reservedLens>>len(k)&1 != 0 && reserved(k) {
			return fmt.Errorf("forensic: append %s: field %q is set by the writer", eventType, k)
		}
		sig := pfx ^ uint64(len(k))
		// seen has one of 64 bits set per earlier signature: a key whose
		// bit is clear cannot repeat an earlier one (up to 16 keys)
		bit := uint64(1) << ((sig * 0x9e3779b97f4a7c15) >> 58)
		if seen&bit != 0 || i >= len(sigs) {
			for j := 0; j < i; j++ {
				if (j >= len(sigs) || sigs[j] == sig) && fields[j].Key == k {
					return fmt.Errorf("forensic: append %s: duplicate field %q", eventType, k)
				}
			}
		}
		seen |= bit
		if i < len(sigs) {
			sigs[i] = sig
		}
	}
	if high&0x8080808080808080 != 0 {
		for _, f := range fields {
			if !utf8.ValidString(f.Key) {
				return fmt.Errorf("forensic: append %s: field key: %w: not valid UTF-8", eventType, ErrUnsupported)
			}
		}
	}
	return nil
}

// reservedLens has bit n set when a reserved key is n bytes long.
var reservedLens = func() (m uint64) {
	for k := range reservedKeys {
		m |= 1 << len(k)
	}
	return m
}()

// keyScan returns keyPrefix(k) and the OR of k's bytes in eight-byte words
// (any byte >= 0x80 sets a bit of 0x8080808080808080).
func keyScan(k string) (pfx, high uint64) {
	n := len(k)
	if n < 8 {
		for i := 0; i < n; i++ {
			pfx |= uint64(k[i]) << (56 - 8*i)
		}
		return pfx, pfx
	}
	p := unsafe.StringData(k)
	w := binary.LittleEndian.Uint64(unsafe.Slice(p, 8))
	pfx, high = bits.ReverseBytes64(w), w
	for i := 8; i+8 <= n; i += 8 {
		high |= binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(p), i)), 8))
	}
	// the last eight bytes (overlapping what was read) cover the tail
	return pfx, high | binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(p), n-8)), 8))
}

func (w *Writer) appendValues(eventType string, fields []Field) error {
	for _, f := range fields {
		if err := validateValue(f.Value); err != nil {
			return fmt.Errorf("forensic: append %s: field %q: %w", eventType, f.Key, err)
		}
	}
	w.mu.Lock()
	for len(w.q) >= maxQueue && w.err == nil && !w.closing {
		w.cond.Wait()
	}
	if w.err != nil || w.closing {
		err := w.err
		w.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	w.q = append(w.q, pending{ev: eventType, fi: len(w.qf), fn: len(fields)})
	w.qf = append(w.qf, fields...)
	w.tickets++
	ticket := w.tickets
	if w.o.Fsync != FsyncAlways {
		wake := w.parked
		w.parked = false
		w.mu.Unlock()
		if wake {
			w.signal()
		}
		return nil
	}
	w.signal()
	for w.durable < ticket && w.err == nil {
		w.cond.Wait()
	}
	err := w.ticketErr(ticket)
	w.mu.Unlock()
	return err
}

// validUTF8 is utf8.ValidString with an inline ASCII loop first: keys and
// event types are short ASCII constants, for which the call costs more than
// the check.
func validUTF8(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))&0x8080808080808080 != 0 {
			return utf8.ValidString(s)
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.ValidString(s)
		}
	}
	return true
}

// reserved reports whether key is one of reservedKeys. The switch rejects
// every other key with a length check and a compare or two, where the map
// lookup hashed each key of each record on the caller's path.
func reserved(key string) bool {
	switch key {
	case "event_type", "prev_hash", "curr_hash", "hmac", "seq", "kid", "fse":
		return reservedKeys[key]
	}
	return false
}

// ticketErr (mu held) reports whether the record with this ticket was lost
// to a failed fsync or a writer failure.
func (w *Writer) ticketErr(ticket uint64) error {
	for _, r := range w.fails {
		if ticket > r.lo && ticket <= r.hi {
			return fmt.Errorf("forensic: append: %w (record in a rotated-away file)", ErrFsync)
		}
	}
	if w.durable < ticket && w.err != nil {
		return w.err
	}
	return nil
}

func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush returns when everything appended so far is written and fsynced.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrClosed
	}
	target := w.tickets
	if w.flushWant < target {
		w.flushWant = target
	}
	w.signal()
	for w.durable < target && w.err == nil {
		w.cond.Wait()
	}
	if w.durable < target {
		return w.err
	}
	return nil
}

// Checkpoint writes a signed checkpoint covering everything appended so far
// (ErrNoCheckpoint if not configured).
func (w *Writer) Checkpoint() error {
	if w.signer == nil {
		return ErrNoCheckpoint
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done || w.closing {
		return ErrClosed
	}
	w.cpWant++
	want := w.cpWant
	if w.flushWant < w.tickets {
		w.flushWant = w.tickets
	}
	w.signal()
	for w.cpDone < want && w.err == nil {
		w.cond.Wait()
	}
	if w.cpDone < want {
		return w.err
	}
	return w.cpErr
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	return Stats{
		Records: w.records.Load(), Bytes: w.bytes.Load(), Rotations: w.rotations.Load(),
		FsyncErrors: w.fsyncErrs.Load(), LastSeq: w.lastSeq.Load(), Checkpoints: w.checkpoints.Load(),
	}
}

// Close writes and fsyncs everything queued, writes a final checkpoint when
// configured and records were added since the last one, and releases the
// lock. Append after Close returns ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.done || w.closing {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closing = true
	w.mu.Unlock()
	w.signal()
	<-w.exited
	w.mu.Lock()
	err := w.err
	w.done = true
	w.cond.Broadcast()
	w.mu.Unlock()
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("forensic: close %s: %w", w.path, cerr)
	}
	w.releaseLock()
	return err
}

// ---- writer goroutine ----

func (w *Writer) loop() {
	defer close(w.exited)
	defer func() {
		if err := w.stopFlusher(); err != nil {
			w.mu.Lock()
			first := w.err == nil
			w.mu.Unlock()
			if first {
				w.fail(err)
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lastWork := time.Now()
	for {
		w.waitWork(timer, lastWork)
		w.mu.Lock()
		w.q, w.bq = w.bq[:0], w.q
		w.qf, w.bqf = w.bqf[:0], w.qf
		flushWant, cpWant, closing := w.flushWant, w.cpWant, w.closing
		batchEnd := w.tickets
		w.cond.Broadcast() // queue space freed
		w.mu.Unlock()

		var err error
		if len(w.bq) > 0 {
			lastWork = time.Now()
		}
		if w.fs != nil {
			err = w.fsAdvance()
		}
		if err == nil {
			err = w.appendBatch(w.bq, w.bqf)
		}
		clear(w.bqf) // drop references to caller values
		if err == nil {
			err = w.drain() // the previous batch's write (and fsync) overlapped this one's encoding
		}
		if err != nil {
			w.fail(err)
			return
		}
		var failed *ticketRange
		now := time.Now()
		dirty := w.dirty || len(w.out) > 0
		urgent := w.o.Fsync == FsyncAlways || flushWant > w.durableTicket() || closing || w.syncFailed
		intervalDue := w.o.Fsync == FsyncInterval && now.Sub(w.lastSync) >= w.o.FsyncInterval
		cpDue := w.signer != nil && w.cr.End() > w.lastCPSize &&
			(w.cr.End()-w.lastCPSize >= uint64(w.o.CheckpointEvery) || now.Sub(w.lastCPTime) >= w.o.CheckpointInterval || closing)
		cpReq := cpWant > w.cpDoneTicket()
		// A routine interval fsync nobody waits for runs on the flusher after
		// the write, overlapping the next batch; durable advances when it is
		// collected (drain).
		deferSync := dirty && intervalDue && !urgent && !cpDue && !cpReq
		err = w.writeOutAsync(deferSync, batchEnd)
		if err != nil {
			w.fail(err)
			return
		}
		needSync := w.dirty && !deferSync && (urgent || intervalDue || cpDue || cpReq)
		if needSync {
			if err := w.drain(); err != nil {
				w.fail(err)
				return
			}
			if !w.sync() {
				w.mu.Lock()
				lo := w.durable
				w.mu.Unlock()
				failed = &ticketRange{lo: lo, hi: batchEnd}
				if rerr := w.rotate(); rerr != nil {
					w.fail(rerr)
					return
				}
			}
		}
		var cpErr error
		if cpDue || cpReq {
			if err := w.drain(); err != nil {
				w.fail(err)
				return
			}
			cpErr = w.checkpoint()
			if cpErr != nil && w.o.OnError != nil {
				w.o.OnError(cpErr)
			}
		}
		w.mu.Lock()
		if !w.dirty || failed != nil {
			w.durable = batchEnd
		}
		if failed != nil {
			w.fails = append(w.fails, *failed)
		}
		if cpReq {
			w.cpDone = cpWant
			w.cpErr = cpErr
		}
		more := len(w.q) > 0
		exit := closing && !more
		w.cond.Broadcast()
		w.mu.Unlock()
		if !more {
			// going idle: finish the write now, so its errors and byte
			// count do not wait for the next record
			if err := w.drain(); err != nil {
				w.fail(err)
				return
			}
		}
		if exit {
			return
		}
		if more {
			w.signal()
			continue
		}
		var d time.Duration = time.Hour
		if w.dirty && w.o.Fsync == FsyncInterval {
			d = w.o.FsyncInterval - time.Since(w.lastSync)
		}
		if w.signer != nil && w.cr.End() > w.lastCPSize {
			if cd := w.o.CheckpointInterval - time.Since(w.lastCPTime); cd < d {
				d = cd
			}
		}
		if w.fs != nil {
			// wake at the epoch boundary to seal even an empty epoch
			if fd := w.fs.nextBoundary().Sub(w.fs.now()); fd < d {
				d = fd
			}
		}
		if d < 0 {
			d = 0
		}
		timer.Reset(d)
	}
}

// Group-commit linger: unless someone waits (FsyncAlways, Flush,
// Checkpoint, Close) the writer lets a small batch grow for up to
// lingerDelay so that one write(2) carries many records.
const (
	lingerDelay   = 200 * time.Microsecond
	lingerRecords = 256
	parkAfter     = 20 * time.Millisecond
)

// waitWork blocks until there is something to do. FsyncAlways wakes on
// every Append. Otherwise the writer polls every lingerDelay while records
// keep coming (so Append rarely has to wake it: a wake-up costs a futex
// call on the caller's path) and parks, to be woken by the next Append,
// after parkAfter without records.
func (w *Writer) waitWork(timer *time.Timer, lastWork time.Time) {
	if w.o.Fsync == FsyncAlways {
		select {
		case <-w.wake:
		case <-timer.C:
		}
		return
	}
	for {
		w.mu.Lock()
		n := len(w.q)
		urgent := w.flushWant > w.durable || w.cpWant > w.cpDone || w.closing
		if urgent || n >= lingerRecords {
			w.mu.Unlock()
			return
		}
		if n > 0 || time.Since(lastWork) < parkAfter {
			w.mu.Unlock()
			time.Sleep(lingerDelay)
			if n > 0 {
				return
			}
			select {
			case <-timer.C:
				return
			default:
			}
			continue
		}
		w.parked = true
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-timer.C:
		}
		w.mu.Lock()
		w.parked = false
		w.mu.Unlock()
		return
	}
}

func (w *Writer) durableTicket() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durable
}

func (w *Writer) cpDoneTicket() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cpDone
}

func (w *Writer) fail(err error) {
	if w.o.OnError != nil {
		w.o.OnError(err)
	}
	w.mu.Lock()
	w.err = err
	w.cond.Broadcast()
	w.mu.Unlock()
	// drain the wake channel users may still signal; exit
}

// sync fsyncs the active file; a failure is counted and reported, never retried.
func (w *Writer) sync() bool {
	if w.syncFailed {
		return false // a deferred fsync of this file failed (drain reported it)
	}
	t := time.Now()
	err := w.syncFn(w.f)
	if w.o.OnFsync != nil {
		w.o.OnFsync(time.Since(t))
	}
	w.lastSync = time.Now()
	if err != nil {
		w.fsyncErrs.Add(1)
		if w.o.OnError != nil {
			w.o.OnError(fmt.Errorf("forensic: fsync %s: %w: %w", w.path, ErrFsync, err))
		}
		return false
	}
	w.dirty = false
	return true
}

// rotateFull writes out what is buffered, fsyncs it (a failure marks the
// records written since the last durable point as failed: the old file's
// data is suspect, and it is rotated away anyway) and rotates.
func (w *Writer) rotateFull() error {
	if err := w.writeOut(); err != nil {
		return err
	}
	if w.dirty && !w.sync() {
		w.mu.Lock()
		w.fails = append(w.fails, ticketRange{lo: w.durable, hi: w.tickets})
		w.mu.Unlock()
	}
	if !w.dirty {
		// synced, so clean: the whole file leaves the page cache (what
		// dropBehind does behind the end of a growing file)
		dropFn(w.f, 0, w.size)
	}
	return w.rotate()
}

// appendRecord encodes one record into the output buffer, rotating first
// when it would push the file past MaxBytes.
func (w *Writer) appendRecord(ev string, fields []Field, ts int64) error {
	line := w.encodeLine(ev, fields, ts)
	if err := w.enc.err; err != nil {
		return err
	}
	if w.fileRecs > 0 && w.size+int64(len(w.out))+int64(len(line)) > w.o.MaxBytes {
		if err := w.rotateFull(); err != nil {
			return err
		}
		line = w.encodeLine(ev, fields, ts)
	}
	w.commitLine(line)
	if len(w.out) >= 1<<20 {
		return w.writeOut()
	}
	return nil
}

// encodeAppend is appendRecord without rotation (used by Open).
func (w *Writer) encodeAppend(ev string, fields []Field, ts int64) {
	w.commitLine(w.encodeLine(ev, fields, ts))
}

func (w *Writer) commitLine(line []byte) {
	w.out = append(w.out, line...)
	w.prev = append(w.prev[:0], w.hexbuf[:]...)
	w.commitMeta(w.sum)
}

// commitMeta does the bookkeeping of one committed record with hash sum.
func (w *Writer) commitMeta(sum []byte) {
	if w.cr != nil {
		w.cr.Append(rfcLeaf(sum), nil)
	}
	w.lastSeq.Store(w.seq)
	w.seq++
	w.fileRecs++
	w.records.Add(1)
}

// writeOut writes w.out synchronously, after the write in flight (if any).
func (w *Writer) writeOut() error {
	if err := w.drain(); err != nil {
		return err
	}
	if len(w.out) == 0 {
		return nil
	}
	n, err := w.writeFn(w.f, w.out)
	w.size += int64(n)
	w.bytes.Add(uint64(n))
	w.out = w.out[:0]
	w.dirty = true
	if err != nil {
		return fmt.Errorf("forensic: write %s: %w", w.path, err)
	}
	return nil
}

// rotate renames the active file to a unique rotated name (never replacing
// anything), checkpoints, creates a new active file and writes its rotate record.
func (w *Writer) rotate() error {
	if w.signer != nil && w.cr.End() > w.lastCPSize {
		// record <size> will be the rotate record at offset 0 of the next file
		if err := w.checkpointAt(0); err != nil && w.o.OnError != nil {
			w.o.OnError(err)
		}
	}
	epoch := time.Now().Unix()
	var name string
	for extra := 0; ; extra++ {
		name = rotatedName(w.stem, w.ext, epoch, w.seq, extra)
		err := renameNoReplace(w.path, filepath.Join(w.dir, name))
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || extra > 1000 {
			return fmt.Errorf("forensic: rotate %s: %w", name, err)
		}
	}
	w.f.Close()
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("forensic: rotate %s: new file: %w", name, err)
	}
	w.f = f
	w.size = 0
	w.fileRecs = 0
	w.dirty = true
	w.syncFailed = false
	lastHash := string(w.prev)
	w.prev = append(w.prev[:0], "GENESIS"...)
	w.writeRotateRecord(name, lastHash)
	w.rotations.Add(1)
	if err := w.writeOut(); err != nil {
		return err
	}
	if err := syncDir(w.dir); err != nil && w.o.OnError != nil {
		w.o.OnError(fmt.Errorf("forensic: rotate %s: fsync dir: %w", name, err))
	}
	return nil
}

func (w *Writer) writeRotateRecord(prevFile, prevLast string) {
	w.prev = append(w.prev[:0], "GENESIS"...)
	w.fileRecs = 0
	w.commitLine(w.encodeLine("rotate", []Field{{"prev_file", prevFile}, {"prev_file_last_hash", prevLast}}, time.Now().UnixNano()))
}

func (w *Writer) checkpoint() error { return w.checkpointAt(w.size + int64(len(w.out))) }

// checkpointAt signs a checkpoint whose sidecar says record <size> starts at
// byte off of the file that will hold it.
func (w *Writer) checkpointAt(off int64) error {
	size := w.cr.End()
	_, err := writeCheckpoint(w.o.CheckpointDir, w.signer, w.origin, w.cr, string(w.prev), filepath.Base(w.path), off)
	if err != nil {
		return err
	}
	w.lastCPSize = size
	w.lastCPTime = time.Now()
	w.checkpoints.Add(1)
	return nil
}

func rfcLeaf(sum []byte) []byte {
	// RFC 6962 leaf hash SHA-256(0x00 || sum) (= leafOf) without the
	// hasher allocation of rfc6962.HashLeaf
	if len(sum) != sha256.Size {
		return leafOf(sum)
	}
	var b [1 + sha256.Size]byte
	copy(b[1:], sum)
	h := sha256.Sum256(b[:])
	return h[:]
}

// encodeLine builds the canonical record for (ev, fields) at the current
// seq/prev, hashes it and returns the full line (with curr_hash, hmac, '\n').
// The returned slice aliases w.canon.
func (w *Writer) encodeLine(ev string, fields []Field, ts int64) []byte {
	b, _, _ := encodeCanon(w.canon[:0], &w.enc, w.rng, w.kid, w.fseValue(), ev, fields, ts, w.prev, w.seq, false)
	if d := w.dualHasher(); d != nil {
		// hash and HMAC of prev + canonical together
		var sum, mac [32]byte
		d.sumMacChain(&sum, &mac, w.prev, b[:len(b)-1])
		w.sum = append(w.sum[:0], sum[:]...)
		hexEncode32(&w.hexbuf, &sum)
		b = b[:len(b)-1]
		b = append(b, sufCurr...)
		b = append(b, w.hexbuf[:]...)
		b = append(b, sufMac...)
		var mh [64]byte
		hexEncode32(&mh, &mac)
		b = append(b, mh[:]...)
		b = append(b, '"', '}', '\n')
		w.canon = b
		return b
	}
	// hash prev + canonical
	w.sha.Reset()
	w.sha.Write(w.prev)
	w.sha.Write(b)
	w.sum = w.sha.Sum(w.sum[:0])
	hex.Encode(w.hexbuf[:], w.sum)
	b = b[:len(b)-1]
	b = append(b, sufCurr...)
	b = append(b, w.hexbuf[:]...)
	b = append(b, '"')
	if w.mac != nil {
		canonEnd := len(b) - (len(sufCurr) + 64 + 1)
		w.mac.Reset()
		w.mac.Write(w.prev)
		w.mac.Write(b[:canonEnd])
		w.mac.Write([]byte{'}'})
		var ms [sha256.Size]byte
		mac := w.mac.Sum(ms[:0])
		b = append(b, `,"hmac":"`...)
		var mh [64]byte
		hex.Encode(mh[:], mac)
		b = append(b, mh[:]...)
		b = append(b, '"')
	}
	b = append(b, '}', '\n')
	w.canon = b
	return b
}
