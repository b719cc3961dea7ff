package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core vendored under testdata/axe (see its README).
const axeVersion = "4.14.1"

// AxeViolation is one rule axe-core found broken on a page, with the
// elements that break it.
type AxeViolation struct {
	ID     string    `json:"id"`     // the rule, e.g. "color-contrast"
	Impact string    `json:"impact"` // "minor", "moderate", "serious" or "critical"
	Help   string    `json:"help"`
	Nodes  []AxeNode `json:"nodes"`
}

// AxeNode is one element that breaks a rule.
type AxeNode struct {
	Target  []string `json:"target"` // CSS selectors reaching it
	HTML    string   `json:"html"`
	Summary string   `json:"failureSummary"`
}

// Blocking reports whether the violation fails a test: any critical or
// serious one, and the lesser ones the portal has cleared and keeps clear
// (heldRules).
func (v AxeViolation) Blocking() bool {
	return v.Impact == "critical" || v.Impact == "serious" || heldRules[v.ID]
}

// heldRules are axe rules of minor impact that no page breaks any more: an
// action column's header says "Actions" to a screen reader.
var heldRules = map[string]bool{"empty-table-header": true}

func (v AxeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for i, n := range v.Nodes {
		if i == 5 {
			fmt.Fprintf(&b, "\n\t… and %d more", len(v.Nodes)-i)
			break
		}
		fmt.Fprintf(&b, "\n\t%s %s", strings.Join(n.Target, " "), abbrev(n.HTML))
		if s := strings.TrimSpace(n.Summary); s != "" {
			fmt.Fprintf(&b, "\n\t\t%s", strings.ReplaceAll(s, "\n", "\n\t\t"))
		}
	}
	return b.String()
}

var axeSource struct {
	once sync.Once
	js   string
	err  error
}

// axeJS reads axe.min.js from this package's testdata: it is test data, never
// served by the portal nor embedded in a binary.
func axeJS() (string, error) {
	axeSource.once.Do(func() {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			axeSource.err = fmt.Errorf("axe: cannot locate the browsertest package's source")
			return
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "testdata", "axe", "axe.min.js"))
		if err != nil {
			axeSource.err = fmt.Errorf("axe: %w", err)
			return
		}
		if !strings.Contains(string(b[:min(len(b), 200)]), "axe v"+axeVersion) {
			axeSource.err = fmt.Errorf("axe: testdata/axe/axe.min.js is not axe-core %s", axeVersion)
			return
		}
		axeSource.js = string(b)
	})
	return axeSource.js, axeSource.err
}

// Axe waits for the page to settle, injects axe-core into it through the
// DevTools protocol (the page's Content-Security-Policy forbids inline
// script, and the portal does not serve axe) and runs every rule axe-core
// runs by default (WCAG 2.x A and AA and best practices). It returns the
// violations found, of every impact.
func Axe(tb testing.TB, ctx context.Context) []AxeViolation {
	tb.Helper()
	src, err := axeJS()
	if err != nil {
		tb.Fatal(err)
	}
	Settle(tb, ctx)
	sctx, cancel := step(ctx)
	defer cancel()
	inject := func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		has, err := chromedp.Evaluate[bool](`typeof window.axe === "object"`)(ctx, t)
		if err != nil || has {
			return chromedp.Void{}, err
		}
		_, err = chromedp.Evaluate[chromedp.Void](src+"\n;undefined")(ctx, t)
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(sctx, inject); err != nil {
		tb.Fatalf("axe: injecting axe-core: %v\n%s", err, Describe(ctx))
	}
	return Eval[[]AxeViolation](tb, ctx, `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
		id: v.id, impact: v.impact || "", help: v.help,
		nodes: v.nodes.map(n => ({target: n.target.map(String), html: n.html, failureSummary: n.failureSummary || ""}))})))`)
}
