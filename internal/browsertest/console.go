package browsertest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// collector records a tab's console. Its listen method runs in chromedp's
// event loop of the tab, in the order the browser sent the events, so after
// any command returns every message the browser sent before the reply has
// been recorded.
type collector struct {
	mu       sync.Mutex
	problems []string // exceptions, CSP violations, console.error
	all      []string // every message, for the log of a failed test
}

func (c *collector) listen(ev any) {
	var line string
	problem := false
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		line, problem = "JavaScript exception: "+exceptionText(ev.ExceptionDetails), true
	case *runtime.EventConsoleAPICalled:
		line = "console." + string(ev.Type) + ": " + argsText(ev.Args) + stackPlace(ev.StackTrace)
		problem = ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert
	case *log.EventEntryAdded:
		e := ev.Entry
		line = fmt.Sprintf("browser %s %s: %s", e.Source, e.Level, e.Text)
		if e.URL != "" {
			line += " (" + e.URL + ":" + strconv.FormatInt(e.LineNumber+1, 10) + ")"
		}
		if isCSPViolation(e) {
			line, problem = "Content-Security-Policy violation: "+line, true
		}
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.all) < 1000 {
		c.all = append(c.all, line)
	}
	if problem {
		c.problems = append(c.problems, line)
	}
}

// isCSPViolation reports whether a browser log entry is a Content-Security-
// Policy violation ("Refused to execute inline script because it violates the
// following Content Security Policy directive…"). Chromium files them under
// the "security" source; the text test also catches report-only wording.
func isCSPViolation(e *log.Entry) bool {
	return strings.Contains(e.Text, "Content Security Policy") ||
		(e.Source == log.EntrySourceSecurity && strings.HasPrefix(e.Text, "Refused to"))
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if o := d.Exception; o != nil && o.Description != "" {
		desc, _, _ := strings.Cut(o.Description, "\n    at ")
		s += " " + desc
	}
	where := d.URL
	if where == "" && d.StackTrace != nil && len(d.StackTrace.CallFrames) > 0 {
		where = d.StackTrace.CallFrames[0].URL
	}
	if where != "" {
		s += fmt.Sprintf(" (%s:%d:%d)", where, d.LineNumber+1, d.ColumnNumber+1)
	}
	return s
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
			parts = append(parts, "null")
		case a.Type == runtime.RemoteObjectTypeString:
			s, err := strconv.Unquote(string(a.Value))
			if err != nil {
				s = string(a.Value)
			}
			parts = append(parts, s)
		case a.Description != "":
			parts = append(parts, a.Description)
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// flush makes a round trip to the page, so that every console message the
// browser sent before it has reached the collector.
func flush(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return chromedp.Do(fctx, chromedp.Evaluate[chromedp.Void]("0"))
}

// Problems returns, and forgets, the JavaScript exceptions, CSP violations and
// console.error calls the tab has seen so far. A test that provokes one on
// purpose takes it here, so the check at cleanup passes.
func Problems(tb testing.TB, ctx context.Context) []string {
	tb.Helper()
	t := tabOf(ctx)
	if t == nil {
		tb.Fatal("browsertest.Problems: ctx is not from NewTab")
	}
	if err := flush(ctx); err != nil {
		tb.Errorf("browsertest: reading the console: %v", err)
	}
	t.console.mu.Lock()
	defer t.console.mu.Unlock()
	p := t.console.problems
	t.console.problems = nil
	return p
}

// CheckConsole fails the test for each problem the tab's console has shown
// so far (see Problems). NewTab's cleanup calls it; call it earlier to fail
// closer to the cause.
func CheckConsole(tb testing.TB, ctx context.Context) {
	tb.Helper()
	for _, p := range Problems(tb, ctx) {
		tb.Errorf("browser console: %s", p)
	}
}

// ConsoleEnv, when set, logs every tab's whole console at cleanup; a failed
// test always gets it.
const ConsoleEnv = "DOORLEDGER_BROWSER_CONSOLE"

// checkConsole is CheckConsole at cleanup: the tab may be past its deadline,
// and a failed test gets the whole console transcript in its log.
func checkConsole(tb testing.TB, ctx context.Context, c *collector) {
	tb.Helper()
	if ctx.Err() == nil {
		if err := flush(ctx); err != nil {
			tb.Logf("browsertest: reading the console at cleanup: %v", err)
		}
	}
	c.mu.Lock()
	problems, all := c.problems, c.all
	c.problems = nil
	c.mu.Unlock()
	for _, p := range problems {
		tb.Errorf("browser console: %s", p)
	}
	if (tb.Failed() || os.Getenv(ConsoleEnv) != "") && len(all) > 0 {
		tb.Logf("browser console transcript:\n  %s", strings.Join(all, "\n  "))
	}
}
