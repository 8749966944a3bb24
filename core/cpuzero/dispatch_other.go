//go:build !amd64 || purego

package cpuzero

// availableKernels returns the kernels usable here, best first: the generic one only.
func availableKernels() []*kernel { return []*kernel{genericKernel} }

// defaultNT is the default non-temporal threshold; the generic kernel ignores it.
func defaultNT() int { return DefaultNTThreshold }

// defaultERMS is 0: the generic kernel has no REP STOSB path.
func defaultERMS() int { return 0 }
