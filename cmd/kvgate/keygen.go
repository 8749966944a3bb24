package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvhygiene/kvhygiene/forensic"
)

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", "--name NAME --out-dir DIR")
	name := fs.String("name", "", "key name (the checkpoint signer identity, e.g. the host name)")
	dir := fs.String("out-dir", "", "directory for NAME.key (signer, 0600) and NAME.pub (verifier)")
	force := fs.Bool("force", false, "overwrite existing key files")
	if _, err := parseFlagsNoPositional(fs, args, stdout); err != nil {
		return flagErrorCode(err, stderr)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kvgate keygen: "+format+"\n", a...)
		return exitError
	}
	if *name == "" || *dir == "" {
		return fail("--name and --out-dir are required (run 'kvgate keygen -h')")
	}
	if strings.ContainsAny(*name, "/\\ \t\n+") || *name == "." || *name == ".." {
		return fail("--name %q: must not contain '/', '+', or whitespace", *name)
	}
	if st, err := os.Stat(*dir); err == nil && !st.IsDir() {
		return fail("--out-dir %s: not a directory", *dir)
	}
	signer, verifier, err := forensic.GenerateKey(*name)
	if err != nil {
		return fail("generate: %s", oneLine(err.Error()))
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fail("create %s: %s", *dir, describeFSError(err))
	}
	keyPath := filepath.Join(*dir, *name+".key")
	pubPath := filepath.Join(*dir, *name+".pub")
	if !*force {
		for _, p := range []string{keyPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return fail("%s exists; refusing to overwrite a key (use --force)", p)
			}
		}
	}
	if err := writeFileAtomic(keyPath, []byte(signer+"\n"), 0o600); err != nil {
		return fail("%s", err)
	}
	if err := writeFileAtomic(pubPath, []byte(verifier+"\n"), 0o644); err != nil {
		return fail("%s", err)
	}
	fmt.Fprintf(stdout, "signer key:   %s (0600, keep secret; config checkpoint_key_path)\n", keyPath)
	fmt.Fprintf(stdout, "verifier key: %s (give to auditors; kvgate verify --public-key)\n", pubPath)
	fmt.Fprintf(stdout, "verifier: %s\n", verifier)
	return exitOK
}
