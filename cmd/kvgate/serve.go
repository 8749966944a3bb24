package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// promContentType is the Prometheus text exposition format 0.0.4.
const promContentType = "text/plain; version=0.0.4; charset=utf-8"

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]")
	file := fs.String("metrics-file", envString("METRICS_FILE", "forensics/metrics.prom"), "Prometheus textfile to serve (env METRICS_FILE)")
	portDef := envString("METRICS_PORT", "8000")
	port := fs.String("port", portDef, "TCP port; 0 = any free port (env METRICS_PORT)")
	bind := fs.String("bind", envString("METRICS_BIND", "127.0.0.1"), "address to bind; 127.0.0.1 unless exposure is intended (env METRICS_BIND)")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return flagErrorCode(err, stderr)
	}
	p, err := strconv.Atoi(strings.TrimSpace(*port))
	if err != nil || p < 0 || p > 65535 {
		src := "--port"
		if !flagWasSet(fs, "port") {
			src = "environment variable METRICS_PORT"
		}
		fmt.Fprintf(stderr, "kvgate serve: %s=%q: not a port number (0-65535)\n", src, *port)
		return exitError
	}
	if *file == "" {
		fmt.Fprintln(stderr, "kvgate serve: metrics file path is empty")
		return exitError
	}
	if st, err := os.Stat(*file); err == nil && !st.Mode().IsRegular() {
		fmt.Fprintf(stderr, "kvgate serve: metrics file %s: not a regular file\n", *file)
		return exitError
	}
	if net.ParseIP(*bind) == nil && *bind != "localhost" {
		fmt.Fprintf(stderr, "kvgate serve: bind address %q: not an IP address\n", *bind)
		return exitError
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*bind, strconv.Itoa(p)))
	if err != nil {
		fmt.Fprintf(stderr, "kvgate serve: listen %s: %s\n", net.JoinHostPort(*bind, strconv.Itoa(p)), oneLine(err.Error()))
		return exitError
	}
	fresh := &freshConns{m: map[net.Conn]bool{}}
	srv := &http.Server{
		Handler:           textfileHandler(*file, stderr),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ConnState:         fresh.track,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "serving metrics from %s on %s at /metrics\n", *file, ln.Addr().String())
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "kvgate serve: "+oneLine(err.Error()))
		return exitError
	case <-ctx.Done():
	}
	// Shutdown waits for in-flight requests; connections that were opened
	// but never sent a request would hold it for 5 s, so close them now.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Shutdown(sctx) }()
	fresh.closeAll()
	if err := <-sdone; err != nil {
		_ = srv.Close()
		fmt.Fprintln(stderr, "kvgate serve: shutdown: "+oneLine(err.Error())+"; connections closed")
	}
	fmt.Fprintln(stderr, "kvgate serve: stopped")
	return exitOK
}

// textfileHandler serves path at /metrics: 200 with the file's content, an
// empty body while the file does not exist yet, 404 elsewhere. The file is
// read per request, so an exporter rewriting it atomically is always seen
// whole.
func textfileHandler(path string, stderr io.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		data, err := readMetricsFile(path)
		if err != nil {
			fmt.Fprintln(stderr, "kvgate serve: "+err.Error())
			http.Error(w, "metrics file unreadable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", promContentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	})
	return mux
}

func readMetricsFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // empty until produced, like the seed
	}
	if err != nil {
		return nil, fmt.Errorf("metrics file %s: %w", path, describeFSError(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("metrics file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("metrics file %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxInputBytes))
	if err != nil {
		return nil, fmt.Errorf("metrics file %s: read: %w", path, describeFSError(err))
	}
	return b, nil
}

// freshConns tracks connections that have not sent a request yet.
type freshConns struct {
	mu sync.Mutex
	m  map[net.Conn]bool
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		f.m[c] = true
	} else {
		delete(f.m, c)
	}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.m {
		_ = c.Close()
	}
}
