package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/klauspost/cpuid/v2"

	"github.com/kvhygiene/kvhygiene/core/cpuzero"
	"github.com/kvhygiene/kvhygiene/core/cudazero"
)

// doctorReport is what `kvgate doctor --json` prints.
type doctorReport struct {
	CPU      cpuReport  `json:"cpu"`
	CUDA     cudaReport `json:"cuda"`
	NVML     nvmlReport `json:"nvml"`
	Logs     logReport  `json:"logs"`
	HMAC     hmacReport `json:"hmac"`
	Warnings []string   `json:"warnings"`
}

type cpuReport struct {
	Brand             string   `json:"brand"`
	Family            int      `json:"family"`
	Model             int      `json:"model"`
	LogicalCores      int      `json:"logical_cores"`
	Features          []string `json:"features"`
	Kernel            string   `json:"kernel"`
	Kernels           []string `json:"kernels"`
	NTThreshold       int      `json:"nt_threshold_bytes"`
	ParallelThreshold int      `json:"parallel_threshold_bytes"`
	ERMSThreshold     int      `json:"rep_stosb_threshold_bytes"` // 0: never
	Forced            string   `json:"forced,omitempty"`
	ForcedRefused     string   `json:"forced_refused,omitempty"`
}

type cudaReport struct {
	Driver  bool   `json:"driver"`
	Version string `json:"version,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

type gpuReport struct {
	Index       int    `json:"index"`
	Name        string `json:"name,omitempty"`
	UUID        string `json:"uuid,omitempty"`
	MemoryTotal uint64 `json:"memory_total_bytes,omitempty"`
	MemoryUsed  uint64 `json:"memory_used_bytes,omitempty"`
	Error       string `json:"error,omitempty"`
}

type nvmlReport struct {
	Available     bool        `json:"available"`
	Detail        string      `json:"detail,omitempty"`
	DriverVersion string      `json:"driver_version,omitempty"`
	GPUs          []gpuReport `json:"gpus"`
	// ConfidentialComputing is the system CC state, or why it is unknown.
	ConfidentialComputing string `json:"confidential_computing,omitempty"`
}

type logReport struct {
	Dir    string   `json:"dir"`
	Exists bool     `json:"exists"`
	Safe   bool     `json:"safe"`
	Issues []string `json:"issues"`
	Files  int      `json:"files"`
}

type hmacReport struct {
	Configured bool   `json:"configured"`
	Source     string `json:"source,omitempty"`
	KeyID      string `json:"kid,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", "[flags]")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	logDir := fs.String("log-dir", envString("LOG_DIR", "/var/forensics"), "forensic log directory to check (env LOG_DIR)")
	keyFile := fs.String("hmac-key-file", "", "HMAC key file to check (else env FORENSIC_HMAC_SECRET)")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return flagErrorCode(err, stderr)
	}
	rep := doctorReport{Warnings: []string{}}
	rep.CPU = doctorCPU()
	rep.CUDA = doctorCUDA()
	rep.NVML = doctorNVML()
	rep.Logs = doctorLogs(*logDir)
	rep.HMAC = doctorHMAC(*keyFile)
	if rep.CPU.ForcedRefused != "" {
		rep.Warnings = append(rep.Warnings, "forced CPU kernel refused: "+rep.CPU.ForcedRefused)
	}
	if !rep.Logs.Safe {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("log directory %s is not safe: %s", rep.Logs.Dir, strings.Join(rep.Logs.Issues, "; ")))
	}
	if !rep.HMAC.Configured {
		rep.Warnings = append(rep.Warnings, "no HMAC key configured: the chain detects accidental damage but anyone with write access can rewrite it")
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	printDoctor(stdout, &rep)
	return exitOK
}

func doctorCPU() cpuReport {
	r := cpuReport{Brand: cpuid.CPU.BrandName, Family: cpuid.CPU.Family, Model: cpuid.CPU.Model, LogicalCores: runtime.NumCPU()}
	for _, f := range []struct {
		name string
		id   cpuid.FeatureID
	}{{"SSE2", cpuid.SSE2}, {"AVX", cpuid.AVX}, {"AVX2", cpuid.AVX2}, {"AVX512F", cpuid.AVX512F}, {"AVX512BW", cpuid.AVX512BW},
		{"ERMS", cpuid.ERMS}, {"FSRM", cpuid.FSRM}, {"SHA", cpuid.SHA}, {"AESNI", cpuid.AESNI}} {
		if cpuid.CPU.Supports(f.id) {
			r.Features = append(r.Features, f.name)
		}
	}
	r.Kernel = cpuzero.Kernel()
	r.Kernels = cpuzero.Kernels()
	r.NTThreshold, r.ParallelThreshold = cpuzero.Thresholds()
	r.ERMSThreshold = cpuzero.ERMSThreshold()
	r.Forced = os.Getenv("KVH_CPU_KERNEL")
	if err := cpuzero.ForcedKernelError(); err != nil {
		r.ForcedRefused = oneLine(err.Error())
	}
	return r
}

func doctorCUDA() cudaReport {
	d, err := cudazero.Load()
	if err != nil {
		if errors.Is(err, cudazero.ErrNoDriver) {
			return cudaReport{Detail: "no CUDA driver library found (libcuda.so.1; KVH_LIBCUDA overrides): device zeroization unavailable, host memory only"}
		}
		return cudaReport{Detail: oneLine(err.Error())}
	}
	v, err := d.DriverVersion()
	if err != nil {
		return cudaReport{Driver: true, Detail: "driver found but cuDriverGetVersion failed: " + oneLine(err.Error())}
	}
	return cudaReport{Driver: true, Version: fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)}
}

func doctorNVML() (r nvmlReport) {
	r.GPUs = []gpuReport{}
	defer func() {
		// A broken NVML install must not take doctor down.
		if p := recover(); p != nil {
			r.Available = false
			r.Detail = fmt.Sprintf("NVML call failed: %v", p)
		}
	}()
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			r.Detail = "no NVIDIA driver: libnvidia-ml.so.1 not found"
		} else {
			r.Detail = "NVML init failed: " + nvml.ErrorString(ret)
		}
		return r
	}
	defer nvml.Shutdown()
	r.Available = true
	if v, ret := nvml.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		r.DriverVersion = v
	}
	r.ConfidentialComputing = nvmlCCState()
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		r.Detail = "DeviceGetCount: " + nvml.ErrorString(ret)
		return r
	}
	for i := 0; i < n; i++ {
		g := gpuReport{Index: i}
		dev, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			g.Error = nvml.ErrorString(ret)
			r.GPUs = append(r.GPUs, g)
			continue
		}
		if s, ret := dev.GetName(); ret == nvml.SUCCESS {
			g.Name = s
		}
		if s, ret := dev.GetUUID(); ret == nvml.SUCCESS {
			g.UUID = s
		}
		if m, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemoryTotal, g.MemoryUsed = m.Total, m.Used
		}
		r.GPUs = append(r.GPUs, g)
	}
	return r
}

// nvmlCCState reports the system confidential-computing state; older
// drivers lack the symbol and many GPUs answer ERROR_NOT_SUPPORTED.
func nvmlCCState() string {
	if err := nvml.Extensions().LookupSymbol("nvmlSystemGetConfComputeState"); err != nil {
		return "unknown (driver has no nvmlSystemGetConfComputeState)"
	}
	st, ret := nvml.SystemGetConfComputeState()
	switch ret {
	case nvml.SUCCESS:
	case nvml.ERROR_NOT_SUPPORTED:
		return "not supported on this system"
	default:
		return "unknown (" + nvml.ErrorString(ret) + ")"
	}
	feature := "off"
	if st.CcFeature == nvml.CC_SYSTEM_FEATURE_ENABLED {
		feature = "on"
	}
	env := map[uint32]string{nvml.CC_SYSTEM_ENVIRONMENT_UNAVAILABLE: "unavailable", nvml.CC_SYSTEM_ENVIRONMENT_SIM: "simulated", nvml.CC_SYSTEM_ENVIRONMENT_PROD: "production"}[st.Environment]
	if env == "" {
		env = fmt.Sprintf("environment %d", st.Environment)
	}
	dev := "off"
	if st.DevToolsMode == nvml.CC_SYSTEM_DEVTOOLS_MODE_ON {
		dev = "on"
	}
	return fmt.Sprintf("%s (environment %s, devtools mode %s)", feature, env, dev)
}

// doctorLogs checks that the log directory is 0700 and the files in it 0600
// (or stricter), owned by the current user, and not symlinks.
func doctorLogs(dir string) logReport {
	r := logReport{Dir: dir, Issues: []string{}}
	st, err := os.Lstat(dir)
	if err != nil {
		r.Issues = append(r.Issues, "cannot stat: "+describeFSError(err).Error())
		return r
	}
	r.Exists = true
	euid := os.Geteuid()
	if st.Mode()&os.ModeSymlink != 0 {
		r.Issues = append(r.Issues, "is a symlink (an attacker controlling the link controls where logs go)")
	} else if !st.IsDir() {
		r.Issues = append(r.Issues, "not a directory")
		return r
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		r.Issues = append(r.Issues, fmt.Sprintf("directory mode %04o: group/other access (want 0700)", perm))
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) != euid {
		r.Issues = append(r.Issues, fmt.Sprintf("directory owned by uid %d, not the current user %d", s.Uid, euid))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		r.Issues = append(r.Issues, "cannot list: "+describeFSError(err).Error())
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			continue
		}
		r.Files++
		if fi.Mode()&os.ModeSymlink != 0 {
			r.Issues = append(r.Issues, e.Name()+": symlink")
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			r.Issues = append(r.Issues, fmt.Sprintf("%s: mode %04o (want 0600)", e.Name(), perm))
		}
		if s, ok := fi.Sys().(*syscall.Stat_t); ok && int(s.Uid) != euid {
			r.Issues = append(r.Issues, fmt.Sprintf("%s: owned by uid %d, not %d", e.Name(), s.Uid, euid))
		}
	}
	r.Safe = len(r.Issues) == 0
	return r
}

func doctorHMAC(keyFile string) hmacReport {
	var key []byte
	var src string
	switch {
	case keyFile != "":
		b, err := readInputFile(keyFile, "HMAC key file")
		if err != nil {
			return hmacReport{Detail: err.Error()}
		}
		key, src = []byte(strings.TrimRight(string(b), "\r\n")), "file "+keyFile
		if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
			return hmacReport{Configured: true, Source: src, KeyID: keyID(key), Detail: fmt.Sprintf("key file mode %04o: readable by group/other (want 0600)", st.Mode().Perm())}
		}
	case os.Getenv("FORENSIC_HMAC_SECRET") != "":
		key, src = []byte(os.Getenv("FORENSIC_HMAC_SECRET")), "environment FORENSIC_HMAC_SECRET"
	default:
		return hmacReport{Detail: "neither FORENSIC_HMAC_SECRET nor --hmac-key-file is set"}
	}
	r := hmacReport{Configured: true, Source: src, KeyID: keyID(key)}
	if len(key) < 16 {
		r.Detail = fmt.Sprintf("key is only %d bytes; use at least 32 random bytes", len(key))
	}
	return r
}

// keyID is the default kid: the first 8 hex digits of SHA-256(key).
func keyID(key []byte) string {
	s := sha256.Sum256(key)
	return hex.EncodeToString(s[:])[:8]
}

func printDoctor(w io.Writer, r *doctorReport) {
	fmt.Fprintf(w, "CPU:    %s, family 0x%x model 0x%x (%d logical cores)\n", r.CPU.Brand, r.CPU.Family, r.CPU.Model, r.CPU.LogicalCores)
	fmt.Fprintf(w, "        features: %s\n", strings.Join(r.CPU.Features, " "))
	fmt.Fprintf(w, "        zeroization kernel: %s (usable: %s); non-temporal stores >= %s, parallel >= %s\n",
		r.CPU.Kernel, strings.Join(r.CPU.Kernels, ", "), humanBytes(float64(r.CPU.NTThreshold)), humanBytes(float64(r.CPU.ParallelThreshold)))
	if r.CPU.ERMSThreshold > 0 {
		fmt.Fprintf(w, "        REP STOSB from %s up to the non-temporal threshold\n", humanBytes(float64(r.CPU.ERMSThreshold)))
	}
	if r.CPU.Forced != "" {
		fmt.Fprintf(w, "        KVH_CPU_KERNEL=%s\n", r.CPU.Forced)
	}
	if r.CUDA.Driver {
		fmt.Fprintf(w, "CUDA:   driver %s\n", r.CUDA.Version)
	} else {
		fmt.Fprintf(w, "CUDA:   no driver: %s\n", r.CUDA.Detail)
	}
	if r.CUDA.Driver && r.CUDA.Detail != "" {
		fmt.Fprintf(w, "        %s\n", r.CUDA.Detail)
	}
	if !r.NVML.Available {
		fmt.Fprintf(w, "GPUs:   none visible (%s)\n", r.NVML.Detail)
	} else {
		fmt.Fprintf(w, "GPUs:   %d (NVIDIA driver %s); confidential computing: %s\n", len(r.NVML.GPUs), r.NVML.DriverVersion, r.NVML.ConfidentialComputing)
		for _, g := range r.NVML.GPUs {
			if g.Error != "" {
				fmt.Fprintf(w, "        [%d] error: %s\n", g.Index, g.Error)
				continue
			}
			fmt.Fprintf(w, "        [%d] %s %s, %s total, %s used\n", g.Index, g.Name, g.UUID, humanBytes(float64(g.MemoryTotal)), humanBytes(float64(g.MemoryUsed)))
		}
	}
	switch {
	case !r.Logs.Exists:
		fmt.Fprintf(w, "Logs:   %s: %s\n", r.Logs.Dir, strings.Join(r.Logs.Issues, "; "))
	case r.Logs.Safe:
		fmt.Fprintf(w, "Logs:   %s: safe (0700 directory, %d files 0600, owned by you)\n", r.Logs.Dir, r.Logs.Files)
	default:
		fmt.Fprintf(w, "Logs:   %s: UNSAFE\n", r.Logs.Dir)
		for _, s := range r.Logs.Issues {
			fmt.Fprintf(w, "        - %s\n", s)
		}
	}
	if r.HMAC.Configured {
		fmt.Fprintf(w, "HMAC:   configured from %s, kid %s\n", r.HMAC.Source, r.HMAC.KeyID)
	} else {
		fmt.Fprintln(w, "HMAC:   not configured")
	}
	if r.HMAC.Detail != "" {
		fmt.Fprintf(w, "        %s\n", r.HMAC.Detail)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}
