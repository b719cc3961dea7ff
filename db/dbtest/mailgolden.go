package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The tests of the groups in mailGoldenGroups run on a fixed clock
// (mailEpoch, in the future so no rule that compares with the database's
// own clock sees the past), and every message a test leaves queued is
// compared, byte for byte once its random tokens and codes are masked, with
// testdata/mail/<test>.txt: the texts users receive (signers, residents,
// managers) stay as they are whichever backend writes them and wherever
// their wording lives. DOORLEDGER_UPDATE_GOLDEN=1 rewrites the files.
var mailGoldenGroups = map[string]bool{"consents": true, "papers": true, "residents": true, "policies": true}

// mailEpoch is the fixed start of the clock of the mail golden tests: a
// Wednesday afternoon in summer time in both buildings' zones.
var mailEpoch = time.Date(2031, time.June, 11, 14, 5, 0, 0, time.UTC)

// withMailGolden wraps newServices for one test of a mail golden group:
// each Services it makes starts at mailEpoch and has its queued mail
// checked when the test ends (before the services close: cleanups run last
// registered, first).
func withMailGolden(name string, newServices NewServices) NewServices {
	n := 0
	return func(t *testing.T) Services {
		s := newServices(t)
		*s.Now = mailEpoch
		n++
		file := name
		if n > 1 {
			file = fmt.Sprintf("%s.%d", name, n)
		}
		t.Cleanup(func() {
			if t.Failed() {
				return
			}
			checkMailGolden(t, s, file)
		})
		return s
	}
}

var (
	// goldenLink is a link the portal mails, its last path segment a token.
	goldenLink = regexp.MustCompile(regexp.QuoteMeta(BaseURL) + `(/[A-Za-z0-9/_.-]*/)([A-Za-z0-9_-]{16,})`)
	// goldenCode is a 6-digit code mailed for in-person signing.
	goldenCode = regexp.MustCompile(`(code is: )\d{6}`)
)

// maskMail masks what differs from run to run in a mail: the tokens of its
// links and its codes.
func maskMail(s string) string {
	s = goldenLink.ReplaceAllString(s, BaseURL+"${1}TOKEN")
	return goldenCode.ReplaceAllString(s, "${1}CODE")
}

// checkMailGolden compares the queued messages with the golden file name.
func checkMailGolden(t *testing.T, s Services, name string) {
	t.Helper()
	msgs, err := s.Outbox.PendingMessages(context.Background(), 1000, 100000)
	if err != nil {
		t.Errorf("mail golden: %v", err)
		return
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "=== to %s, kind %s, building %d\nSubject: %s\n\n%s\n", m.To, m.Kind, m.BuildingID, maskMail(m.Subject), maskMail(m.Body))
	}
	got := b.String()
	_, src, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(src), "testdata", "mail", strings.ReplaceAll(name, "/", "_")+".txt")
	if os.Getenv("DOORLEDGER_UPDATE_GOLDEN") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("mail golden: %v (DOORLEDGER_UPDATE_GOLDEN=1 writes it)", err)
		return
	}
	if got != string(want) {
		t.Errorf("the queued mail differs from %s:\n%s", path, firstDiff(string(want), got))
	}
}

// firstDiff shows the first line where got differs from want, with a few
// lines of context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		from := max(0, i-3)
		var b strings.Builder
		for j := from; j < i; j++ {
			fmt.Fprintf(&b, "  %s\n", w[j])
		}
		if i < len(w) {
			fmt.Fprintf(&b, "- %s\n", w[i])
		}
		if i < len(g) {
			fmt.Fprintf(&b, "+ %s\n", g[i])
		}
		return b.String()
	}
	return ""
}
