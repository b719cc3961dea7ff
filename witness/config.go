package witness

import (
	"net/url"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
)

// CheckInput trims an admin's witness input and checks it field by field:
// a name, an http(s) address without credentials and a verifier key as
// 'portal witness serve' prints it. Storage adds its uniqueness checks to
// the Validation returned.
func CheckInput(in *doorledger.WitnessInput) doorledger.Validation {
	v := doorledger.Validation{}
	in.Name = strings.TrimSpace(doorledger.ScrubText(in.Name, false))
	in.URL = strings.TrimSpace(in.URL)
	in.VerifierKey = strings.TrimSpace(in.VerifierKey)
	if in.Name == "" {
		v.Add("name", "Give the witness a name, as in “Board's lawyer”.")
	} else if len(in.Name) > 100 {
		v.Add("name", "At most 100 characters.")
	}
	if u, err := url.Parse(in.URL); in.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.Add("url", "Enter the witness's address, as in https://witness.example.org.")
	}
	if _, err := ParseVerifierKey(in.VerifierKey); err != nil {
		v.Add("vkey", "Enter the key 'portal witness serve' printed: "+err.Error()+".")
	}
	return v
}

// Backoff after failed attempts to reach a witness: RetryMin doubled per
// failure in a row, at most RetryMax.
const (
	RetryMin = 2 * time.Second
	RetryMax = 10 * time.Minute
)

// Backoff is how long the portal waits before it asks a witness again after
// failures failed attempts in a row.
func Backoff(failures int) time.Duration {
	d := RetryMin
	for i := 1; i < failures && d < RetryMax; i++ {
		d *= 2
	}
	return min(d, RetryMax)
}
