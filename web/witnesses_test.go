package web_test

import (
	"bytes"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/witness"
)

// TestWitnessForms: an admin adds a witness and sets the policy; bad input
// re-renders with the message beside its field and the input kept; a
// post without the CSRF token changes nothing; a security refusal shows
// as an alarm at the top of the page.
func TestWitnessForms(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	c.login("admin@example.com")
	w, err := witness.Open(t.TempDir(), "board-witness", nil)
	if err != nil {
		t.Fatal(err)
	}

	resp, body := c.post("/witnesses", url.Values{"name": {"Board's lawyer"}, "url": {"ftp://nope"}, "vkey": {"not a key"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="url-error" class="field-error">`) ||
		!strings.Contains(body, `id="vkey-error" class="field-error">Enter the key`) || !strings.Contains(html.UnescapeString(body), `value="Board's lawyer"`) {
		t.Fatalf("bad witness: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := c.post("/witnesses", url.Values{"name": {"Board"}, "url": {"https://w.example"}, "vkey": {w.VerifierKey()}}, "-"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("without CSRF: %d", resp.StatusCode)
	}
	if list, _ := f.witnesses.Witnesses(sys()); len(list) != 0 {
		t.Fatalf("witnesses after refused posts: %d", len(list))
	}
	resp, _ = c.post("/witnesses", url.Values{"name": {"Board's lawyer"}, "url": {"https://w.example"}, "vkey": {w.VerifierKey()}}, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add witness: %d", resp.StatusCode)
	}
	resp, body = c.post("/witnesses/policy", url.Values{"k": {"2"}}, "")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="k-error" class="field-error">Between 0 and 1`) {
		t.Fatalf("policy 2 of 1: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ = c.post("/witnesses/policy", url.Values{"k": {"1"}}, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("policy 1 of 1: %d", resp.StatusCode)
	}
	list, _ := f.witnesses.Witnesses(sys())
	if err := f.witnesses.RecordRefusal(sys(), &doorledger.WitnessRefusal{WitnessID: list[0].ID, Size: 42, Status: 422,
		Reason: "the consistency proof does not verify", Security: true}); err != nil {
		t.Fatal(err)
	}
	_, body = c.get("/witnesses")
	for _, want := range []string{`id="policy">1 of 1 witnesses`, "Security: the witness Board&#39;s lawyer refused the log.", "checkpoint of 42 entries", "(security event)"} {
		if !strings.Contains(body, want) {
			t.Errorf("witnesses page lacks %q\n%s", want, body)
		}
	}
	// The policy needs the one witness: removing it is refused beside the policy.
	resp, body = c.post(fmt.Sprintf("/witnesses/%d/remove", list[0].ID), nil, "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "lower it before removing one") {
		t.Fatalf("removing the needed witness: %d\n%s", resp.StatusCode, body)
	}
}

// uploadWithWitnesses posts a report file to the verify page with the
// board's witness list.
func (c *client) uploadWithWitnesses(file []byte, witnesses string) (*http.Response, string) {
	c.tb.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("_csrf", c.csrf())
	w.WriteField("witnesses", witnesses)
	fw, _ := w.CreateFormFile("file", "report.csv")
	fw.Write(file)
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base.String()+"/reports/verify", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, s := c.do(req)
	return resp, html.UnescapeString(s)
}

// TestVerifyReportWitnesses: the verify page takes the board's witness
// keys and k, says which witness vouched for the uploaded report's head and
// when, and names the one missing; a bad key line is refused beside the
// field with the input kept.
func TestVerifyReportWitnesses(t *testing.T) {
	f := newFixture(t)
	mgr := f.client()
	mgr.login(f.managerA.Email)
	id := reportLocRE.FindStringSubmatch(request(t, mgr, f, doorledger.ReportCSV, "2026-01-01", "2026-01-31"))[1]
	data := []byte("report," + id + "\r\n")
	rec := f.finish(t, data)

	alice, err := witness.Open(t.TempDir(), "alice-witness", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Follow(f.logs.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(alice)
	defer srv.Close()
	bob, err := witness.Open(t.TempDir(), "bob-witness", nil) // the board trusts him; he never cosigned
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.witnesses.AddWitness(sys(), doorledger.WitnessInput{Name: "Alice", URL: srv.URL, VerifierKey: alice.VerifierKey()}); err != nil {
		t.Fatal(err)
	}
	sub := &witness.Submitter{Log: f.logs, Witnesses: f.witnesses, HTTP: srv.Client()}
	if err := sub.Run(sys()); err != nil {
		t.Fatal(err)
	}

	board := "k 2\nOur lawyer " + alice.VerifierKey() + "\nBoard member " + bob.VerifierKey() + "\n"
	resp, body := mgr.uploadWithWitnesses(data, board)
	for _, want := range []string{`data-issued="true"`, `id="witnesses-file" data-ok="false"`,
		"NOT WITNESSED: 1 of the 2 required witnesses", fmt.Sprintf("<strong>Our lawyer</strong> cosigned the log at %d entries on ", rec.HeadSize),
		"<strong>Board member</strong>: missing (no cosignature of this head or a later one)"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("verify with the board's witnesses (%d): lacks %q\n%s", resp.StatusCode, want, body)
		}
	}
	resp, body = mgr.uploadWithWitnesses(data, "k 1\nOur lawyer "+alice.VerifierKey()+"\n")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-ok="true"`) || !strings.Contains(body, "vouched for by 1 of 1 witnesses (Our lawyer ") {
		t.Errorf("verify with 1 of 1: %d\n%s", resp.StatusCode, body)
	}
	resp, body = mgr.uploadWithWitnesses(data, "k 1\n"+f.logs.VerifierKey()+"\n")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `id="witnesses-error" class="field-error">Line 2: not a witness key`) ||
		!strings.Contains(body, f.logs.VerifierKey()+"\n</textarea>") {
		t.Errorf("a log's key as a witness's: %d\n%s", resp.StatusCode, body)
	}
}
