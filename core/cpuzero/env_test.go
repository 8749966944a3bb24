package cpuzero

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func getenvKernel() string { return os.Getenv(EnvKernel) }

func fakeKernels(names ...string) []*kernel {
	ks := make([]*kernel, len(names))
	for i, n := range names {
		ks[i] = &kernel{name: n}
	}
	return ks
}

func TestSelectKernel(t *testing.T) {
	all := fakeKernels(KernelAVX512, KernelAVX2, KernelGeneric)
	avx2Only := fakeKernels(KernelAVX2, KernelGeneric)
	genericOnly := fakeKernels(KernelGeneric)
	tests := []struct {
		env   string
		avail []*kernel
		want  string
		err   string
	}{
		{"", all, KernelAVX512, ""},
		{"", avx2Only, KernelAVX2, ""},
		{"", genericOnly, KernelGeneric, ""},
		{"generic", all, KernelGeneric, ""},
		{"avx2", all, KernelAVX2, ""},
		{" AVX512 ", all, KernelAVX512, ""},
		{"avx512", avx2Only, KernelAVX2, "cannot run the avx512 kernel (usable: avx2, generic); using avx2"},
		{"avx2", genericOnly, KernelGeneric, "cannot run the avx2 kernel"},
		{"sse4", all, KernelAVX512, `KVH_CPU_KERNEL="sse4": unknown kernel`},
	}
	for _, tc := range tests {
		k, err := selectKernel(tc.env, tc.avail)
		require.Equal(t, tc.want, k.name, "env %q", tc.env)
		if tc.err == "" {
			require.NoError(t, err, "env %q", tc.env)
		} else {
			require.ErrorContains(t, err, tc.err, "env %q", tc.env)
		}
	}
}

const helperEnv = "KVH_CPUZERO_TEST_HELPER"

// TestHelperReportKernel is run as a subprocess by TestEnvForcesKernel.
func TestHelperReportKernel(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("subprocess helper")
	}
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	Zero(b)
	msg := "<nil>"
	if err := ForcedKernelError(); err != nil {
		msg = err.Error()
	}
	os.Stdout.WriteString("KERNEL=" + Kernel() + " ZERO=" + map[bool]string{true: "ok", false: "bad"}[IsZero(b)] + " ERR=" + msg + "\n")
}

// KVH_CPU_KERNEL is read at initialisation of a real process.
func TestEnvForcesKernel(t *testing.T) {
	run := func(env string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReportKernel$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"=1", EnvKernel+"="+env)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "KERNEL=") {
				return line
			}
		}
		t.Fatalf("helper printed no report: %s", out)
		return ""
	}
	best := Kernels()[0]
	for _, name := range Kernels() {
		require.Equal(t, "KERNEL="+name+" ZERO=ok ERR=<nil>", run(name))
	}
	for _, name := range []string{KernelAVX2, KernelAVX512} {
		usableHere := false
		for _, u := range Kernels() {
			usableHere = usableHere || u == name
		}
		if !usableHere {
			got := run(name)
			require.True(t, strings.HasPrefix(got, "KERNEL="+best+" ZERO=ok ERR=cpuzero: KVH_CPU_KERNEL="), got)
			require.Contains(t, got, "cannot run the "+name+" kernel")
		}
	}
	got := run("bogus")
	require.Equal(t, "KERNEL="+best+` ZERO=ok ERR=cpuzero: KVH_CPU_KERNEL="bogus": unknown kernel (want generic, avx2 or avx512); using `+best, got)
}
