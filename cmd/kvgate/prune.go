package main

import (
	"github.com/kvhygiene/kvhygiene/forensic"
)

// prunedNames lists the files a prune removed or archived, oldest first.
func prunedNames(rep *forensic.PruneReport) []string {
	if rep == nil {
		return nil
	}
	names := make([]string, 0, len(rep.Removed))
	for _, f := range rep.Removed {
		names = append(names, f.File)
	}
	return names
}
