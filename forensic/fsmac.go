package forensic

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Forward-secure MAC (Bellare–Yee key evolution). See the package
// documentation, section "Forward-secure MAC", for the formats.

const (
	fsKeyPrefix   = "kvh-fs1:"
	fsEvolveLabel = "kvhygiene fs evolve"
	fsIDLabel     = "kvhygiene fs id"

	fsStateMagic   = "KVHFSST1"
	fsStateVersion = 1
	fsStateSize    = 112 // fixed size of the state file
	fsOffEpoch     = 40  // epoch, key and checksum are rewritten in place from here
	fsOffKey       = 48
	fsOffSum       = 80

	// FSMinEpoch and FSMaxEpoch bound the epoch length.
	FSMinEpoch = time.Second
	// FSMaxEpoch is the longest epoch length accepted (366 days).
	FSMaxEpoch = 366 * 24 * time.Hour

	fsMaxStart = 1 << 40 // start times are unix seconds below this

	// fsSealEach is the largest number of elapsed epochs sealed with one
	// seal record each; a longer gap gets one range seal.
	fsSealEach = 1024
	// fsMaxSteps bounds the key evolutions a writer or verifier performs
	// (2^26 epochs: two years of 1 s epochs).
	fsMaxSteps = 1 << 26
)

// ErrFSState is wrapped by the errors about a forward-secure state file
// (missing, corrupt, wrong log).
var ErrFSState = errors.New("forensic: forward-secure state")

// FSKey is a parsed forward-secure verification key: the initial key k_0
// and the epoch schedule. The text form (String) is
// kvh-fs1:<64 hex k_0>:<start unix seconds>:<epoch seconds>.
type FSKey struct {
	Start time.Time     // start of epoch 0 (whole seconds)
	Epoch time.Duration // epoch length (whole seconds)
	k0    [32]byte
}

// ID is the key id the writer puts in records' kid as "fs:<ID>": the first
// 8 hex digits of SHA-256("kvhygiene fs id" || k_0).
func (k *FSKey) ID() string { return fsKeyID(k.k0[:]) }

// String returns the verification key text.
func (k *FSKey) String() string {
	return fmt.Sprintf("%s%s:%d:%d", fsKeyPrefix, hex.EncodeToString(k.k0[:]), k.Start.Unix(), int64(k.Epoch/time.Second))
}

// EpochAt returns the epoch that contains t (0 before Start).
func (k *FSKey) EpochAt(t time.Time) uint64 {
	return fsEpochAt(k.Start.Unix(), int64(k.Epoch/time.Second), t)
}

func fsEpochAt(start, epochSec int64, t time.Time) uint64 {
	d := t.UnixNano() - start*1e9
	if d <= 0 {
		return 0
	}
	return uint64(d / (epochSec * 1e9))
}

func fsKeyID(k0 []byte) string {
	h := sha256.New()
	h.Write([]byte(fsIDLabel))
	h.Write(k0)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// fsEvolve sets k to k_{e+1} = HMAC-SHA256(k_e, "kvhygiene fs evolve" || be64(e+1)),
// given k = k_e, and zeroes the intermediate copies.
func fsEvolve(k *[32]byte, e uint64) {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte(fsEvolveLabel))
	var be [8]byte
	binary.BigEndian.PutUint64(be[:], e+1)
	m.Write(be[:])
	var out [32]byte
	m.Sum(out[:0])
	*k = out
	clear(out[:])
}

// ParseFSKey parses and strictly validates a verification key text
// (surrounding white space is ignored).
func ParseFSKey(text string) (*FSKey, error) {
	text = strings.TrimSpace(text)
	bad := func(format string, a ...any) (*FSKey, error) {
		return nil, fmt.Errorf("forensic: forward-secure key: "+format, a...)
	}
	if !strings.HasPrefix(text, fsKeyPrefix) {
		if strings.HasPrefix(text, fsStateMagic) {
			return bad("this is a writer state file, not a verification key")
		}
		return bad("does not start with %q (expected kvh-fs1:<64 hex>:<start unix seconds>:<epoch seconds>)", fsKeyPrefix)
	}
	parts := strings.Split(text[len(fsKeyPrefix):], ":")
	if len(parts) != 3 {
		return bad("want 3 fields after %q (key:start:epoch), got %d", fsKeyPrefix, len(parts))
	}
	if len(parts[0]) != 64 {
		return bad("key must be 64 lowercase hex digits, got %d characters", len(parts[0]))
	}
	var k FSKey
	for i := 0; i < 64; i++ {
		c := parts[0][i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return bad("key must be 64 lowercase hex digits (bad character at %d)", i)
		}
	}
	if _, err := hex.Decode(k.k0[:], []byte(parts[0])); err != nil {
		return bad("key: %w", err)
	}
	start, err := parseDecimal(parts[1], fsMaxStart)
	if err != nil {
		return bad("start: %w", err)
	}
	ep, err := parseDecimal(parts[2], int64(FSMaxEpoch/time.Second))
	if err != nil {
		return bad("epoch seconds: %w", err)
	}
	if ep < int64(FSMinEpoch/time.Second) {
		return bad("epoch seconds: must be at least %d", int64(FSMinEpoch/time.Second))
	}
	k.Start = time.Unix(start, 0).UTC()
	k.Epoch = time.Duration(ep) * time.Second
	return &k, nil
}

// parseDecimal parses a plain non-negative decimal integer <= max (no sign,
// no leading zeros).
func parseDecimal(s string, max int64) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a non-negative decimal integer", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > max {
		return 0, fmt.Errorf("%q is out of range (max %d)", s, max)
	}
	return v, nil
}

// GenerateFSKey creates a forward-secure writer state file at statePath
// (mode 0600; an existing file or a symbolic link is refused) for epochs of
// length epoch (whole seconds, 1 s to 366 days) starting at start
// (truncated to the second; zero = now), and returns the verification key
// text for the auditor. The writer never stores the verification key: the
// state holds k_0 only until its first evolution.
func GenerateFSKey(statePath string, epoch time.Duration, start time.Time) (string, error) {
	if statePath == "" {
		return "", fmt.Errorf("forensic: fs keygen: empty state path: %w", ErrFSState)
	}
	if epoch < FSMinEpoch || epoch > FSMaxEpoch || epoch%time.Second != 0 {
		return "", fmt.Errorf("forensic: fs keygen %s: epoch %v: must be whole seconds between %v and %v", statePath, epoch, FSMinEpoch, FSMaxEpoch)
	}
	if start.IsZero() {
		start = time.Now()
	}
	if start.Unix() < 0 || start.Unix() >= fsMaxStart {
		return "", fmt.Errorf("forensic: fs keygen %s: start %v out of range", statePath, start)
	}
	var k FSKey
	if _, err := rand.Read(k.k0[:]); err != nil {
		return "", fmt.Errorf("forensic: fs keygen %s: random key: %w", statePath, err)
	}
	k.Start = time.Unix(start.Unix(), 0).UTC()
	k.Epoch = epoch
	if fi, err := os.Lstat(statePath); err == nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("forensic: fs keygen %s: %w", statePath, ErrSymlink)
		}
		return "", fmt.Errorf("forensic: fs keygen %s: file exists; refusing to overwrite a key state", statePath)
	}
	st := &fsState{start: k.Start.Unix(), epochSec: int64(epoch / time.Second), id: k.ID(), key: k.k0}
	buf := st.encode()
	f, err := os.OpenFile(statePath, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", fmt.Errorf("forensic: fs keygen %s: %w", statePath, err)
	}
	_, err = f.Write(buf[:])
	clear(buf[:])
	st.zero()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(statePath)
		return "", fmt.Errorf("forensic: fs keygen %s: %w", statePath, err)
	}
	if err := syncDir(filepath.Dir(statePath)); err != nil {
		return "", fmt.Errorf("forensic: fs keygen %s: fsync dir: %w", statePath, err)
	}
	text := k.String()
	clear(k.k0[:])
	return text, nil
}

// fsState is the writer's forward-secure state: the current epoch and its
// key, backed by the state file (kept open and flocked by the writer).
type fsState struct {
	path     string
	f        *os.File
	start    int64 // unix seconds of epoch 0
	epochSec int64
	id       string // 8 hex digits
	epoch    uint64
	key      [32]byte
	now      func() time.Time
}

// encode lays out the 112-byte state file:
//
//	0  magic "KVHFSST1"     8  version u32 BE    12 reserved u32 (0)
//	16 start s64 BE         24 epoch seconds s64 BE
//	32 key id (4 bytes)     36 reserved (4 bytes, 0)
//	40 epoch u64 BE         48 key (32 bytes)
//	80 SHA-256 of bytes 0..80
func (s *fsState) encode() [fsStateSize]byte {
	var b [fsStateSize]byte
	copy(b[0:8], fsStateMagic)
	binary.BigEndian.PutUint32(b[8:], fsStateVersion)
	binary.BigEndian.PutUint64(b[16:], uint64(s.start))
	binary.BigEndian.PutUint64(b[24:], uint64(s.epochSec))
	hex.Decode(b[32:36], []byte(s.id))
	binary.BigEndian.PutUint64(b[fsOffEpoch:], s.epoch)
	copy(b[fsOffKey:fsOffSum], s.key[:])
	sum := sha256.Sum256(b[:fsOffSum])
	copy(b[fsOffSum:], sum[:])
	return b
}

func (s *fsState) zero() { clear(s.key[:]) }

// decodeFSState parses and validates a state file's bytes.
func decodeFSState(b []byte) (*fsState, error) {
	if bytes.HasPrefix(b, []byte(fsKeyPrefix)) {
		return nil, errors.New("this is a verification key, not a writer state file")
	}
	if len(b) < 8 || string(b[0:8]) != fsStateMagic {
		return nil, errors.New("bad magic (not a kvhygiene forward-secure state file)")
	}
	if len(b) != fsStateSize {
		return nil, fmt.Errorf("size %d, want %d", len(b), fsStateSize)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != fsStateVersion {
		return nil, fmt.Errorf("unsupported version %d", v)
	}
	sum := sha256.Sum256(b[:fsOffSum])
	if !hmac.Equal(sum[:], b[fsOffSum:]) {
		return nil, errors.New("checksum mismatch (corrupt or torn write)")
	}
	s := &fsState{
		start:    int64(binary.BigEndian.Uint64(b[16:])),
		epochSec: int64(binary.BigEndian.Uint64(b[24:])),
		id:       hex.EncodeToString(b[32:36]),
		epoch:    binary.BigEndian.Uint64(b[fsOffEpoch:]),
	}
	copy(s.key[:], b[fsOffKey:fsOffSum])
	if s.start < 0 || s.start >= fsMaxStart || s.epochSec < int64(FSMinEpoch/time.Second) || s.epochSec > int64(FSMaxEpoch/time.Second) {
		return nil, errors.New("start or epoch length out of range")
	}
	if s.epoch > fsMaxSteps*4 {
		return nil, fmt.Errorf("epoch %d out of range", s.epoch)
	}
	return s, nil
}

// openFSState opens, locks and reads the writer state file.
func openFSState(path string, now func() time.Time) (*fsState, error) {
	fail := func(format string, a ...any) (*fsState, error) {
		return nil, fmt.Errorf("forensic: fs state %s: %w: %s", path, ErrFSState, fmt.Sprintf(format, a...))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail("%v (create it with GenerateFSKey / kvgate fs-keygen)", err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fail("is a symbolic link (refused)")
	}
	if !fi.Mode().IsRegular() {
		return fail("not a regular file")
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fail("%v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fail("in use by another writer")
		}
		return fail("flock: %v", err)
	}
	var buf [fsStateSize + 1]byte
	n, err := f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return fail("read: %v", err)
	}
	s, derr := decodeFSState(buf[:n])
	clear(buf[:])
	if derr != nil {
		f.Close()
		return fail("%v", derr)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			s.zero()
			return fail("chmod 0600: %v", err)
		}
	}
	s.path, s.f = path, f
	s.now = now
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func (s *fsState) close() {
	s.zero()
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *fsState) kid() string { return "fs:" + s.id }

// evolveMem moves the in-memory state one epoch forward; the previous key
// is overwritten.
func (s *fsState) evolveMem() {
	fsEvolve(&s.key, s.epoch)
	s.epoch++
}

// persist writes the epoch, key and checksum in place (one pwrite at the
// same offset, then fsync), so the previous key's bytes are overwritten in
// the file. Copy-on-write or log-structured file systems (btrfs, ZFS, f2fs)
// and SSD wear levelling may keep old blocks: put the state on a file system
// that overwrites in place, or accept that limit.
func (s *fsState) persist() error {
	b := s.encode()
	defer clear(b[:])
	if _, err := s.f.WriteAt(b[fsOffEpoch:], fsOffEpoch); err != nil {
		return fmt.Errorf("forensic: fs state %s: evolve to epoch %d: %w", s.path, s.epoch, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("forensic: fs state %s: fsync after evolve to epoch %d: %w", s.path, s.epoch, err)
	}
	return nil
}

// epochNow is the epoch of the state's clock.
func (s *fsState) epochNow() uint64 { return fsEpochAt(s.start, s.epochSec, s.now()) }

// nextBoundary is the time at which the current epoch ends.
func (s *fsState) nextBoundary() time.Time {
	return time.Unix(s.start+int64(s.epoch+1)*s.epochSec, 0)
}
