package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	p := MustStartPortal(t, dir, "-demo")
	out := p.Stdout.String()
	m := regexp.MustCompile(`manager\s+(\S+)\s+(\S+)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "3 simulated devices connected") {
		t.Fatalf("demo output:\n%s", out)
	}
	mgr := NewClient(t, p.URL)
	mgr.MustLogin(m[1], m[2])
	_, body := mgr.Get("/buildings")
	building := regexp.MustCompile(`href="(/buildings/\d+)">Harbor View`).FindStringSubmatch(body)
	if building == nil {
		t.Fatalf("no demo building:\n%s", body)
	}
	body = awaitPage(t, mgr, building[1], "enabled · confirmed")
	for _, want := range []string{"HV-KB2-0001", "HV-KB2-0002", "NO-LABEL-1", "UNCONSENTED", "Awaiting signature", "Zoë Nuñez"} {
		if !strings.Contains(body, want) {
			t.Errorf("demo building page lacks %q", want)
		}
	}
	// A second start with -demo keeps the data and seeds nothing twice.
	p.Stop(t)
	p = MustStartPortal(t, dir, "-demo")
	if out := p.Stdout.String(); !strings.Contains(out, "already seeded") || strings.Contains(out, "First start") {
		t.Fatalf("second demo start:\n%s", out)
	}
}
