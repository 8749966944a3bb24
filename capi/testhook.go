package main

import (
	"math"
	"os"
)

// testPanicValue arms the test-only panic trigger (see doc.go).
const testPanicValue = "poison-the-library-i-am-a-test"

// testPanicArmed is read once when the library loads.
var testPanicArmed = os.Getenv("KVH_TEST_PANIC") == testPanicValue

// testPanic panics when the trigger is armed and handle is UINT64_MAX.
func testPanic(handle uint64) {
	if testPanicArmed && handle == math.MaxUint64 {
		panic("KVH_TEST_PANIC trigger fired")
	}
}
