package forensic

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func rotatedSet(t testing.TB, o Options, n int) []logFile {
	t.Helper()
	w, err := Open(o)
	require.NoError(t, err)
	writeN(t, w, n)
	require.NoError(t, w.Close())
	files, err := listFiles(o.Path)
	require.NoError(t, err)
	return files
}

func TestPruneDeclaresGap(t *testing.T) {
	e := newCPEnv(t)
	files := rotatedSet(t, e.opts(3000), 60)
	require.Greater(t, len(files), 4)
	rep, err := Prune(e.log, PruneOptions{MaxRotated: 2, HMACKey: testKey})
	require.NoError(t, err)
	require.Len(t, rep.Removed, len(files)-1-2)
	require.Len(t, rep.Kept, 2)
	for _, r := range rep.Removed {
		_, err := os.Stat(filepath.Join(filepath.Dir(e.log), r.File))
		require.ErrorIs(t, err, os.ErrNotExist)
	}
	res, err := VerifyAll(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Len(t, res.Pruned, len(rep.Removed))
	require.Equal(t, rep.Removed[len(rep.Removed)-1].LastHash, res.Pruned[len(res.Pruned)-1].LastHash)
	require.True(t, seedVerify(t, e.log, testKey))

	// MaxRotated 0 keeps none; archive never overwrites
	arch := filepath.Join(e.dir, "archive")
	require.NoError(t, os.MkdirAll(arch, 0o700))
	keep := filepath.Join(arch, rep.Kept[0])
	require.NoError(t, os.WriteFile(keep, []byte("occupied"), 0o600))
	rep2, err := Prune(e.log, PruneOptions{MaxRotated: 0, ArchiveDir: arch, HMACKey: testKey})
	require.NoError(t, err)
	require.Len(t, rep2.Removed, 2)
	b, _ := os.ReadFile(keep)
	require.Equal(t, "occupied", string(b))
	require.Equal(t, keep+".1", rep2.Archived[0])
	res, err = VerifyAll(e.log, e.vopts())
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	require.Equal(t, []string{"kv_cache.log"}, res.Files)

	// -1 with no age limit removes nothing
	rep3, err := Prune(e.log, PruneOptions{MaxRotated: -1, HMACKey: testKey})
	require.NoError(t, err)
	require.Empty(t, rep3.Removed)
	_, err = Prune(e.log, PruneOptions{MaxRotated: -2})
	require.Error(t, err)
}

func TestPruneByAgeAndLocked(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	files := rotatedSet(t, Options{Path: p, MaxBytes: 3000}, 40)
	old := time.Now().Add(-10 * 24 * time.Hour)
	for _, lf := range files[:2] {
		require.NoError(t, os.Chtimes(lf.path, old, old))
	}
	rep, err := Prune(p, PruneOptions{RetentionDays: 7, MaxRotated: -1})
	require.NoError(t, err)
	require.Len(t, rep.Removed, 2)
	res, err := VerifyAll(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)

	w, err := Open(Options{Path: p})
	require.NoError(t, err)
	_, err = Prune(p, PruneOptions{MaxRotated: 0})
	require.ErrorIs(t, err, ErrLocked)
	rep, err = w.Prune(PruneOptions{MaxRotated: 0})
	require.NoError(t, err)
	require.NotEmpty(t, rep.Removed)
	require.NoError(t, w.Close())
	res, err = VerifyAll(p, VerifyOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
}

func TestAuditEntries(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kv_cache.log")
	w, err := Open(Options{Path: p, HMACKey: testKey, MaxBytes: 2000})
	require.NoError(t, err)
	for i := 0; i < 6; i++ {
		require.NoError(t, w.AuditEncrypt(AuditEvent{TenantID: "a", LayerIdx: int64(i), Position: 7, SequenceNumber: uint64(i), Success: true}))
		require.NoError(t, w.AuditDecrypt(AuditEvent{TenantID: "b", LayerIdx: int64(i), Success: i%2 == 0, Details: map[string]any{"reason": "tag"}}))
	}
	require.NoError(t, w.AuditRotateKey(AuditEvent{TenantID: "a", Success: true}))
	require.NoError(t, w.AuditIsolationViolation(AuditEvent{AttackerTenant: "b", TargetTenant: "a", LayerIdx: 3}))
	require.Error(t, w.AuditIsolationViolation(AuditEvent{AttackerTenant: "b"}))
	require.NoError(t, w.Append("allocate", Field{"tenant_id", "a"}))
	require.NoError(t, w.Close())

	all, err := Entries(p, 0, "", "")
	require.NoError(t, err)
	require.Len(t, all, 14)
	require.Equal(t, OpIsolationViolation, all[0].Operation) // newest first
	for i := 1; i < len(all); i++ {
		require.Greater(t, all[i-1].Seq, all[i].Seq)
	}
	a, err := Entries(p, 3, "a", "")
	require.NoError(t, err)
	require.Len(t, a, 3)
	require.Equal(t, OpIsolationViolation, a[0].Operation) // target tenant a
	require.Equal(t, OpRotateKey, a[1].Operation)
	require.Equal(t, int64(5), a[2].LayerIdx)
	dec, err := Entries(p, 0, "b", OpDecrypt)
	require.NoError(t, err)
	require.Len(t, dec, 6)
	require.Equal(t, "tag", dec[0].Details["reason"])
	require.False(t, dec[0].Success)
	_, err = Entries(p, 0, "", "bogus")
	require.Error(t, err)
	var buf bytes.Buffer
	require.NoError(t, ExportAudit(p, &buf, "a", OpEncrypt))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Len(t, got, 6)
	require.Equal(t, "encrypt", got[0]["operation"])
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK)
}
