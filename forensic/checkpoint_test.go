package forensic

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/rfc6962"
)

type cpEnv struct {
	dir, log, cpDir, skPath, vkey string
}

func newCPEnv(t testing.TB) cpEnv {
	t.Helper()
	dir := t.TempDir()
	sk, vk, err := GenerateKey("kvh-test")
	require.NoError(t, err)
	require.False(t, strings.Contains(vk, "PRIVATE"))
	e := cpEnv{dir: dir, log: filepath.Join(dir, "logs", "kv_cache.log"), cpDir: filepath.Join(dir, "cp"), skPath: filepath.Join(dir, "signer.key"), vkey: vk}
	require.NoError(t, os.WriteFile(e.skPath, []byte(sk), 0o600))
	return e
}

func (e cpEnv) opts(max int64) Options {
	return Options{Path: e.log, HMACKey: testKey, MaxBytes: max, Fsync: FsyncNone, CheckpointDir: e.cpDir, CheckpointKeyPath: e.skPath, CheckpointEvery: 25}
}

func (e cpEnv) vopts() VerifyOptions {
	return VerifyOptions{HMACKey: testKey, CheckpointDir: e.cpDir, PublicKey: e.vkey}
}

func TestCheckpointsWrittenAndVerified(t *testing.T) {
	e := newCPEnv(t)
	w, err := Open(e.opts(6000))
	require.NoError(t, err)
	writeN(t, w, 80)
	require.NoError(t, w.Checkpoint())
	writeN(t, w, 7)
	require.NoError(t, w.Close()) // final checkpoint at close
	st := w.Stats()
	require.Greater(t, st.Checkpoints, uint64(3))
	require.Greater(t, st.Rotations, uint64(0))
	res, err := VerifyAll(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, st.LastSeq+1, res.CheckpointSize)
	// the note is a C2SP checkpoint: origin, size, root, head extension, signature
	cps, bad, err := LoadCheckpoints(e.cpDir, e.vkey)
	require.NoError(t, err)
	require.Empty(t, bad)
	b, err := os.ReadFile(cps[len(cps)-1].Note)
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")
	require.True(t, strings.HasPrefix(lines[0], "kvhygiene/"))
	require.Equal(t, "head "+cps[len(cps)-1].Head, lines[3])
	require.True(t, strings.HasPrefix(lines[5], "— kvh-test "))
	// no record carries the signer key
	files, _ := listFiles(e.log)
	sk, _ := os.ReadFile(e.skPath)
	for _, lf := range files {
		lb, _ := os.ReadFile(lf.path)
		require.NotContains(t, string(lb), strings.Split(string(sk), "+")[4])
	}
	// reopen continues the Merkle state
	w, err = Open(e.opts(6000))
	require.NoError(t, err)
	writeN(t, w, 5)
	require.NoError(t, w.Close())
	res, err = VerifyAll(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	inc, err := VerifyIncremental(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, inc.OK, "%+v", inc.Failures)
	require.Equal(t, res.CheckpointSize, inc.CheckpointSize)

	// a wrong public key makes every checkpoint invalid
	_, vk2, _ := GenerateKey("kvh-test")
	res, err = VerifyAll(e.log, VerifyOptions{HMACKey: testKey, CheckpointDir: e.cpDir, PublicKey: vk2})
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, ReasonCheckpointInvalid, res.Failures[0].Reason)
}

func TestIncrementalVerifyDetectsNewTamper(t *testing.T) {
	e := newCPEnv(t)
	w, err := Open(e.opts(0))
	require.NoError(t, err)
	writeN(t, w, 30)
	require.NoError(t, w.Checkpoint())
	writeN(t, w, 10)
	require.NoError(t, w.Flush())
	require.NoError(t, w.Close())                         // checkpoint at 40
	w, err = Open(Options{Path: e.log, HMACKey: testKey}) // no checkpoints: 5 unprotected records
	require.NoError(t, err)
	writeN(t, w, 5)
	require.NoError(t, w.Close())
	inc, err := VerifyIncremental(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, inc.OK, "%+v", inc.Failures)
	require.Equal(t, uint64(40), inc.CheckpointSize)
	lines := readLines(t, e.log)
	lines[42] = strings.Replace(lines[42], `"h2"`, `"hX"`, 1)
	require.NoError(t, os.WriteFile(e.log, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	inc, err = VerifyIncremental(e.log, e.vopts())
	require.NoError(t, err)
	require.False(t, inc.OK)
	require.Equal(t, ReasonBadHash, inc.Failures[0].Reason)
}

// TestIncrementalFromRotationCheckpoint resumes from a checkpoint taken at
// a rotation (record <size> is the next file's rotate record).
func TestIncrementalFromRotationCheckpoint(t *testing.T) {
	e := newCPEnv(t)
	o := e.opts(3000)
	o.CheckpointEvery = 1 << 30
	w, err := Open(o)
	require.NoError(t, err)
	writeN(t, w, 20)
	require.NoError(t, w.Close())
	require.Greater(t, w.Stats().Rotations, uint64(2))
	cps, _, err := LoadCheckpoints(e.cpDir, e.vkey)
	require.NoError(t, err)
	// drop the close-time checkpoint: the newest left is a rotation one
	last := cps[len(cps)-1]
	require.NoError(t, os.Remove(last.Note))
	inc, err := VerifyIncremental(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, inc.OK, "%+v", inc.Failures)
	require.Equal(t, cps[len(cps)-2].Size, inc.CheckpointSize)
	require.Greater(t, inc.Records, 0)
}

// TestIncrementalCheckpointBeforeRotation: a checkpoint at the end of a file
// that is rotated right after it (no rotation checkpoint is needed then).
func TestIncrementalCheckpointBeforeRotation(t *testing.T) {
	e := newCPEnv(t)
	o := e.opts(2500)
	o.CheckpointEvery = 1 << 30
	w, err := Open(o)
	require.NoError(t, err)
	writeN(t, w, 4)
	require.NoError(t, w.Checkpoint())
	writeN(t, w, 10) // the first of these rotates
	require.NoError(t, w.Close())
	cps, _, err := LoadCheckpoints(e.cpDir, e.vkey)
	require.NoError(t, err)
	require.NoError(t, os.Remove(cps[len(cps)-1].Note))
	for _, cp := range cps[1 : len(cps)-1] {
		require.NoError(t, os.Remove(cp.Note))
	}
	require.Equal(t, uint64(4), cps[0].Size)
	inc, err := VerifyIncremental(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, inc.OK, "%+v", inc.Failures)
	require.Equal(t, uint64(4), inc.CheckpointSize)
}

func TestHashChildrenMatchesRFC6962(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		l, rt := make([]byte, 32), make([]byte, 32)
		for j := range l {
			l[j], rt[j] = byte(r.Uint32()), byte(r.Uint32())
		}
		require.Equal(t, rfc6962.DefaultHasher.HashChildren(l, rt), hashChildren(l, rt))
	}
	require.Equal(t, rfc6962.DefaultHasher.HashChildren([]byte("a"), []byte("bc")), hashChildren([]byte("a"), []byte("bc")))
}
