package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/imagetest"
	"github.com/doorledger/doorledger/internal/pdftest"
)

// paperPNG is a photo of a form: a small image with some structure.
func paperPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 120, 160))
	for y := 0; y < 160; y++ {
		for x := 0; x < 120; x++ {
			img.Set(x, y, color.RGBA{uint8(200 + x%40), uint8(200 + y%50), 220, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var paperSHA256RE = regexp.MustCompile(`name="paper_sha256" value="([0-9a-f]{64})"`)

// signerID finds a roster signer's id on the request form.
func (w *rosterWorld) signerID(t *testing.T, name string) string {
	t.Helper()
	_, body := w.inst.Get(w.building + "/consents/new")
	m := regexp.MustCompile(`<option value="(\d+)"[^>]*>` + regexp.QuoteMeta(name)).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s among the signers", name)
	}
	return m[1]
}

// Paper forms end to end: hostile uploads are refused beside the field with the
// rest of the form kept and nothing written; a request with a PDF form and an
// installation photo is confirmed by its signer on the signing page (both
// hashes recorded) and shows in the certificate, the audit report and the
// evidence bundle; a request whose photographed form its signer did not sign
// is refused, its device stays disabled, the managers are alerted and the
// building page counts the dispute.
func TestEndToEndPaperForms(t *testing.T) {
	w := newRosterWorld(t, "Paula Prez <paula@example.com>", "Tom Trent <tom@example.com>")
	paula, tom := w.signerID(t, "Paula Prez"), w.signerID(t, "Tom Trent")
	newReq := w.building + "/consents/new"
	fields := func(serial, signer string) url.Values {
		return url.Values{"vendor": {"Acme"}, "model": {"K2"}, "serial": {serial}, "location": {"lobby panel"}, "opens": {"lobby door"},
			"signer_id": {signer}, "mode": {"link"}, "paper_signed_by": {signer}, "paper_date": {"2026-11-20"}}
	}
	consents := func() int {
		return (&boardWorld{rosterWorld: w}).count(t, `SELECT COUNT(*) FROM consents`)
	}

	// Hostile uploads: a clear message beside the field, the input kept, nothing written.
	for _, tc := range []struct {
		name, field, file string
		data              []byte
		want              string
	}{
		{"10,000 objects", "paper_pdf", "form.pdf", pdftest.ManyObjects(10000), "objects"},
		{"not a PDF", "paper_pdf", "form.pdf", []byte("<html>not a pdf</html>"), "not a PDF"},
		{"truncated", "paper_pdf", "form.pdf", pdftest.Truncated(), "incomplete"},
		{"50 MB", "paper_pdf", "form.pdf", append(pdftest.Pages(1), make([]byte, 50<<20)...), "larger than the 20 MB"},
		{"decompression bomb", "paper_photos", "form.png", mustZeroPNG(t), "form.png"},
	} {
		status, _, body := w.inst.PostMultipart(newReq, w.building+"/consents", fields("SN-BAD", paula), map[string]map[string][]byte{tc.field: {tc.file: tc.data}})
		if status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="`+tc.field+`-error"`) || !strings.Contains(html.UnescapeString(body), tc.want) {
			t.Errorf("%s: %d, want 422 with %q beside %s\n%.3000s", tc.name, status, tc.want, tc.field, body)
		}
		if !strings.Contains(body, `value="SN-BAD"`) || !strings.Contains(body, `value="2026-11-20"`) {
			t.Errorf("%s: the form's input is not kept", tc.name)
		}
	}
	if n := consents(); n != 0 {
		t.Fatalf("%d consents written by refused uploads", n)
	}

	// A PDF form (with JavaScript: stored as evidence, flagged) and an installation photo.
	form := pdftest.JavaScript()
	sum := sha256.Sum256(form)
	formHash := hex.EncodeToString(sum[:])
	status, consent, body := w.inst.PostMultipart(newReq, w.building+"/consents", fields("SN-PF1", paula),
		map[string]map[string][]byte{"paper_pdf": {"form.pdf": form}, "photos": {"install.png": paperPNG(t)}})
	if status != http.StatusSeeOther {
		t.Fatalf("request with a paper form: %d\n%s", status, body)
	}
	link := (&boardWorld{rosterWorld: w}).linkTo(t, "paula@example.com", "/sign/")
	signer := NewClient(t, w.p.URL)
	_, page := signer.Get(link)
	for _, want := range []string{"Did you sign this form?", "I did not sign this form", "1 page", "contains JavaScript", formHash, `name="paper_confirm"`} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("signing page lacks %q", want)
		}
	}
	m := regexp.MustCompile(`href="(` + regexp.QuoteMeta(link) + `/paper/\d+)" download`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no download link for the PDF on the signing page:\n%s", page)
	}
	resp, err := signer.http.Get(signer.base + m[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, form) || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("PDF served %d bytes, Content-Disposition %q, nosniff %q", len(got), resp.Header.Get("Content-Disposition"), resp.Header.Get("X-Content-Type-Options"))
	}
	// Signing without confirming the form is refused beside the box; confirming signs.
	terms := termsRE.FindStringSubmatch(page)[1]
	paperHash := paperSHA256RE.FindStringSubmatch(page)[1]
	sign := url.Values{"terms_sha256": {terms}, "typed_name": {"Paula Prez"}, "agree": {"1"}, "signature": {signatureDataURL(t)}, "paper_sha256": {paperHash}}
	if status, _, body := signer.Post(link, link, sign); status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="paper_confirm-error"`) {
		t.Fatalf("signed without confirming the paper form: %d", status)
	}
	sign.Set("paper_confirm", "1")
	if status, _, body := signer.Post(link, link, sign); status != http.StatusOK || !strings.Contains(body, "consent signed") {
		t.Fatalf("sign with the paper form confirmed: %d\n%s", status, body)
	}
	bw := &boardWorld{rosterWorld: w}
	if n := bw.count(t, `SELECT COUNT(*) FROM paper_form_signers ps JOIN consent_signatures g ON g.id = ps.signature_id
		WHERE ps.answer = 'confirmed' AND ps.paper_sha256 = ? AND g.terms_sha256 = ?`, formHash, terms); n != 1 {
		t.Errorf("confirmation with both hashes: %d rows", n)
	}
	if w.deviceState(t, consent) != "enabled" {
		t.Errorf("device not enabled after the confirmed signature")
	}
	cert := certificateText(t, w.mgr, consent)
	for _, want := range []string{"Signed paper form", formHash, "confirmed by the signer on", "contains JavaScript"} {
		if !strings.Contains(cert, want) {
			t.Errorf("certificate lacks %q:\n%s", want, cert)
		}
	}

	// A photographed form Tom did not sign.
	status, consent2, body := w.inst.PostMultipart(newReq, w.building+"/consents", fields("SN-PF2", tom),
		map[string]map[string][]byte{"paper_photos": {"form.png": paperPNG(t)}})
	if status != http.StatusSeeOther {
		t.Fatalf("request with a photographed form: %d\n%s", status, body)
	}
	link2 := bw.linkTo(t, "tom@example.com", "/sign/")
	tc := NewClient(t, w.p.URL)
	_, page = tc.Get(link2)
	if !regexp.MustCompile(`<img src="` + regexp.QuoteMeta(link2) + `/paper/\d+"`).MatchString(page) {
		t.Errorf("the photo is not shown inline on the signing page")
	}
	if status, _, body := tc.Post(link2, link2+"/paper/dispute", url.Values{"reason": {"Not my signature."}}); status != http.StatusOK || !strings.Contains(body, "You did not sign this form") {
		t.Fatalf("I did not sign this form: %d\n%s", status, body)
	}
	if w.deviceState(t, consent2) != "disabled" {
		t.Error("device enabled after the dispute")
	}
	_, outbox := w.admin.Get("/outbox")
	if !strings.Contains(outbox, "Paper form DISPUTED") || !strings.Contains(outbox, "mia@example.com") {
		t.Error("no alert to the manager in the outbox")
	}
	_, bpage := w.mgr.Get(w.building)
	if m := regexp.MustCompile(`(?s)<section id="paper-disputes">.*?Ivan Installer.*?<td>Acme</td>\s*<td>2</td>\s*<td>\s*<strong[^>]*>1</strong>`).FindString(bpage); m == "" {
		t.Errorf("building page does not count the disputed form:\n%s", bpage)
	}
	_, cpage := w.mgr.Get(consent2)
	if !strings.Contains(cpage, "disputed by the signer on") {
		t.Error("consent page does not say the form was disputed")
	}

	// The audit report and the evidence bundle carry the forms.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().In(ny).Format("2006-01-02")
	report := requestReport(t, w.mgr, w.building, doorledger.ReportPDF, today, today)
	text := strings.Join(strings.Fields(pdfText(t, download(t, w.mgr, report, awaitReport(t, w.mgr, report), ".pdf", "application/pdf"))), " ")
	for _, want := range []string{"Paper form", formHash[:16], "Paper forms by installer and vendor", "disputed by the signer on"} {
		if !strings.Contains(text, want) {
			t.Errorf("audit report lacks %q", want)
		}
	}
	report = requestReport(t, w.mgr, w.building, doorledger.ReportBundle, today, today)
	zipped := download(t, w.mgr, report, awaitReport(t, w.mgr, report), ".zip", "application/zip")
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	id := strings.TrimPrefix(consent, "/consents/")
	var j struct {
		Paper struct {
			Files []struct {
				File    string `json:"file"`
				SHA256  string `json:"sha256"`
				Matches bool   `json:"file_hashes_to_sha256"`
			} `json:"files"`
		} `json:"paper_form"`
	}
	if err := json.Unmarshal(files["consents/"+id+".json"], &j); err != nil || len(j.Paper.Files) != 1 {
		t.Fatalf("bundle's consent %s: %v %s", id, err, files["consents/"+id+".json"])
	}
	pf := j.Paper.Files[0]
	fs := sha256.Sum256(files[pf.File])
	if !pf.Matches || pf.SHA256 != formHash || hex.EncodeToString(fs[:]) != formHash {
		t.Errorf("bundle's paper form %s: hash %s, file hashes to %x, want %s", pf.File, pf.SHA256, fs, formHash)
	}
}

func mustZeroPNG(t *testing.T) []byte {
	t.Helper()
	b, err := imagetest.ZeroPNG(30000, 30000, 2, 8, false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
