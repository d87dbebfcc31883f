package enginetest

import (
	"strings"
	"testing"
	"time"
)

// Eventually waits until cond holds, polling every few milliseconds, and fails the test with what when it
// does not within timeout. Tests wait on the event itself with it, never on a fixed sleep.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// WaitCount waits until substr occurs at least n times in the log and returns the log.
func (l *LogBuffer) WaitCount(t testing.TB, substr string, n int, timeout time.Duration) string {
	t.Helper()
	var s string
	Eventually(t, timeout, "log line "+strconvQuote(substr)+" seen enough times", func() bool {
		s = l.String()
		return strings.Count(s, substr) >= n
	})
	return s
}

func strconvQuote(s string) string { return "\"" + s + "\"" }
