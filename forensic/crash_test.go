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
// "<run> <n>" for every acknowledged record. With the "interval" mode it
// appends bursts of records under the default fsync policy (big batches:
// the flusher writes them and runs the interval fsyncs) and acknowledges a
// burst once Flush has returned.
func crashChild() {
	parts := strings.SplitN(os.Getenv(crashEnv), "|", 3)
	if len(parts) == 3 && parts[2] == "interval" {
		crashChildInterval(parts[0], parts[1])
		return
	}
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

func crashChildInterval(run, path string) {
	w, err := Open(Options{Path: path, HMACKey: testKey, Fsync: FsyncInterval, FsyncInterval: time.Millisecond, MaxBytes: 4 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for n := 0; n < 6*1000; {
		first := n
		for end := n + 1000; n < end; n++ {
			if err := w.Append("write", Field{"run", run}, Field{"n", int64(n)}, Field{"pad", strings.Repeat("x", n%300)}); err != nil {
				fmt.Fprintln(os.Stderr, "append:", err)
				os.Exit(4)
			}
		}
		if err := w.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(4)
		}
		for i := first; i < n; i++ {
			fmt.Fprintf(out, "%s %d\n", run, i)
		}
		out.Flush()
	}
	select {} // bounded work per run (disk, time); wait for the kill
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
	crashRecovery(t, "always", kills, 15*time.Millisecond)
}

// TestCrashRecoveryInterval is TestCrashRecovery under fsync interval with
// bursts big enough for the flusher (write and fsync off the writer
// goroutine): a kill may land mid-write or mid-fsync; every record covered
// by a returned Flush survives and the chain verifies. Its children run
// TestCrashRecovery, whose mode field picks crashChildInterval.
func TestCrashRecoveryInterval(t *testing.T) {
	kills := 30
	if testing.Short() {
		kills = 10
	}
	crashRecovery(t, "interval", kills, 100*time.Millisecond)
}

func crashRecovery(t *testing.T, mode string, kills int, maxDelay time.Duration) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kv_cache.log")
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	acked := map[string]bool{}
	start := time.Now()
	for run := 0; run < kills; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d|%s|%s", crashEnv, run, p, mode))
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
		time.AfterFunc(time.Duration(rng.Int64N(int64(maxDelay))), func() { cmd.Process.Signal(syscall.SIGKILL) })
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
	require.NotEmpty(t, acked, "no child ever acknowledged a record: the kills came too early to test anything")
	for k := range acked {
		require.True(t, found[k], "acknowledged record %s lost", k)
	}
	t.Logf("%s: %d kills, %d acknowledged records, %d records, %d files, %v", mode, kills, len(acked), res.Records, len(res.Files), time.Since(start))
}
