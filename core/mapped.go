package core

import "golang.org/x/sys/unix"

// checkMapped refuses a host range that is not entirely mapped memory of this
// process, so that a bad base address is reported when a pool is registered
// instead of faulting when it is released. Linux msync(MS_ASYNC) is a no-op
// for the data but fails with ENOMEM when any page of the range is unmapped.
// The caller has checked that addr+n does not overflow.
func checkMapped(what string, addr, n uint64) error {
	if n == 0 {
		return nil
	}
	page := uint64(unix.Getpagesize())
	start := addr &^ (page - 1)
	_, _, errno := unix.Syscall(unix.SYS_MSYNC, uintptr(start), uintptr(addr+n-start), unix.MS_ASYNC)
	switch errno {
	case 0:
		return nil
	case unix.ENOMEM:
		return errorf(StatusInvalidArg, "%s: [0x%x, +%d) is not mapped memory of this process", what, addr, n)
	default:
		return errorf(StatusInvalidArg, "%s: [0x%x, +%d) cannot be checked: msync: %v", what, addr, n, errno)
	}
}
