package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// Exit codes shared by every subcommand.
const (
	exitOK    = 0
	exitError = 1 // usage, input or I/O error
	exitFail  = 2 // gate failure (check) or integrity failure (verify)
)

// command is one kvgate subcommand.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"check":     {"CI gate: compare exported metrics JSON with thresholds, write a verdict", runCheck},
	"verify":    {"verify forensic logs (all rotated files), enforce retention, verify again", runVerify},
	"serve":     {"serve a Prometheus textfile at /metrics", runServe},
	"doctor":    {"report CPU kernel, CUDA driver, GPUs, log directory safety and key configuration", runDoctor},
	"keygen":    {"generate a checkpoint signer key and verifier key", runKeygen},
	"fs-keygen": {"create a forward-secure MAC state file and its verification key", runFSKeygen},
	"bench":     {"measure host zeroization bandwidth (selected kernel vs Go clear)", runBench},
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain dispatches to a subcommand. A panic anywhere is turned into a
// one-line message and exit code 1: kvgate never prints a stack trace.
func realMain(args []string, stdout, stderr io.Writer) (code int) {
	debug.SetTraceback("none")
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kvgate: internal error: %v\n", r)
			code = exitError
		}
	}()
	if len(args) == 0 {
		usage(stderr)
		return exitError
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "kvgate", version())
		return exitOK
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "kvgate: unknown command %q (run 'kvgate help')\n", name)
		return exitError
	}
	return cmd.run(args[1:], stdout, stderr)
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "1.0.0"
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kvgate <command> [flags]")
	fmt.Fprintln(w, "")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "exit codes: 0 ok, 2 gate/integrity failure, 1 usage or I/O error")
	fmt.Fprintln(w, "run 'kvgate <command> -h' for the flags of a command")
}

// errHelp is returned by parseFlags when -h was given (usage printed, exit 0).
var errHelp = errors.New("help requested")

// newFlagSet returns a FlagSet that never exits the process and never prints
// on its own: parse errors are reported by parseFlags as one line.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: kvgate %s %s\n\nflags:\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s\n        %s%s\n", f.Name, f.Usage, def)
		})
	}
	return fs
}

// parseFlags parses args allowing flags before and after positional
// arguments (like argparse). It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, errHelp
			}
			return nil, fmt.Errorf("%s: %s (run 'kvgate %s -h')", fs.Name(), oneLine(err.Error()), fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagErrorCode prints err (unless it is errHelp) and returns the exit code.
func flagErrorCode(err error, stderr io.Writer) int {
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "kvgate "+err.Error())
	return exitError
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.TrimSpace(s)
}

// flagWasSet reports whether the flag name was given on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
