package cudazero

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kvhygiene/kvhygiene/core/cudazero/internal/fakectl"
)

// The tests run the real cudazero code against tests/fakecuda, a C test double
// of libcuda built here with the system C compiler.
var (
	fakeLib      string // full fake: cuGetProcAddress_v2 + v1 + versioned exports
	fakeLibDlsym string // no cuGetProcAddress exports: dlsym fallback
	fakeLibMin   string // dlsym only and no cuStreamIsCapturing: missing symbol
	fake         *fakectl.Fake
)

func buildFake(dir, name string, defs ...string) (string, error) {
	out := filepath.Join(dir, name)
	src := filepath.Join("..", "..", "tests", "fakecuda", "fakecuda.c")
	args := append([]string{"-O1", "-g", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-shared", "-fPIC", "-pthread", "-o", out, src}, defs...)
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	cmd := exec.Command(cc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %v: %v\n%s", cc, args, err, b)
	}
	return out, nil
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KVH_CUDAZERO_REAL") == "1" {
		// Real driver (tests/gpu/run.sh): only the TestReal* tests apply.
		flag.Parse()
		if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" {
			_ = f.Value.Set("^TestReal")
		}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "fakecuda")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fakeLib, err = buildFake(dir, "libcuda.so.1")
	if err == nil {
		fakeLibDlsym, err = buildFake(dir, "libcuda-dlsym.so", "-DFAKECUDA_NO_PROCADDR")
	}
	if err == nil {
		fakeLibMin, err = buildFake(dir, "libcuda-min.so", "-DFAKECUDA_NO_PROCADDR", "-DFAKECUDA_OMIT_CAPTURE")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "cudazero: cannot build the CUDA test double (a C compiler is required in CI): %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "cudazero: SKIPPING all tests, cannot build the CUDA test double: %v\n", err)
		return 0
	}
	os.Setenv("KVH_LIBCUDA", fakeLib)
	if fake, err = fakectl.Open(fakeLib); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
