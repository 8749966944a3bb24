// Package fakectl drives the CUDA test double (tests/fakecuda) from Go tests:
// it opens the same shared library the driver under test loads (dlopen is
// reference-counted, so both see one instance) and calls its fakecuda_*
// control functions. It is for tests only.
package fakectl
