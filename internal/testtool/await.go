package testtool

import (
	"testing"
	"time"
)

// Await polls cond every millisecond until it holds; after 30 s the test
// fails, saying what never happened (a guard against a hang, not a measure).
func Await(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
