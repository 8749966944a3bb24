package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// verifyPayload is the seed's verify_logs payload: {"schema","ts","log","result"}.
type verifyPayload struct {
	Schema int             `json:"schema"`
	TS     float64         `json:"ts"`
	Log    string          `json:"log"`
	Result json.RawMessage `json:"result"`
}

// verdictFile is what --out receives: the payload of the final
// verification, plus the first verification and what pruning removed.
type verdictFile struct {
	verifyPayload
	Before  json.RawMessage `json:"before"`
	Removed []string        `json:"removed"`
	OK      bool            `json:"ok"`
	Skipped string          `json:"retention_skipped,omitempty"`
}

// verifyConfig is the resolved configuration of one verify run.
type verifyConfig struct {
	logPath       string
	out           string
	retentionDays *float64
	maxRotated    *int
	archiveDir    string
	fsState       string
	opts          forensic.VerifyOptions
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	cfg, code := parseVerifyArgs(args, stdout, stderr)
	if cfg == nil {
		return code
	}
	if err := checkLogInput(cfg.logPath); err != nil {
		fmt.Fprintln(stderr, "kvgate verify: "+err.Error())
		return exitError
	}

	before, err := verifyWithProgress(cfg.logPath, cfg.opts, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kvgate verify: "+err.Error())
		return exitError
	}
	reportFailures(before, "before retention", stderr)
	beforeJSON := emitPayload(cfg.logPath, before, stdout)

	var removed []string
	retentionSkipped := ""
	if cfg.retentionDays != nil || cfg.maxRotated != nil {
		po := forensic.PruneOptions{MaxRotated: -1, ArchiveDir: cfg.archiveDir, HMACKey: cfg.opts.HMACKey, FSStatePath: cfg.fsState, Now: time.Now()}
		if cfg.retentionDays != nil {
			po.RetentionDays = *cfg.retentionDays
		}
		if cfg.maxRotated != nil {
			po.MaxRotated = *cfg.maxRotated
		}
		rep, err := forensic.Prune(cfg.logPath, po)
		switch {
		case errors.Is(err, forensic.ErrLocked):
			// A running tracer owns the log; pruning would need its lock.
			retentionSkipped = "log is held by a running writer (retention must run in the writer's process or while it is stopped)"
			fmt.Fprintln(stderr, "kvgate verify: warning: retention skipped: "+retentionSkipped)
		case err != nil:
			fmt.Fprintln(stderr, "kvgate verify: retention: "+oneLine(err.Error()))
			return exitError
		}
		removed = prunedNames(rep)
		if len(removed) > 0 {
			line, _ := json.Marshal(map[string]any{"schema": 1, "ts": nowTS(), "removed": removed})
			fmt.Fprintln(stdout, string(line))
		}
	}

	after, err := verifyWithProgress(cfg.logPath, cfg.opts, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kvgate verify: "+err.Error())
		return exitError
	}
	reportFailures(after, "after retention", stderr)
	afterJSON := emitPayload(cfg.logPath, after, stdout)

	ok := before.OK && after.OK
	if cfg.out != "" {
		vf := verdictFile{
			verifyPayload: verifyPayload{Schema: 1, TS: nowTS(), Log: cfg.logPath, Result: afterJSON},
			Before:        beforeJSON,
			Removed:       append([]string{}, removed...),
			OK:            ok,
			Skipped:       retentionSkipped,
		}
		b, _ := json.MarshalIndent(vf, "", "  ")
		if err := writeFileAtomic(cfg.out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "kvgate verify: verdict: "+err.Error())
			return exitError
		}
	}
	if !ok {
		fmt.Fprintf(stderr, "kvgate verify: INTEGRITY FAILURE in %s (%d failures)\n", cfg.logPath, len(before.Failures)+len(after.Failures))
		return exitFail
	}
	fmt.Fprintf(stderr, "kvgate verify: ok: %d records in %d files\n", after.Records, len(after.Files))
	return exitOK
}

func parseVerifyArgs(args []string, stdout, stderr io.Writer) (*verifyConfig, int) {
	fs := newFlagSet("verify", "[flags]")
	logDir := fs.String("log-dir", envString("LOG_DIR", "/var/forensics"), "directory of the forensic log (env LOG_DIR)")
	logFile := fs.String("log-file", envString("LOG_FILE", "kv_cache.log"), "active log file name (env LOG_FILE)")
	out := fs.String("out", envString("VERDICT_OUT", "verification.json"), "verification verdict JSON, written atomically; '' = none (env VERDICT_OUT)")
	var retention optFloat
	var maxRot optInt
	fs.Var(&retention, "retention-days", "remove rotated files older than this many days (env RETENTION_DAYS; unset = keep)")
	fs.Var(&maxRot, "max-rotated", "keep at most this many rotated files (env MAX_ROTATED; unset = unlimited)")
	archive := fs.String("archive-dir", envString("ARCHIVE_DIR", ""), "move pruned files here instead of deleting them (env ARCHIVE_DIR)")
	keyFile := fs.String("hmac-key-file", "", "file holding the HMAC key (else env FORENSIC_HMAC_SECRET)")
	cpDir := fs.String("checkpoint-dir", "", "directory of signed checkpoints to verify against")
	pubKey := fs.String("public-key", "", "checkpoint verifier key file (from 'kvgate keygen')")
	fsKey := fs.String("fs-key", "", "forward-secure verification key text kvh-fs1:... (from 'kvgate fs-keygen'; prefer --fs-key-file: arguments are visible to other users)")
	fsKeyFile := fs.String("fs-key-file", "", "file holding the forward-secure verification key")
	fsNow := fs.String("fs-now", "", "freshness: also fail (fs_stale) when epochs that ended one epoch before this time are unsealed; 'now', RFC 3339 or unix seconds (default: no freshness check)")
	fsState := fs.String("fs-state", "", "the writer's forward-secure state file, needed to MAC the prune record when retention runs on a forward-secure log")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return nil, flagErrorCode(err, stderr)
	}
	fail := func(format string, a ...any) (*verifyConfig, int) {
		fmt.Fprintf(stderr, "kvgate verify: "+format+"\n", a...)
		return nil, exitError
	}
	cfg := &verifyConfig{out: *out, archiveDir: *archive}
	if !flagWasSet(fs, "retention-days") {
		v, set, err := envFloat("RETENTION_DAYS")
		if err != nil {
			return fail("%s", err)
		}
		if set {
			retention = optFloat{v: v, set: true}
		}
	}
	if !flagWasSet(fs, "max-rotated") {
		v, set, err := envInt("MAX_ROTATED")
		if err != nil {
			return fail("%s", err)
		}
		if set {
			maxRot = optInt{v: v, set: true}
		}
	}
	if retention.set {
		if retention.v < 0 {
			return fail("retention days %v: must be >= 0", retention.v)
		}
		cfg.retentionDays = retention.ptr()
	}
	if maxRot.set {
		if maxRot.v < 0 {
			return fail("max rotated %d: must be >= 0", maxRot.v)
		}
		v := maxRot.v
		cfg.maxRotated = &v
	}
	if strings.ContainsRune(*logFile, filepath.Separator) || *logFile == "" {
		return fail("--log-file %q: must be a file name inside --log-dir", *logFile)
	}
	st, err := os.Stat(*logDir)
	if err != nil {
		return fail("log directory %s: %s", *logDir, describeFSError(err))
	}
	if !st.IsDir() {
		return fail("log directory %s: not a directory", *logDir)
	}
	cfg.logPath = filepath.Join(*logDir, *logFile)

	switch {
	case *keyFile != "":
		b, err := readInputFile(*keyFile, "HMAC key file")
		if err != nil {
			return fail("%s", err)
		}
		cfg.opts.HMACKey = bytes.TrimRight(b, "\r\n")
	case os.Getenv("FORENSIC_HMAC_SECRET") != "":
		cfg.opts.HMACKey = []byte(os.Getenv("FORENSIC_HMAC_SECRET"))
	}
	if (*cpDir == "") != (*pubKey == "") {
		return fail("--checkpoint-dir and --public-key go together")
	}
	if *cpDir != "" {
		st, err := os.Stat(*cpDir)
		if err != nil {
			return fail("checkpoint directory %s: %s", *cpDir, describeFSError(err))
		}
		if !st.IsDir() {
			return fail("checkpoint directory %s: not a directory", *cpDir)
		}
		b, err := readInputFile(*pubKey, "public key file")
		if err != nil {
			return fail("%s", err)
		}
		key := strings.TrimSpace(string(b))
		if strings.HasPrefix(key, "PRIVATE+KEY") {
			return fail("public key file %s: holds a signer (private) key; pass the verifier key", *pubKey)
		}
		if strings.ContainsAny(key, "\n \t") {
			return fail("public key file %s: not a note verifier key (expected one line name+hash+key)", *pubKey)
		}
		cfg.opts.CheckpointDir, cfg.opts.PublicKey = *cpDir, key
	}
	if *fsKey != "" && *fsKeyFile != "" {
		return fail("--fs-key and --fs-key-file are exclusive")
	}
	fsText := *fsKey
	if *fsKeyFile != "" {
		b, err := readInputFile(*fsKeyFile, "forward-secure key file")
		if err != nil {
			return fail("%s", err)
		}
		fsText = string(b)
	}
	if fsText != "" {
		if *keyFile != "" {
			return fail("--hmac-key-file and a forward-secure key are exclusive (a forward-secure log has no static HMAC key)")
		}
		if _, err := forensic.ParseFSKey(fsText); err != nil {
			return fail("%s", oneLine(err.Error()))
		}
		cfg.opts.HMACKey = nil // FORENSIC_HMAC_SECRET is a default; the explicit FS key wins
		cfg.opts.FSVerifyKey = strings.TrimSpace(fsText)
		if *fsNow != "" {
			t, err := parseTimeArg(*fsNow)
			if err != nil {
				return fail("--fs-now: %s", err)
			}
			cfg.opts.FSNow = t
		}
		if *fsState != "" && (cfg.retentionDays != nil || cfg.maxRotated != nil) {
			cfg.fsState = *fsState
		} else if cfg.retentionDays != nil || cfg.maxRotated != nil {
			return fail("retention on a forward-secure log needs --fs-state (the writer's state file MACs the prune record)")
		}
	} else if *fsNow != "" || *fsState != "" {
		return fail("--fs-now and --fs-state need --fs-key or --fs-key-file")
	}
	return cfg, exitOK
}

// parseFlagsNoPositional parses flags and refuses positional arguments.
func parseFlagsNoPositional(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	pos, err := parseFlags(fs, args, stdout)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %q (run 'kvgate %s -h')", fs.Name(), pos[0], fs.Name())
	}
	return nil, nil
}

// checkLogInput refuses inputs that are not forensic logs before the
// verifier runs, so a wrong path is a usage error (exit 1), not an
// integrity failure (exit 2).
func checkLogInput(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("log file %s: %s", path, describeFSError(err))
	}
	if st.IsDir() {
		return fmt.Errorf("log file %s: is a directory, expected a file", path)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("log file %s: not a regular file", path)
	}
	if st.Size() == 0 {
		if rotatedFiles(path) == 0 {
			return fmt.Errorf("log file %s: file is empty and there are no rotated files", path)
		}
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("log file %s: %s", path, describeFSError(err))
	}
	defer f.Close()
	// Look for one chain record among the first lines. A file with none is
	// not a forensic log (e.g. a metrics JSON or Prometheus text file).
	r := bufio.NewReaderSize(f, 64<<10)
	for i := 0; i < 64; i++ {
		line, err := r.ReadBytes('\n')
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] == '{' {
			var rec map[string]json.RawMessage
			if json.Unmarshal(line, &rec) == nil {
				if _, ok := rec["curr_hash"]; ok {
					return nil
				}
				if _, ok := rec["prev_hash"]; ok {
					return nil
				}
				if _, ok := rec["min_coverage_pct"]; ok {
					return fmt.Errorf("log file %s: this is a metrics JSON file, not a forensic log; use 'kvgate check'", path)
				}
			}
		}
		if err != nil {
			break
		}
	}
	head := make([]byte, 0)
	if _, err := f.Seek(0, io.SeekStart); err == nil {
		head, _ = io.ReadAll(io.LimitReader(f, 512))
	}
	h := bytes.TrimSpace(head)
	switch {
	case looksLikePromText(h):
		return fmt.Errorf("log file %s: this is a Prometheus metrics file, not a forensic log", path)
	case bytes.HasPrefix(h, []byte("{")) && bytes.Contains(head, []byte("min_coverage_pct")):
		return fmt.Errorf("log file %s: this is a metrics JSON file, not a forensic log; use 'kvgate check'", path)
	}
	return fmt.Errorf("log file %s: no forensic chain record found (one JSON record with prev_hash/curr_hash per line expected)", path)
}

// rotatedFiles counts the seed-style rotated siblings <stem>-*<ext>.
func rotatedFiles(path string) int {
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(filepath.Base(path), ext)
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), stem+"-*"+ext))
	return len(m)
}

// logBytes is the size of the active file and its rotated siblings.
func logBytes(path string) int64 {
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(filepath.Base(path), ext)
	m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), stem+"-*"+ext))
	m = append(m, path)
	var total int64
	for _, p := range m {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			total += st.Size()
		}
	}
	return total
}

func emitPayload(logPath string, r *forensic.Result, stdout io.Writer) json.RawMessage {
	res := json.RawMessage(r.JSON())
	if !json.Valid(res) {
		res, _ = json.Marshal(map[string]any{"ok": r.OK, "records": r.Records})
	}
	b, _ := json.Marshal(verifyPayload{Schema: 1, TS: nowTS(), Log: logPath, Result: res})
	fmt.Fprintln(stdout, string(b))
	return res
}

// reportFailures names each failing file, line (1-based for humans) and reason.
func reportFailures(r *forensic.Result, phase string, stderr io.Writer) {
	fs := append([]forensic.Failure(nil), r.Failures...)
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].File != fs[j].File {
			return fs[i].File < fs[j].File
		}
		return fs[i].Line < fs[j].Line
	})
	for _, f := range fs {
		msg := fmt.Sprintf("kvgate verify: FAIL (%s) %s:%d: %s", phase, f.File, f.Line+1, f.Reason)
		if f.Detail != "" {
			msg += ": " + oneLine(f.Detail)
		}
		fmt.Fprintln(stderr, msg)
	}
}

func nowTS() float64 { return float64(time.Now().UnixNano()) / 1e9 }
