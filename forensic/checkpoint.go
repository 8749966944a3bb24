package forensic

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/sys/unix"
)

// ErrNoCheckpoint is returned by Writer.Checkpoint when checkpoints are not
// configured.
var ErrNoCheckpoint = errors.New("forensic: checkpoints not configured")

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// hashChildren is rfc6962.DefaultHasher.HashChildren, SHA-256(0x01 || l ||
// r), without the hasher's allocation of a hash state per node.
func hashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	var b [1 + 2*sha256.Size]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], l)
	copy(b[1+sha256.Size:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

// leafHash is the RFC 6962 leaf hash of one record: the leaf data is the
// record's 32-byte binary curr_hash.
func leafHash(currHex []byte) ([]byte, bool) {
	var raw [32]byte
	if len(currHex) != 64 {
		return nil, false
	}
	if _, err := hex.Decode(raw[:], currHex); err != nil {
		return nil, false
	}
	return rfc6962.DefaultHasher.HashLeaf(raw[:]), true
}

// GenerateKey returns a new Ed25519 signed-note key pair for checkpoints
// (golang.org/x/mod/sumdb/note format): the signer key goes into the file
// named by Options.CheckpointKeyPath, the verifier key to auditors
// (VerifyOptions.PublicKey).
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("forensic: generate checkpoint key %q: %w", name, err)
	}
	return skey, vkey, nil
}

// CheckpointState is a verified checkpoint: the signed note plus the
// unsigned sidecar that lets verification resume from it. The sidecar is
// authenticated by checking that its compact range hashes to the signed root.
type CheckpointState struct {
	Origin string   // first line of the note
	Size   uint64   // records covered: seq 0 .. Size-1
	Root   []byte   // RFC 6962 root over the leaves
	Head   string   // curr_hash of record Size-1 ("" when Size == 0)
	File   string   // base name of the file holding record Size-1 when written
	Offset int64    // byte offset just past record Size-1 in File
	Hashes [][]byte // compact range [0, Size)
	Note   string   // note file path
}

type cpSidecar struct {
	Size   uint64   `json:"size"`
	Head   string   `json:"head"`
	File   string   `json:"file"`
	Offset int64    `json:"offset"`
	Hashes []string `json:"hashes"`
}

func cpNames(dir string, size uint64) (notePath, statePath string) {
	base := fmt.Sprintf("checkpoint-%020d", size)
	return filepath.Join(dir, base+".note"), filepath.Join(dir, base+".state")
}

// checkpointText is the C2SP tlog-checkpoint body: origin, size, base64
// root, then the extension line "head <hex curr_hash>".
func checkpointText(origin string, size uint64, root []byte, head string) string {
	return fmt.Sprintf("%s\n%d\n%s\nhead %s\n", origin, size, base64.StdEncoding.EncodeToString(root), head)
}

// writeCheckpoint signs and writes a checkpoint (note and sidecar) without
// ever overwriting an existing one; it returns the note path.
func writeCheckpoint(dir string, signer note.Signer, origin string, r *compact.Range, head, file string, offset int64) (string, error) {
	root, err := r.GetRootHash(nil)
	if err != nil {
		return "", fmt.Errorf("forensic: checkpoint root: %w", err)
	}
	size := r.End()
	msg, err := note.Sign(&note.Note{Text: checkpointText(origin, size, root, head)}, signer)
	if err != nil {
		return "", fmt.Errorf("forensic: sign checkpoint: %w", err)
	}
	sc := cpSidecar{Size: size, Head: head, File: file, Offset: offset}
	for _, h := range r.Hashes() {
		sc.Hashes = append(sc.Hashes, hex.EncodeToString(h))
	}
	side, _ := json.Marshal(sc)
	notePath, statePath := cpNames(dir, size)
	if _, err := os.Lstat(notePath); err == nil {
		return notePath, nil // same size already checkpointed: never overwrite
	}
	// sidecar first, note last: a note's presence means its sidecar is complete
	if err := writeNew(statePath, side); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("forensic: checkpoint %s: %w", statePath, err)
	}
	if err := writeNew(notePath, msg); err != nil {
		return "", fmt.Errorf("forensic: checkpoint %s: %w", notePath, err)
	}
	return notePath, syncDir(dir)
}

// writeNew writes a new 0600 file through a temp name and a no-replace rename.
func writeNew(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	f.Close()
	if err := renameNoReplace(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// loadSigner reads a signer key file written from GenerateKey's first result.
func loadSigner(path string) (note.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("forensic: checkpoint key %s: %w", path, err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("forensic: checkpoint key %s: %w", path, err)
	}
	return s, nil
}

// LoadCheckpoints reads every checkpoint in dir, verifies its signature with
// the verifier key and its sidecar against the signed root, and returns them
// by increasing size. Checkpoints that fail are returned as problems.
func LoadCheckpoints(dir, verifierKey string) ([]*CheckpointState, []Failure, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return nil, nil, fmt.Errorf("forensic: checkpoint verifier key: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("forensic: checkpoint dir %s: %w", dir, err)
	}
	var out []*CheckpointState
	var bad []Failure
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "checkpoint-") || !strings.HasSuffix(name, ".note") {
			continue
		}
		p := filepath.Join(dir, name)
		cp, err := readCheckpoint(p, v)
		if err != nil {
			bad = append(bad, Failure{File: name, Reason: "checkpoint_invalid", Detail: err.Error()})
			continue
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out, bad, nil
}

func readCheckpoint(p string, v note.Verifier) (*CheckpointState, error) {
	msg, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, errors.New("checkpoint body has fewer than 3 lines")
	}
	cp := &CheckpointState{Origin: lines[0], Note: p}
	if cp.Size, err = strconv.ParseUint(lines[1], 10, 64); err != nil {
		return nil, fmt.Errorf("size line: %w", err)
	}
	if cp.Root, err = base64.StdEncoding.DecodeString(lines[2]); err != nil || len(cp.Root) != sha256.Size {
		return nil, errors.New("root line is not a base64 SHA-256 hash")
	}
	for _, l := range lines[3:] {
		if h, ok := strings.CutPrefix(l, "head "); ok {
			cp.Head = h
		}
	}
	statePath := strings.TrimSuffix(p, ".note") + ".state"
	sb, err := os.ReadFile(statePath)
	if err != nil {
		return cp, nil // note alone still proves size/root/head
	}
	var sc cpSidecar
	if err := json.Unmarshal(sb, &sc); err != nil || sc.Size != cp.Size || sc.Head != cp.Head {
		return cp, nil
	}
	hashes := make([][]byte, 0, len(sc.Hashes))
	for _, h := range sc.Hashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			return cp, nil
		}
		hashes = append(hashes, b)
	}
	r, err := rangeFactory.NewRange(0, cp.Size, hashes)
	if err != nil {
		return cp, nil
	}
	root, err := r.GetRootHash(nil)
	if err != nil || !bytes.Equal(root, cp.Root) {
		return cp, nil
	}
	cp.Hashes, cp.File, cp.Offset = hashes, sc.File, sc.Offset
	return cp, nil
}

// rangeFrom rebuilds the compact range stored in a checkpoint.
func (cp *CheckpointState) rangeFrom() (*compact.Range, bool) {
	if cp.Size == 0 {
		return rangeFactory.NewEmptyRange(0), true
	}
	if cp.Hashes == nil {
		return nil, false
	}
	r, err := rangeFactory.NewRange(0, cp.Size, cp.Hashes)
	return r, err == nil
}

// leafOf is the RFC 6962 leaf hash of a raw 32-byte record hash.
func leafOf(raw []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(raw) }
