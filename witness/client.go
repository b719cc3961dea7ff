package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// Conflict is a witness's 409: it last cosigned Size, not the old size the
// request gave. Routine: retry with a proof from Size.
type Conflict struct{ Size int64 }

func (c *Conflict) Error() string {
	return fmt.Sprintf("the witness last cosigned size %d (409)", c.Size)
}

// Refused is a witness's refusal that says something is wrong with the log
// or its checkpoint: a consistency proof that does not verify (422), a
// signature it does not accept (403), a log it does not follow (404) or a
// request it calls malformed (400). A 422 or 403 is a security event: the
// log shown to this witness is not an extension of what it saw before, or
// not signed by the key it knows.
type Refused struct {
	Status int
	Reason string
}

func (r *Refused) Error() string {
	return fmt.Sprintf("the witness refused the checkpoint (%d %s): %s", r.Status, http.StatusText(r.Status), r.Reason)
}

// Security reports whether the refusal is a security event (a failed
// consistency proof or signature), not a configuration matter.
func (r *Refused) Security() bool {
	return r.Status == http.StatusUnprocessableEntity || r.Status == http.StatusForbidden
}

// FormatRequest writes an add-checkpoint request body.
func FormatRequest(oldSize int64, proof []tlog.Hash, signed string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range proof {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(signed)
	return b.Bytes()
}

// Submit posts the signed checkpoint to the witness at url (its base URL:
// add-checkpoint is beside it) with the consistency proof from oldSize, the
// size that witness last cosigned, and returns the signature lines it
// answers with. Errors: *Conflict, *Refused, or a transport error or other
// status (retry later).
func Submit(ctx context.Context, hc *http.Client, url string, oldSize int64, proof []tlog.Hash, signed string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+AddCheckpointPath,
		bytes.NewReader(FormatRequest(oldSize, proof, signed)))
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return string(body), nil
	case http.StatusConflict:
		n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil || n < 0 {
			return "", fmt.Errorf("the witness answered 409 without a size: %q", body)
		}
		return "", &Conflict{Size: n}
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity:
		return "", &Refused{Status: resp.StatusCode, Reason: strings.TrimSpace(string(body))}
	}
	return "", fmt.Errorf("the witness answered %s", resp.Status)
}

// IsRefused reports whether err is a witness's refusal, and returns it.
func IsRefused(err error) (*Refused, bool) {
	var r *Refused
	ok := errors.As(err, &r)
	return r, ok
}
