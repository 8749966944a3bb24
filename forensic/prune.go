package forensic

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PruneOptions selects which rotated files Prune removes. Files go oldest
// first and only as a prefix of the rotation order, so the chain stays one
// contiguous run. RetentionDays > 0 removes files whose mtime is older than
// that; MaxRotated >= 0 keeps at most that many rotated files (0 keeps
// none; -1 = unlimited). ArchiveDir != "" moves files there instead of
// deleting them (never overwriting). HMACKey is the log's key (the prune
// record is HMACed like every other record). FSStatePath is the writer's
// forward-secure state file when the log is in that mode (exclusive with
// HMACKey). Now defaults to time.Now().
type PruneOptions struct {
	RetentionDays float64
	MaxRotated    int
	ArchiveDir    string
	HMACKey       []byte
	FSStatePath   string
	Now           time.Time
}

// PruneReport says what Prune did.
type PruneReport struct {
	Removed  []PrunedFile // files removed or archived, oldest first
	Archived []string     // archive paths, parallel to Removed when archiving
	Kept     []string     // rotated files kept
}

// Prune opens the log at logPath (taking its flock like any writer), writes
// a prune record naming the files it will remove with their last hash and
// seq range, makes it durable, then removes or archives them. It fails with
// an error wrapping ErrLocked while another writer holds the log; use
// Writer.Prune from the process that owns it.
func Prune(logPath string, o PruneOptions) (*PruneReport, error) {
	w, err := Open(Options{Path: logPath, HMACKey: o.HMACKey, FSStatePath: o.FSStatePath})
	if err != nil {
		return nil, err
	}
	rep, err := w.Prune(o)
	if cerr := w.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return rep, err
}

// Prune removes whole rotated files of this writer's log, never the active
// one, after a durable prune record declares them (see the package Prune).
func (w *Writer) Prune(o PruneOptions) (*PruneReport, error) {
	if o.MaxRotated < -1 {
		return nil, fmt.Errorf("forensic: prune %s: MaxRotated %d < -1", w.path, o.MaxRotated)
	}
	if o.RetentionDays < 0 {
		return nil, fmt.Errorf("forensic: prune %s: negative RetentionDays", w.path)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := w.Flush(); err != nil { // make a pending rotation visible
		return nil, err
	}
	files, err := listFiles(w.path)
	if err != nil {
		return nil, err
	}
	rotated := files[:len(files)-1]
	k := 0
	if o.MaxRotated >= 0 && len(rotated) > o.MaxRotated {
		k = len(rotated) - o.MaxRotated
	}
	if o.RetentionDays > 0 {
		cutoff := o.Now.Add(-time.Duration(o.RetentionDays * 24 * float64(time.Hour)))
		ka := 0
		for _, lf := range rotated {
			st, err := os.Lstat(lf.path)
			if err != nil || !st.ModTime().Before(cutoff) {
				break
			}
			ka++
		}
		k = max(k, ka)
	}
	rep := &PruneReport{}
	for _, lf := range rotated[k:] {
		rep.Kept = append(rep.Kept, lf.name)
	}
	if k == 0 {
		return rep, nil
	}
	var decl []any
	for _, lf := range rotated[:k] {
		si, err := scanFile(lf.path, 0, false)
		if err != nil {
			return nil, fmt.Errorf("forensic: prune %s: %w", lf.name, err)
		}
		pf := PrunedFile{File: lf.name, LastHash: si.lastHash, FirstSeq: si.firstSeq, LastSeq: si.lastSeq, Records: si.records}
		rep.Removed = append(rep.Removed, pf)
		decl = append(decl, map[string]any{
			"file": pf.File, "last_hash": pf.LastHash, "first_seq": pf.FirstSeq, "last_seq": pf.LastSeq, "records": int64(pf.Records),
		})
	}
	fields := []Field{{"pruned", decl}, {"retention_days", o.RetentionDays}, {"max_rotated", int64(o.MaxRotated)}}
	if o.ArchiveDir != "" {
		fields = append(fields, Field{"archive_dir", o.ArchiveDir})
	}
	if err := w.Append("prune", fields...); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("forensic: prune %s: prune record not durable: %w", w.path, err)
	}
	if o.ArchiveDir != "" {
		if err := os.MkdirAll(o.ArchiveDir, 0o700); err != nil {
			return rep, fmt.Errorf("forensic: prune: archive dir %s: %w", o.ArchiveDir, err)
		}
	}
	for _, lf := range rotated[:k] {
		if o.ArchiveDir == "" {
			if err := os.Remove(lf.path); err != nil {
				return rep, fmt.Errorf("forensic: prune %s: %w", lf.name, err)
			}
			continue
		}
		dst, err := archive(lf.path, o.ArchiveDir, lf.name)
		if err != nil {
			return rep, fmt.Errorf("forensic: prune: archive %s: %w", lf.name, err)
		}
		rep.Archived = append(rep.Archived, dst)
	}
	if err := syncDir(w.dir); err != nil {
		return rep, fmt.Errorf("forensic: prune %s: fsync dir: %w", w.dir, err)
	}
	if o.ArchiveDir != "" {
		if err := syncDir(o.ArchiveDir); err != nil {
			return rep, fmt.Errorf("forensic: prune: fsync %s: %w", o.ArchiveDir, err)
		}
	}
	return rep, nil
}

// archive moves src into dir as name (or name.N when taken), never
// overwriting; across filesystems it copies, fsyncs and removes.
func archive(src, dir, name string) (string, error) {
	for i := 0; ; i++ {
		dst := filepath.Join(dir, name)
		if i > 0 {
			dst = fmt.Sprintf("%s.%d", dst, i)
		}
		err := renameNoReplace(src, dst)
		if err == nil {
			return dst, nil
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if !errors.Is(err, syscall.EXDEV) {
			return "", err
		}
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		in, err := openNoFollow(src)
		if err != nil {
			out.Close()
			return "", err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err == nil {
			err = out.Sync()
		}
		out.Close()
		if err != nil {
			os.Remove(dst)
			return "", err
		}
		return dst, os.Remove(src)
	}
}
