//go:build amd64 && !purego

package cpuzero

import (
	"testing"

	"github.com/klauspost/cpuid/v2"
)

func TestERMSFor(t *testing.T) {
	for _, c := range []struct {
		name   string
		vendor cpuid.Vendor
		family int
		erms   bool
		l2     int
		want   int
	}{
		{"intel", cpuid.Intel, 6, true, 2 << 20, 64 << 10},
		{"intel without ERMS", cpuid.Intel, 6, false, 2 << 20, 0},
		{"zen 4", cpuid.AMD, 0x19, true, 1 << 20, 0},
		{"zen 5", cpuid.AMD, 0x1a, true, 1 << 20, 1 << 20},
		{"zen 5, L2 unknown", cpuid.AMD, 0x1a, true, 0, 1 << 20},
		{"later AMD, 2 MiB L2", cpuid.AMD, 0x1b, true, 2 << 20, 2 << 20},
		{"zen 5 without ERMS", cpuid.AMD, 0x1a, false, 1 << 20, 0},
		{"other vendor", cpuid.Hygon, 0x1a, true, 1 << 20, 0},
	} {
		if got := ermsFor(c.vendor, c.family, c.erms, c.l2); got != c.want {
			t.Errorf("%s: ermsFor = %d, want %d", c.name, got, c.want)
		}
	}
	c := &cpuid.CPU
	if got, want := defaultERMS(), ermsFor(c.VendorID, c.Family, c.Supports(cpuid.ERMS), c.Cache.L2); got != want {
		t.Errorf("defaultERMS = %d, want ermsFor of this CPU = %d", got, want)
	}
}
