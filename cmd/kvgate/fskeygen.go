package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// runFSKeygen creates a forward-secure MAC state file for the writer and
// hands out the verification key (forensic.GenerateFSKey).
func runFSKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fs-keygen", "--state PATH [--epoch 15m] [--start TIME] [--verify-key-out FILE]")
	state := fs.String("state", "", "writer state file to create (0600; the tracer's fs_state_path / forensic.Options.FSStatePath)")
	epoch := fs.Duration("epoch", 15*time.Minute, "epoch length: the key evolves and each epoch is sealed at this interval (whole seconds, 1s..8784h)")
	start := fs.String("start", "", "start of epoch 0: RFC 3339 or unix seconds (default now)")
	keyOut := fs.String("verify-key-out", "", "write the verification key to this file (0600, never overwritten) instead of stdout")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return flagErrorCode(err, stderr)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kvgate fs-keygen: "+format+"\n", a...)
		return exitError
	}
	if *state == "" {
		return fail("--state is required (run 'kvgate fs-keygen -h')")
	}
	if *epoch < forensic.FSMinEpoch || *epoch > forensic.FSMaxEpoch || *epoch%time.Second != 0 {
		return fail("--epoch %v: must be whole seconds between %v and %v", *epoch, forensic.FSMinEpoch, forensic.FSMaxEpoch)
	}
	var t0 time.Time
	if *start != "" {
		var err error
		if t0, err = parseTimeArg(*start); err != nil {
			return fail("--start: %s", err)
		}
	}
	if *keyOut != "" {
		if _, err := os.Lstat(*keyOut); err == nil {
			return fail("--verify-key-out %s exists; refusing to overwrite a key", *keyOut)
		}
	}
	key, err := forensic.GenerateFSKey(*state, *epoch, t0)
	if err != nil {
		return fail("%s", oneLine(err.Error()))
	}
	if *keyOut != "" {
		if err := writeNewFile(*keyOut, []byte(key+"\n"), 0o600); err != nil {
			os.Remove(*state) // the key would be lost: leave nothing half made
			return fail("%s (state file removed)", err)
		}
		fmt.Fprintf(stdout, "state:            %s (0600, the writer's FSStatePath; evolves in place every epoch)\n", *state)
		fmt.Fprintf(stdout, "verification key: %s (give to auditors: kvgate verify --fs-key-file; never store it with the log)\n", *keyOut)
		return exitOK
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "kvgate fs-keygen: state %s created; the line on stdout is the verification key: give it to auditors, never store it with the log\n", *state)
	return exitOK
}

// parseTimeArg accepts "now", RFC 3339 or unix seconds.
func parseTimeArg(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return time.Now(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n >= 1<<40 {
			return time.Time{}, fmt.Errorf("%q: unix seconds out of range", s)
		}
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: expected 'now', RFC 3339 (2026-01-02T15:04:05Z) or unix seconds", s)
	}
	return t, nil
}
