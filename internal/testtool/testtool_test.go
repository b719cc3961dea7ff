package testtool_test

import (
	"os/exec"
	"runtime"
	"testing"

	"github.com/doorledger/doorledger/internal/testtool"
)

func TestRequire_Found(t *testing.T) {
	want, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	if got := testtool.Require(t, "go"); got != want {
		t.Errorf("Require = %q, want %q", got, want)
	}
}

func TestRequire_Missing(t *testing.T) {
	const name = "doorledger-no-such-tool"
	for _, tt := range []struct {
		env                   string
		wantSkipped, wantFail bool
	}{
		{"", true, false},
		{"0", true, false},
		{"1", false, true},
	} {
		t.Run("env="+tt.env, func(t *testing.T) {
			t.Setenv(testtool.RequireEnv, tt.env)
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() { // Skip and Fatal end the goroutine that calls them.
				defer close(done)
				testtool.Require(rec, name)
			}()
			<-done
			if got, want := rec.skipped, tt.wantSkipped; got != want {
				t.Errorf("skipped = %v, want %v", got, want)
			}
			if got, want := rec.failed, tt.wantFail; got != want {
				t.Errorf("failed = %v, want %v", got, want)
			}
		})
	}
}

// recorder notes Skipf and Fatalf instead of acting on the real test.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	runtime.Goexit()
}
