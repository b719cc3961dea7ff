package doorledger_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

// journalCalls are the functions of the storage packages (db/*) that write an audit entry,
// and the position of the action among their arguments.
var journalCalls = map[string]int{
	"audit":         1, // tx.audit(ctx, action, …)
	"auditAs":       3, // tx.auditAs(ctx, actorID, actor, action, …)
	"auditVendor":   1, // tx.auditVendor(ctx, action, …)
	"recordAttempt": 5, // s.recordAttempt(ctx, email, ip, userID, ok, action)
}

// journaledActions reads the storage packages' sources and returns every action it
// writes to the audit journal: a literal given to one of journalCalls, the
// literals assigned to a variable given to one, and "consent." + the status
// that ends a consent. Anything else it cannot read fails the test, so that
// no action escapes it.
func journaledActions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("db", "*", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no db sources: %v", err)
	}
	fset := token.NewFileSet()
	found := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			params := map[string]bool{}
			for _, field := range fn.Type.Params.List {
				for _, n := range field.Names {
					params[n.Name] = true
				}
			}
			// The string literals each local variable is given.
			assigned := map[string][]string{}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if as, ok := n.(*ast.AssignStmt); ok {
					for i, lhs := range as.Lhs {
						id, ok := lhs.(*ast.Ident)
						if !ok || i >= len(as.Rhs) {
							continue
						}
						if lit, ok := as.Rhs[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							assigned[id.Name] = append(assigned[id.Name], v)
						}
					}
				}
				return true
			})
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pos, ok := journalCalls[sel.Sel.Name]
				if !ok || pos >= len(call.Args) {
					return true
				}
				where := fset.Position(call.Pos()).String()
				switch arg := call.Args[pos].(type) {
				case *ast.BasicLit:
					v, _ := strconv.Unquote(arg.Value)
					found[v] = true
				case *ast.Ident:
					switch {
					case params[arg.Name]:
						// A wrapper passing its caller's action on: its callers are read.
					case len(assigned[arg.Name]) > 0:
						for _, v := range assigned[arg.Name] {
							found[v] = true
						}
					default:
						t.Errorf("%s: the action %s is not a literal this test can read", where, arg.Name)
					}
				case *ast.BinaryExpr:
					if lit, ok := arg.X.(*ast.BasicLit); ok && lit.Value == `"consent."` {
						for _, s := range []doorledger.ConsentStatus{doorledger.ConsentWithdrawn, doorledger.ConsentDisputed, doorledger.ConsentLapsed} {
							found["consent."+string(s)] = true
						}
						break
					}
					t.Errorf("%s: an action built at run time; teach this test its values", where)
				default:
					t.Errorf("%s: an action this test cannot read (%T)", where, arg)
				}
				return true
			})
		}
	}
	var out []string
	for a := range found {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// TestEveryActionHasASentence: every action package db writes to the
// journal has its sentence, and every sentence is of an action written.
func TestEveryActionHasASentence(t *testing.T) {
	written := journaledActions(t)
	if len(written) < 40 {
		t.Fatalf("found only %d actions in db: %q", len(written), written)
	}
	known := doorledger.AuditActions()
	for _, a := range written {
		if !slices.Contains(known, a) {
			t.Errorf("the journal records %q, which has no sentence (journal.go)", a)
		}
	}
	for _, a := range known {
		if !slices.Contains(written, a) {
			t.Errorf("a sentence for %q, which nothing records any more", a)
		}
	}
	// Whatever their detail, sentences are prose: no JSON, no Go struct.
	for _, a := range known {
		for _, detail := range []string{`{}`, ``, `{"After":{"OccurredAt":"0001-01-01T00:00:00Z","ID":0},"Limit":0}`} {
			e := &doorledger.AuditEntry{ID: 1, Action: a, ObjectType: "device", ObjectID: 3, Detail: detail}
			s := doorledger.AuditSentence(e)
			if s == "" || strings.HasPrefix(s, "recorded ") || strings.ContainsAny(s, "{}") || strings.Contains(s, `"`) {
				t.Errorf("%s with detail %s: %q", a, detail, s)
			}
		}
	}
}

func TestAuditSentence(t *testing.T) {
	for _, tt := range []struct {
		action, objectType string
		objectID           int64
		detail             string
		want               string
	}{
		{"unlocks.export", "building", 7, `{"format":"csv","events":1508,"from":"2026-11-01","to":"2026-11-30"}`,
			"exported 1,508 unlock events, 1–30 Nov 2026, as CSV"},
		{"unlocks.export", "building", 7, `{"format":"csv","events":1,"from":"2026-10-28","to":"2026-11-03","device_id":3,"anomalies_only":true}`,
			"exported 1 unlock event, 28 Oct – 3 Nov 2026, of device #3, anomalies only, as CSV"},
		// An export journaled before this version, as it was found printed.
		{"unlocks.export", "building", 7, `{"BuildingID":7,"DeviceID":0,"DeviceRef":"","From":"2026-11-01","To":"","Method":"","Result":"granted","AnomaliesOnly":false,"Anomaly":"","OpenOnly":false,"After":{"OccurredAt":"0001-01-01T00:00:00Z","ID":0},"Limit":0}`,
			"exported unlock events, from 1 Nov 2026, granted only, as CSV"},
		{"report.request", "report", 0, `{"report":"AR-7-20261201T060000Z-3f9a","format":"pdf","from":"2026-11-01","to":"2026-11-30","events":1508}`,
			"requested report AR-7-20261201T060000Z-3f9a (PDF, 1–30 Nov 2026, 1,508 unlock events)"},
		{"report.generate", "report", 0, `{"report":"AR-1","format":"bundle","from":"2025-12-28","to":"2026-01-03","bytes":3145728,"head_size":12345}`,
			"generated report AR-1 (evidence bundle, 28 Dec 2025 – 3 Jan 2026, 3.0 MB), its signed log head covering 12,345 entries"},
		{"device.disable", "device", 3, `{"command":12,"version":2,"reason":"revoked by a manager"}`,
			"told device #3 to disable (command #12, version 2): “revoked by a manager”"},
		{"consent.sign", "consent", 4, `{"terms_sha256":"3f9a2c71d0e4b5a6c7d8e9f00112233445566778899aabbccddeeff001122334","method":"link","typed_name":"Zoë Nuñez","signer":5}`,
			"signed consent #4, typing the name “Zoë Nuñez”, verified by the signing link mailed to the roster's address; terms SHA-256 3f9a2c71d0e4b5a6…"},
		{"consent.request", "consent", 9, `{"signers":[3,5],"policy":2,"mode":"link","serial":"SN-1","renewal_of":0,"resend_of":0}`,
			"requested consent #9 from signers #3 and #5 for the device with serial SN-1, by a signing link mailed to them"},
		{"consent.resend", "consent", 10, `{"resend_of":9}`, "sent consent #9 again as consent #10, with new signing links"},
		{"resident.notify", "building", 7, `{"entries":[31,32],"subscribers":1}`, "mailed 1 subscribed resident of the building a notice of 2 changes to its devices"},
		{"resident.report_resolve", "resident_report", 3, `{"outcome":"found_device","device":12,"note":""}`, "resolved resident report #3: recorded as found device #12"},
		{"resident.report", "resident_report", 3, `{"photo":true,"contact_given":false}`, "a resident reported a device the notice does not list (resident report #3, with a photo)"},
		{"consent.withdrawn", "consent", 4, `{"note":"We sold the\nbuilding","devices_disabled":2}`,
			"withdrew consent #4: “We sold the building”; 2 devices told to disable"},
		{"building.unlock_settings", "building", 7, `{"old":{"retention_days":365,"burst_count":5,"delivery_hours":"08:00-20:00"},"new":{"retention_days":730,"burst_count":5,"delivery_hours":"08:00-20:00"}}`,
			"changed the building's unlock rules: retention (days) 365 → 730"},
		{"command.confirmed", "command", 12, `{"device":3,"state":"disabled","version":2,"latency_ms":1200}`,
			"confirmed command #12: device #3 is disabled at version 2, 1.2 s after it was requested"},
		{"command.refused", "command", 12, `{"device":3,"version":2,"desired_state":"disabled","reported_state":"enabled","after_ms":800}`,
			"refused command #12: device #3, told to disable at version 2, reported that version still enabled, 800 ms after it was requested; the building's managers were alerted at once"},
		{"device.offline", "device", 3, `{"since":"2026-11-10T08:00:00.000000Z","heartbeat_seconds":600}`,
			"device #3 went silent: not heard from since 2026-11-10 08:00 UTC, longer than its heartbeat of 10 min"},
		{"anomaly.acknowledge", "unlock_event", 77, `{"note":"Courier confirmed","anomalies":["after_revocation","without_consent"],"event_id":"e-1","device_id":3}`,
			"acknowledged the anomalies of unlock event #77 (device #3's event “e-1”): after revocation, without consent: “Courier confirmed”"},
		{"unlocks.purge", "building", 7, `{"deleted":1508,"before":"2025-11-01T00:00:00Z","retention_days":365}`,
			"deleted 1,508 unlock events older than 2025-11-01 00:00 UTC, past the building's retention of 365 days; their entries stay in the verifiable log"},
		{"unlock.redact", "building", 7, `{"events":3,"ids":"4-6","before":"2026-08-01T00:00:00.000000Z","fields":"actor_ref","digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}`,
			"removed the courier and package references of 3 unlock events older than 2026-08-01 00:00 UTC under the Tenant Data Privacy Act profile; counts and anomaly flags stay, and each event still proves against its entry in the verifiable log (digest 0123456789abcdef…)"},
		{"building.privacy_profile", "building", 7, `{"profile":"nyc_tdpa"}`,
			"put the building under the privacy profile of the New York City Tenant Data Privacy Act (Local Law 63 of 2021)"},
		{"device.disclosure", "device", 3, `{"disclosure":2}`, "named vendor disclosure record #2 for device #3"},
		{"no.such_action", "device", 3, `{"b":true,"a":"x"}`, "recorded no.such_action on device #3: a “x”, b true"},
	} {
		e := &doorledger.AuditEntry{Action: tt.action, ObjectType: tt.objectType, ObjectID: tt.objectID, Detail: tt.detail}
		if got := doorledger.AuditSentence(e); got != tt.want {
			t.Errorf("%s %s:\n got %q\nwant %q", tt.action, tt.detail, got, tt.want)
		}
	}
}
