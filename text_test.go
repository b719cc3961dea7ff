package doorledger_test

import (
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
)

func TestValidateLineAndText(t *testing.T) {
	const (
		ok       = ""
		oneLine  = "Keep this on one line: remove the line break."
		tab      = "Remove the tab character."
		notUTF8  = "Use plain text: this is not valid UTF-8."
		invisTpl = "Remove the invisible control character U+"
	)
	for _, tc := range []struct {
		name      string
		in        string
		line      string // message of ValidateLine ("" when accepted); a prefix for invisTpl
		multiLine string // message of ValidateText
	}{
		{"plain", "Harbor View", ok, ok},
		{"accents and other scripts", "Zoë Nuñez · Łukasz · 東京 · שלום · مرحبا", ok, ok},
		{"emoji with zero-width joiner", "👩\u200d🔧 panel", ok, ok},
		{"Persian zero-width non-joiner", "می\u200cخواهم", ok, ok},
		{"left-to-right and right-to-left marks", "Apt 3\u200e, \u200fשלום", ok, ok},
		{"LF", "Elm Court\nIMPORTANT: this is a one-day trial", oneLine, ok},
		{"CRLF", "Elm Court\r\nBcc: x@example.com", oneLine, invisTpl + "000D."},
		{"CR", "Elm Court\rBcc: x@example.com", oneLine, invisTpl + "000D."},
		{"vertical tab", "a\vb", oneLine, invisTpl + "000B."},
		{"form feed", "a\fb", oneLine, invisTpl + "000C."},
		{"NEL (C1)", "a\u0085b", oneLine, invisTpl + "0085."},
		{"line separator", "a\u2028b", oneLine, invisTpl + "2028."},
		{"paragraph separator", "a\u2029b", oneLine, invisTpl + "2029."},
		{"tab", "a\tb", tab, tab},
		{"NUL", "a\x00b", invisTpl + "0000.", invisTpl + "0000."},
		{"escape", "a\x1b[31mb", invisTpl + "001B.", invisTpl + "001B."},
		{"DEL", "a\x7fb", invisTpl + "007F.", invisTpl + "007F."},
		{"C1 CSI", "a\u009bb", invisTpl + "009B.", invisTpl + "009B."},
		{"LRE", "a\u202ab", invisTpl + "202A.", invisTpl + "202A."},
		{"RLO", "7 days\u202e syad 1", invisTpl + "202E.", invisTpl + "202E."},
		{"PDF", "a\u202cb", invisTpl + "202C.", invisTpl + "202C."},
		{"LRI", "a\u2066b", invisTpl + "2066.", invisTpl + "2066."},
		{"PDI", "a\u2069b", invisTpl + "2069.", invisTpl + "2069."},
		{"invalid UTF-8", "a\xffb", notUTF8, notUTF8},
		{"multi-line note", "first line\nsecond line", oneLine, ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				what string
				fn   func(doorledger.Validation, string, string)
				want string
			}{{"ValidateLine", doorledger.ValidateLine, tc.line}, {"ValidateText", doorledger.ValidateText, tc.multiLine}} {
				v := doorledger.Validation{}
				c.fn(v, "field", tc.in)
				got := v["field"]
				if c.want == ok && len(v) != 0 {
					t.Errorf("%s(%q) = %q, want it accepted", c.what, tc.in, got)
				} else if c.want != ok && !strings.HasPrefix(got, c.want) {
					t.Errorf("%s(%q) = %q, want %q", c.what, tc.in, got, c.want)
				}
				// Whatever is refused, ScrubText makes acceptable, and it
				// leaves accepted text alone.
				scrubbed := doorledger.ScrubText(tc.in, c.what == "ValidateText")
				v = doorledger.Validation{}
				c.fn(v, "field", scrubbed)
				if len(v) != 0 {
					t.Errorf("%s(ScrubText(%q)) = %q, want it accepted", c.what, tc.in, v["field"])
				}
				if c.want == ok && scrubbed != tc.in {
					t.Errorf("ScrubText(%q) = %q, want it unchanged", tc.in, scrubbed)
				}
			}
		})
	}
}

func TestNormalizeText(t *testing.T) {
	for in, want := range map[string]string{
		"  one\r\ntwo\rthree\n  ": "one\ntwo\nthree",
		"\r\n\r\n":                "",
		"single":                  "single",
	} {
		if got := doorledger.NormalizeText(in); got != want {
			t.Errorf("NormalizeText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeReason(t *testing.T) {
	if r, err := doorledger.NormalizeReason("first\r\nsecond", 100); err != nil || r != "first\nsecond" {
		t.Errorf("NormalizeReason kept %q, %v; want two lines accepted", r, err)
	}
	if _, err := doorledger.NormalizeReason("a\u202eb", 100); !strings.Contains(doorledger.ErrorFields(err)["reason"], "U+202E") {
		t.Errorf("NormalizeReason with an override: %v", err)
	}
	if _, err := doorledger.NormalizeReason(strings.Repeat("x", 101), 100); doorledger.ErrorFields(err)["reason"] == "" {
		t.Errorf("NormalizeReason past its length: %v", err)
	}
}

// Every form's Validate checks its text fields with the shared helper.
func TestValidateRefusesLineBreaks(t *testing.T) {
	const inject = "\nIMPORTANT: this is a one-day trial"
	check := func(t *testing.T, err error, field string) {
		t.Helper()
		if got := doorledger.ErrorFields(err)[field]; !strings.Contains(got, "one line") {
			t.Errorf("field %s: %q (err %v), want the one-line message", field, got, err)
		}
	}
	req := func() doorledger.ConsentRequest {
		return doorledger.ConsentRequest{SignerID: 1, Device: doorledger.DeviceDetails{Vendor: "Acme", Model: "K2", Serial: "SN-1", Location: "lobby", Opens: "lobby door"}}
	}
	for field, set := range map[string]func(*doorledger.DeviceDetails){
		"vendor":   func(d *doorledger.DeviceDetails) { d.Vendor += inject },
		"model":    func(d *doorledger.DeviceDetails) { d.Model += inject },
		"serial":   func(d *doorledger.DeviceDetails) { d.Serial += inject },
		"location": func(d *doorledger.DeviceDetails) { d.Location += inject },
		"opens":    func(d *doorledger.DeviceDetails) { d.Opens += inject },
	} {
		r := req()
		set(&r.Device)
		check(t, r.Validate(), field)
	}
	if r := req(); r.Validate() != nil {
		t.Fatalf("a clean request is refused: %v", r.Validate())
	}

	b := doorledger.BuildingInput{Name: "Elm Court" + inject, Address: "1 Elm St\r\nBcc: x@example.com", Timezone: "UTC"}
	err := b.Validate()
	check(t, err, "name")
	check(t, err, "address")

	s := doorledger.SignerInput{Name: "Ana" + inject, Title: "Owner" + inject, Email: "ana@example.com"}
	err = s.Validate()
	check(t, err, "signer_name")
	check(t, err, "signer_title")

	u := doorledger.NewUser{Email: "ivan@example.com", Name: "Ivan" + inject, Role: doorledger.RoleInstaller, Company: "FastKey" + inject, Password: "correct horse battery"}
	err = u.Validate()
	check(t, err, "name")
	check(t, err, "company")

	vi := doorledger.VendorIntegrationInput{Name: "Acme" + inject, WebhookURL: "https://api.acme.example/hook", BuildingIDs: []int64{1}}
	check(t, vi.Validate(), "name")

	if _, err := doorledger.NormalizeAckNote("removed" + inject); !strings.Contains(doorledger.ErrorFields(err)["note"], "one line") {
		t.Errorf("ack note: %v", err)
	}
}
