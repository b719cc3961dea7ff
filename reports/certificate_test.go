package reports_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the same zone rules on every machine, for the golden file

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/doorledger/doorledger/reports"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// generatedAt is the fixed generation time of every certificate in these tests.
var generatedAt = time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)

const terms = `DELIVERY ACCESS CONSENT — TERMS (version 3)

1. The owner of the building named above consents to the installation of the
delivery-access device described above, and to its use by the carriers listed
by the installer to open the door(s) named above.

2. The device may open only those doors, only for deliveries, and every opening
is recorded. The owner may withdraw this consent at any time from Doorledger;
the device is then disabled.

3. This consent lapses after twelve months unless renewed.`

func TestConsentCertificate_Signed(t *testing.T) {
	c, b := SampleConsent(t), SampleBuilding()
	text := MustPDFText(t, MustCertificate(t, c, b))

	for _, want := range []string{
		"Consent certificate",
		"SIGNED",
		// Names outside cp1252, and HTML that must print as typed.
		"Zoë Nuñez",
		"Łukasz Wróbel",
		`Wróbel <script>alert("pwned")</script> & Sons`,
		"Οικία Παπαδοπούλου",
		"Дом на Невском",
		"Rue de l’Église 5, 8001 Zürich",
		// The device and the evidence.
		"SN-4F2A-0091-ZX",
		"main lobby intercom panel",
		c.Signature.TermsSHA256,
		"The terms printed above hash to this SHA-256.",
		"203.0.113.7",
		"Signed at (UTC)",
		"2026-03-14 15:04:05 UTC",
		"Signed at (building time)",
		"2026-03-14 16:04:05 CET (UTC+01:00, Europe/Zurich)",
		"Requested (building time)",
		"2026-03-14 15:50:00 CET (UTC+01:00, Europe/Zurich)",
		"Typed the 6-digit code",
		"This consent lapses after twelve months unless renewed.",
		"Signature as drawn",
		// The footer.
		"document C42-20261122T093000Z",
		"Page 1 of ",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	for _, unwanted := range []string{"NOT SIGNED", "Later facts", "WARNING"} {
		if containsText(text, unwanted) {
			t.Errorf("text of a signed consent contains %q", unwanted)
		}
	}
}

func TestConsentCertificate_NotSigned(t *testing.T) {
	for _, tt := range []struct {
		status doorledger.ConsentStatus
		want   []string
	}{
		{doorledger.ConsentAwaiting, []string{"NOT SIGNED — Awaiting signature", "has not signed", "There is no signature and no evidence"}},
		{doorledger.ConsentDeclined, []string{"NOT SIGNED — Declined", "The signer declined", "Later facts", "Not my building to decide"}},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			c := SampleConsent(t)
			c.Status, c.Signature = tt.status, nil
			if tt.status == doorledger.ConsentDeclined {
				c.StatusNote, c.StatusAt = "Not my building to decide", time.Date(2026, 3, 15, 8, 0, 0, 0, time.UTC)
			}
			text := MustPDFText(t, MustCertificate(t, c, SampleBuilding()))
			for _, want := range append(tt.want, "Zoë Nuñez", "SN-4F2A-0091-ZX") {
				if !containsText(text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
			for _, unwanted := range []string{"Evidence of signing", "Terms SHA-256", "Signature as drawn", "Typed name"} {
				if containsText(text, unwanted) {
					t.Errorf("unsigned consent's text contains %q", unwanted)
				}
			}
		})
	}
}

func TestConsentCertificate_Banner(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(c *doorledger.Consent)
		want   string
	}{
		// "Verified" names the roster address and how, never the typed name.
		{"InForce", func(c *doorledger.Consent) {}, "SIGNED Signed on 2026-03-14 15:04:05 UTC with the typed name “Zoë Nuñez”. Verified: the signer's roster address zoe.nunez@example.org, by a 6-digit code mailed to it, typed on the installer's screen; the typed name is not verified. In force until 2027-03-14 15:04:05 UTC."},
		{"NoExpiry", func(c *doorledger.Consent) { c.ExpiresAt = time.Time{} }, "the typed name is not verified. In force."},
		{"ByLink", func(c *doorledger.Consent) { c.Signature.Method = doorledger.VerifyLink }, "Verified: the signer's roster address zoe.nunez@example.org, by the one-time link mailed to it;"},
		{"PeriodEnded", func(c *doorledger.Consent) { c.ExpiresAt = generatedAt.Add(-time.Hour) }, "SIGNED, PERIOD ENDED"},
		{"SignedWithoutSignature", func(c *doorledger.Consent) { c.Signature = nil }, "NOT SIGNED The record's status is Signed, but no signature is on record."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := SampleConsent(t)
			tt.modify(c)
			if text := MustPDFText(t, MustCertificate(t, c, SampleBuilding())); !containsText(text, tt.want) {
				t.Errorf("text lacks %q", tt.want)
			}
		})
	}
}

// A typed name that differs from the roster's prints both names and says so;
// a signer removed since signing is flagged, the consent still in force.
func TestConsentCertificate_NameDiffersAndSignerRemoved(t *testing.T) {
	c := SampleConsent(t)
	c.Signer.Name = "Zoë Nuñez-Łukasz"
	c.Signature.TypedName = "Mickey Mouse"
	c.Signature.NameDiffers = true
	text := MustPDFText(t, MustCertificate(t, c, SampleBuilding()))
	for _, want := range []string{
		"SIGNED — TYPED NAME DIFFERS FROM THE ROSTER",
		"Signed on 2026-03-14 15:04:05 UTC with the typed name “Mickey Mouse”. Verified: the signer's roster address zoe.nunez@example.org",
		"The typed name differs from the roster name, “Zoë Nuñez-Łukasz”; the signer confirmed signing with it.",
		// Label and value print apart in pdftotext's reading order.
		"Roster name", "Name check", "On the roster now",
		"typed name differs from the roster: the signer was shown the roster name and confirmed signing with the name typed",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q\n%s", want, text)
		}
	}
	if containsText(text, "Verified and") || containsText(text, "Signed by Mickey Mouse") {
		t.Errorf("the certificate says the name was verified:\n%s", text)
	}

	c = SampleConsent(t)
	c.Signer.Active, c.Signer.RemovedAt = false, time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	text = MustPDFText(t, MustCertificate(t, c, SampleBuilding()))
	for _, want := range []string{
		"SIGNED — SIGNER SINCE REMOVED FROM THE ROSTER",
		"The signer has since been removed from the roster on 2026-06-01 12:00:00 UTC; the consent stays valid",
		"No: removed from the roster on 2026-06-01 12:00:00 UTC after signing",
		"typed name matches the roster name",
	} {
		if !containsText(text, want) {
			t.Errorf("text lacks %q\n%s", want, text)
		}
	}
}

func TestConsentCertificate_LaterFacts(t *testing.T) {
	for _, tt := range []struct {
		status doorledger.ConsentStatus
		banner string
	}{
		{doorledger.ConsentWithdrawn, "SIGNED, THEN WITHDRAWN"},
		{doorledger.ConsentDisputed, "SIGNED, NOW DISPUTED"},
		{doorledger.ConsentLapsed, "SIGNED, NOW LAPSED"},
	} {
		t.Run(string(tt.status), func(t *testing.T) {
			c := SampleConsent(t)
			c.Status = tt.status
			c.StatusAt = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
			c.StatusNote = "Reason given: <b>changed management</b>"
			text := MustPDFText(t, MustCertificate(t, c, SampleBuilding()))
			for _, want := range []string{
				tt.banner,
				"Later facts",
				"Recorded at (UTC)",
				"2026-07-01 12:00:00 UTC",
				"Recorded at (building time)",
				"2026-07-01 14:00:00 CEST (UTC+02:00, Europe/Zurich)",
				"Reason given: <b>changed management</b>",
				"Evidence of signing", // the evidence stays on record
			} {
				if !containsText(text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
		})
	}
}

// TestConsentCertificate_BadStoredData checks that damaged or hostile stored
// data still yields a valid PDF that says what is wrong.
func TestConsentCertificate_BadStoredData(t *testing.T) {
	qpdf := testtool.Require(t, "qpdf")

	for _, tt := range []struct {
		name   string
		modify func(c *doorledger.Consent, b *doorledger.Building)
		want   []string
	}{
		{"SignatureNotPNG", func(c *doorledger.Consent, b *doorledger.Building) {
			c.Signature.SignaturePNG = []byte("<svg onload=alert(1)>")
		}, []string{"The stored signature image cannot be shown: The signature must be a PNG image."}},
		{"SignatureBlank", func(c *doorledger.Consent, b *doorledger.Building) {
			c.Signature.SignaturePNG = MustPNG(t, image.NewNRGBA(image.Rect(0, 0, 60, 20)))
		}, []string{"cannot be shown: The signature is blank."}},
		{"TermsTampered", func(c *doorledger.Consent, b *doorledger.Building) {
			c.Signature.Terms += "\n4. The installer may also open the garage."
		}, []string{"WARNING: the terms printed above do NOT hash to this SHA-256."}},
		{"UnknownZones", func(c *doorledger.Consent, b *doorledger.Building) {
			b.Timezone, c.Signature.Timezone = "Mars/Olympus_Mons", "Local"
		}, []string{"Mars/Olympus_Mons (not a known zone: building times below are in UTC)", "2026-03-14 15:04:05 UTC (UTC+00:00, UTC)"}},
		{"HostileText", func(c *doorledger.Consent, b *doorledger.Building) {
			c.Signer.Name = "Zoë \U0001F33B Nuñez\x00\u202eevil\u202c\r\n\tjunior"
			c.Installer = "Łukasz\xff\xfe Wróbel"
			c.Device.Serial = strings.Repeat("SN", 200)
			c.Device.Location = "Unit {nb} lobby" // fpdf's default page-count alias
			c.Signature.UserAgent = strings.Repeat("Mozilla/5.0 (X11; Linux x86_64) ", 40)
			c.Signature.Terms = strings.Repeat(terms+"\r\n\r\n", 12) + "END OF TERMS"
			sum := sha256.Sum256([]byte(c.Signature.Terms))
			c.Signature.TermsSHA256 = hex.EncodeToString(sum[:])
		}, []string{"Zoë \uFFFD Nuñez evil junior", "Łukasz\uFFFD\uFFFD Wróbel", "END OF TERMS", "Unit {nb} lobby", "The terms printed above hash to this SHA-256.", "Page 2 of "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, b := SampleConsent(t), SampleBuilding()
			tt.modify(c, b)
			pdf := MustCertificate(t, c, b)
			MustQPDFCheck(t, qpdf, pdf)
			text := MustPDFText(t, pdf)
			for _, want := range tt.want {
				if !containsText(text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
			// Every page says it is one of all of them.
			pages := strings.Count(text, "\f")
			for n := 1; n <= pages; n++ {
				if want := "Page " + strconv.Itoa(n) + " of " + strconv.Itoa(pages); !containsText(text, want) {
					t.Errorf("text lacks %q", want)
				}
			}
		})
	}
}

func TestConsentCertificate_QPDFCheck(t *testing.T) {
	qpdf := testtool.Require(t, "qpdf")
	MustQPDFCheck(t, qpdf, MustCertificate(t, SampleConsent(t), SampleBuilding()))
}

func TestConsentCertificate_Missing(t *testing.T) {
	var buf bytes.Buffer
	if err := reports.ConsentCertificate(&buf, nil, SampleBuilding(), generatedAt); err == nil {
		t.Error("nil consent: no error")
	}
	if err := reports.ConsentCertificate(&buf, SampleConsent(t), nil, generatedAt); err == nil {
		t.Error("nil building: no error")
	}
}

// TestConsentCertificate_Golden checks that output is reproducible byte for
// byte. Refresh with: go test ./reports -run Golden -update
func TestConsentCertificate_Golden(t *testing.T) {
	golden := filepath.Join("testdata", "certificate.golden.pdf")
	got := MustCertificate(t, SampleConsent(t), SampleBuilding())
	if again := MustCertificate(t, SampleConsent(t), SampleBuilding()); !bytes.Equal(got, again) {
		t.Fatal("two runs with the same input differ")
	}

	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", golden, len(got))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		out := filepath.Join(t.TempDir(), "certificate.got.pdf")
		_ = os.WriteFile(out, got, 0o644)
		t.Errorf("certificate differs from %s (%d bytes, want %d); got is at %s; rerun with -update if the change is intended",
			golden, len(got), len(want), out)
	}
}

// SampleBuilding returns a building whose name needs Greek and Cyrillic.
func SampleBuilding() *doorledger.Building {
	return &doorledger.Building{
		ID:       7,
		Name:     "Οικία Παπαδοπούλου / Дом на Невском",
		Address:  "Rue de l’Église 5, 8001 Zürich",
		Timezone: "Europe/Zurich",
	}
}

// SampleConsent returns a signed consent with names outside cp1252 and HTML in
// the installer's company.
func SampleConsent(tb testing.TB) *doorledger.Consent {
	tb.Helper()
	sum := sha256.Sum256([]byte(terms))
	return &doorledger.Consent{
		ID:         42,
		BuildingID: 7,
		Device: doorledger.DeviceDetails{
			Vendor:   "Acme Access",
			Model:    "DX-9 Courier",
			Serial:   "SN-4F2A-0091-ZX",
			Location: "main lobby intercom panel",
			Opens:    "the street door and the inner lobby door, for parcel carriers only",
		},
		DeviceID:    3,
		InstallerID: 11,
		Installer:   "Łukasz Wróbel",
		Company:     `Wróbel <script>alert("pwned")</script> & Sons`,
		SignerID:    5,
		Signer:      doorledger.Signer{ID: 5, BuildingID: 7, Name: "Zoë Nuñez", Title: "Board president", Email: "zoe.nunez@example.org", Active: true},
		Status:      doorledger.ConsentSigned,
		RequestedAt: time.Date(2026, 3, 14, 14, 50, 0, 0, time.UTC),
		ExpiresAt:   time.Date(2027, 3, 14, 15, 4, 5, 0, time.UTC),
		Signature: &doorledger.ConsentSignature{
			TermsSHA256:  hex.EncodeToString(sum[:]),
			Terms:        terms,
			TypedName:    "Zoë Nuñez",
			SignaturePNG: MustPNG(tb, SignatureImage(600, 200)),
			SignedAt:     time.Date(2026, 3, 14, 15, 4, 5, 0, time.UTC),
			Timezone:     "Europe/Zurich",
			IP:           "203.0.113.7",
			UserAgent:    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
			Method:       doorledger.VerifyCode,
			SignerID:     5,
		},
	}
}

// SignatureImage draws a looping stroke on a transparent canvas, like a
// signature from signature_pad.
func SignatureImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	ink := color.NRGBA{0x1a, 0x23, 0x7e, 0xff}
	for i := 0; i <= 4000; i++ {
		s := float64(i) / 4000
		x := float64(w) * (0.08 + 0.84*s + 0.03*math.Sin(s*40))
		y := float64(h) * (0.5 + 0.28*math.Sin(s*13)*math.Cos(s*3) - 0.05*math.Cos(s*40))
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				if dx*dx+dy*dy <= 5 {
					img.SetNRGBA(int(x)+dx, int(y)+dy, ink)
				}
			}
		}
	}
	return img
}

// MustPNG encodes img as PNG.
func MustPNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustCertificate returns the certificate of c as of generatedAt.
func MustCertificate(tb testing.TB, c *doorledger.Consent, b *doorledger.Building) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := reports.ConsentCertificate(&buf, c, b, generatedAt); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// MustPDFText returns the text of a PDF as pdftotext extracts it (pages end
// with a form feed).
func MustPDFText(tb testing.TB, pdf []byte) string {
	tb.Helper()
	bin := testtool.Require(tb, "pdftotext")
	in := filepath.Join(tb.TempDir(), "in.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", in, "-").Output()
	if err != nil {
		tb.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// containsText reports whether the PDF text holds want, ignoring how lines
// wrapped: runs of whitespace (newlines, form feeds) count as one space.
func containsText(text, want string) bool {
	return strings.Contains(strings.Join(strings.Fields(text), " "), strings.Join(strings.Fields(want), " "))
}

// MustQPDFCheck fails unless qpdf --check finds the PDF free of errors and
// warnings.
func MustQPDFCheck(tb testing.TB, qpdf string, pdf []byte) {
	tb.Helper()
	in := filepath.Join(tb.TempDir(), "in.pdf")
	if err := os.WriteFile(in, pdf, 0o644); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(qpdf, "--check", in).CombinedOutput()
	if err != nil {
		tb.Fatalf("qpdf --check: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("No syntax or stream encoding errors found")) {
		tb.Errorf("qpdf --check output:\n%s", out)
	}
}

// TestConsentCertificate_Witnessed: the certificate ends with the portal's
// log as its witnesses vouched for it: the policy, who cosigned and when,
// who is missing, and the cosigned checkpoint; none met says so.
func TestConsentCertificate_Witnessed(t *testing.T) {
	c, b := SampleConsent(t), SampleBuilding()
	wh := &doorledger.WitnessedHead{
		Head:   &doorledger.LogHead{Size: 42, Note: "example.com/log\n42\nAAAA\n\n— example.com/log sig\n"},
		Policy: doorledger.WitnessPolicy{K: 1, N: 2},
		Cosignatures: []doorledger.Cosignature{{Witness: "Alice", VerifierKey: "a", Line: "— alice-witness cosig",
			SignedAt: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}},
		Configured: []doorledger.WitnessKey{{Name: "Alice", VerifierKey: "a"}, {Name: "Bob", VerifierKey: "b"}},
	}
	for _, tc := range []struct {
		wh   *doorledger.WitnessedHead
		want []string
	}{
		{wh, []string{"Witnessed log", "1 of 2 witnesses", "cosigned by 1 of 2 witnesses (Alice 2026-11-22 09:00 UTC); missing: Bob", "42 entries", "— alice-witness cosig"}},
		{&doorledger.WitnessedHead{Policy: wh.Policy, Configured: wh.Configured}, []string{"NOT WITNESSED", "missing: Alice and Bob"}},
	} {
		var buf bytes.Buffer
		if err := reports.ConsentCertificateWitnessed(&buf, c, b, generatedAt, tc.wh); err != nil {
			t.Fatal(err)
		}
		text := MustPDFText(t, buf.Bytes())
		for _, want := range tc.want {
			if !containsText(text, want) {
				t.Errorf("certificate lacks %q:\n%s", want, text)
			}
		}
	}
}
