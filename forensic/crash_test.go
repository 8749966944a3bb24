package forensic

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const crashEnv = "KVH_FORENSIC_CRASH_CHILD"

// crashChild appends as fast as it can with FsyncAlways and prints
// "<run> <n>" for every acknowledged record.
func crashChild() {
	parts := strings.SplitN(os.Getenv(crashEnv), "|", 2)
	w, err := Open(Options{Path: parts[1], HMACKey: testKey, Fsync: FsyncAlways, MaxBytes: 4096})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriterSize(os.Stdout, 64)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for n := 0; ; n++ {
		if err := w.Append("write", Field{"run", parts[0]}, Field{"n", int64(n)}, Field{"pad", strings.Repeat("x", n%300)}); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(4)
		}
		fmt.Fprintf(out, "%s %d\n", parts[0], n)
		out.Flush()
	}
}

// TestCrashRecovery SIGKILLs a writer at random moments, then checks that
// every acknowledged record survived, the chain verifies and the writer
// reopens cleanly.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		crashChild()
		return
	}
	kills := 200
	if testing.Short() {
		kills = 30
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	acked := map[string]bool{}
	start := time.Now()
	for run := 0; run < kills; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d|%s", crashEnv, run, p))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		require.True(t, sc.Scan(), "child did not start: %s", stderr.String())
		if sc.Text() != "ready" {
			t.Fatalf("child: %q %s", sc.Text(), stderr.String())
		}
		time.AfterFunc(time.Duration(rng.IntN(15000))*time.Microsecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
		for sc.Scan() {
			acked[sc.Text()] = true
		}
		err = cmd.Wait()
		require.Error(t, err, "child exited on its own: %s", stderr.String())
		require.NotContains(t, stderr.String(), "open:")
		require.NotContains(t, stderr.String(), "append:")
	}
	// reopen (recovers a torn tail if any), then verify everything
	w, err := Open(Options{Path: p, HMACKey: testKey})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	res, err := VerifyAll(p, VerifyOptions{HMACKey: testKey})
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res.Failures)
	found := map[string]bool{}
	files, err := listFiles(p)
	require.NoError(t, err)
	for _, lf := range files {
		for _, l := range readLines(t, lf.path) {
			m, err := parseLine([]byte(l))
			require.NoError(t, err)
			if getString(m, "event_type") == "write" {
				n, _ := getUint(m, "n")
				found[getString(m, "run")+" "+strconv.FormatUint(n, 10)] = true
			}
		}
	}
	for k := range acked {
		require.True(t, found[k], "acknowledged record %s lost", k)
	}
	t.Logf("%d kills, %d acknowledged records, %d records, %d files, %v", kills, len(acked), res.Records, len(res.Files), time.Since(start))
}
