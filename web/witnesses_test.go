package web_test

import (
	"fmt"
	"html"
	"net/http"
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
