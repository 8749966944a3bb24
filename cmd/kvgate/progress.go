package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/kvhygiene/kvhygiene/forensic"
)

// progressMinBytes: below this the verifier finishes in well under a
// second and a progress bar would only flicker.
const progressMinBytes = 32 << 20

// progressTick is how often the bar is redrawn.
var progressTick = 200 * time.Millisecond

// verifyWithProgress runs forensic.VerifyAll. When stderr is a terminal and
// the logs are large, it draws a progress bar. The verifier has no progress
// callback, so progress is the number of bytes this process has read
// (/proc/self/io rchar) against the size of the log files; where that is
// unavailable the bar shows elapsed time only.
func verifyWithProgress(path string, o forensic.VerifyOptions, stderr io.Writer) (*forensic.Result, error) {
	f, isFile := stderr.(*os.File)
	total := logBytes(path)
	if !isFile || !term.IsTerminal(int(f.Fd())) || total < progressMinBytes {
		return forensic.VerifyAll(path, o)
	}
	type res struct {
		r   *forensic.Result
		err error
	}
	done := make(chan res, 1)
	start := time.Now()
	base, haveIO := readChar()
	go func() {
		r, err := forensic.VerifyAll(path, o)
		done <- res{r, err}
	}()
	tick := time.NewTicker(progressTick)
	defer tick.Stop()
	for {
		select {
		case out := <-done:
			fmt.Fprintf(stderr, "\r%s\r", strings.Repeat(" ", 78))
			return out.r, out.err
		case <-tick.C:
			el := time.Since(start).Round(100 * time.Millisecond)
			if haveIO {
				now, _ := readChar()
				frac := float64(now-base) / float64(total)
				fmt.Fprintf(stderr, "\rverifying %s %s %5.1f%% of %s  %s", filepathBase(path), bar(frac, 30), 100*min(frac, 1), humanBytes(float64(total)), el)
			} else {
				fmt.Fprintf(stderr, "\rverifying %s (%s)  %s", filepathBase(path), humanBytes(float64(total)), el)
			}
		}
	}
}

func filepathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// bar renders frac (clamped to [0,1]) as a bar of width cells.
func bar(frac float64, width int) string {
	frac = max(0, min(frac, 1))
	n := int(frac * float64(width))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// readChar returns rchar from /proc/self/io (bytes read by this process).
func readChar() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("rchar:")); ok {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
