package forensic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// logFile is one file of a chain set, in verification order.
type logFile struct {
	name   string // base name
	path   string
	epoch  int64 // rotation second parsed from the name (-1 for the active file)
	seq    int64 // rotation sequence parsed from the name (-1 when absent)
	extra  int64 // disambiguation suffix (-1 when absent)
	active bool
}

// splitBase splits "kv_cache.log" into ("kv_cache", ".log").
func splitBase(base string) (stem, ext string) {
	ext = filepath.Ext(base)
	return strings.TrimSuffix(base, ext), ext
}

// rotatedName is the name a rotated file gets: <stem>-<unix seconds>-<seq>.log,
// seq being the sequence number of the rotate record that opens the next file
// (zero-padded to 12 digits so names sort like numbers); a further "-<n>" is
// added only if that name exists already.
func rotatedName(stem, ext string, epoch int64, seq uint64, extra int) string {
	if extra == 0 {
		return fmt.Sprintf("%s-%d-%012d%s", stem, epoch, seq, ext)
	}
	return fmt.Sprintf("%s-%d-%012d-%d%s", stem, epoch, seq, extra, ext)
}

// parseRotated parses a rotated file name: the seed's <stem>-<epoch>.log and
// ours <stem>-<epoch>-<seq>[-<n>].log.
func parseRotated(stem, ext, name string) (epoch, seq, extra int64, ok bool) {
	if !strings.HasPrefix(name, stem+"-") || !strings.HasSuffix(name, ext) {
		return 0, 0, 0, false
	}
	mid := name[len(stem)+1 : len(name)-len(ext)]
	parts := strings.Split(mid, "-")
	if len(parts) < 1 || len(parts) > 3 {
		return 0, 0, 0, false
	}
	nums := [3]int64{-1, -1, -1}
	for i, p := range parts {
		if p == "" {
			return 0, 0, 0, false
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		nums[i] = n
	}
	return nums[0], nums[1], nums[2], true
}

// listFiles returns the rotated files of the chain whose active file is path,
// oldest first, followed by the active file (included even if missing only
// when includeMissingActive). Order: rotation second, then rotation sequence
// (seed names, which have none, first), then suffix, then name.
func listFiles(path string) ([]logFile, error) {
	dir := filepath.Dir(path)
	base := filepath.Base(path)
	stem, ext := splitBase(base)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("forensic: list %s: %w", dir, err)
	}
	var out []logFile
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		ep, sq, ex, ok := parseRotated(stem, ext, e.Name())
		if !ok {
			continue
		}
		out = append(out, logFile{name: e.Name(), path: filepath.Join(dir, e.Name()), epoch: ep, seq: sq, extra: ex})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.epoch != b.epoch {
			return a.epoch < b.epoch
		}
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		if a.extra != b.extra {
			return a.extra < b.extra
		}
		return a.name < b.name
	})
	out = append(out, logFile{name: base, path: path, epoch: -1, seq: -1, extra: -1, active: true})
	return out, nil
}

// lineReader yields the lines of a file (without the newline) with their
// byte offsets, however long a line is.
type lineReader struct {
	r   *bufio.Reader
	off int64
	buf []byte
	mem []byte // in-memory mode (r nil): the rest of the data
}

func newLineReader(r io.Reader, size int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, size)}
}

// newMemLineReader reads lines from data in place: the lines it returns
// stay valid (they are slices of data).
func newMemLineReader(data []byte) *lineReader {
	return &lineReader{mem: data}
}

// stable reports whether returned lines stay valid after the next call.
func (lr *lineReader) stable() bool { return lr.r == nil }

// next returns the next line, its offset and whether it ended with '\n'.
// At EOF it returns io.EOF.
func (lr *lineReader) next() (line []byte, off int64, terminated bool, err error) {
	off = lr.off
	if lr.r == nil {
		if len(lr.mem) == 0 {
			return nil, off, false, io.EOF
		}
		i := bytes.IndexByte(lr.mem, '\n')
		if i < 0 {
			line, lr.mem = lr.mem, nil
			lr.off += int64(len(line))
			return line, off, false, nil
		}
		line, lr.mem = lr.mem[:i], lr.mem[i+1:]
		lr.off += int64(i + 1)
		return line, off, true, nil
	}
	s, err := lr.r.ReadSlice('\n')
	if err == nil {
		lr.off += int64(len(s))
		return s[:len(s)-1], off, true, nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.buf = append(lr.buf[:0], s...)
		for errors.Is(err, bufio.ErrBufferFull) {
			s, err = lr.r.ReadSlice('\n')
			lr.buf = append(lr.buf, s...)
		}
		lr.off += int64(len(lr.buf))
		if err == nil {
			return lr.buf[:len(lr.buf)-1], off, true, nil
		}
		if errors.Is(err, io.EOF) {
			return lr.buf, off, false, nil
		}
		return nil, off, false, err
	}
	if errors.Is(err, io.EOF) {
		if len(s) == 0 {
			return nil, off, false, io.EOF
		}
		lr.off += int64(len(s))
		return s, off, false, nil
	}
	return nil, off, false, err
}

// openNoFollow opens an existing file for reading, refusing symlinks.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
}

// renameNoReplace renames old to new, failing with os.ErrExist instead of
// overwriting.
func renameNoReplace(oldp, newp string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldp, unix.AT_FDCWD, newp, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EEXIST) {
		return os.ErrExist
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err := os.Link(oldp, newp); err != nil {
			return err
		}
		return os.Remove(oldp)
	}
	return err
}

// syncDir fsyncs a directory so renames and creations are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// trimSpace strips ASCII whitespace like Python's bytes.strip for blank
// line detection.
func isBlank(line []byte) bool {
	return len(bytes.TrimSpace(line)) == 0
}
