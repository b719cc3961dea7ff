package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/devicectl"
	"github.com/doorledger/doorledger/ingest"
	"github.com/labstack/echo/v4"
)

// The machine API of vendor integrations (docs/ingest.md). A request carries
// no session: its signature is the credential, checked before anything else
// is read. Every refusal is JSON with a precise reason, and nothing is written
// unless the answer is 2xx.

// ingestBodyLimit bounds a batch's body: 1,000 events with every field at its
// longest, escaped, fit.
const ingestBodyLimit = 4 << 20

// MaxVendorBatch is the most events one batch may carry.
const MaxVendorBatch = ingest.DefaultMaxBatch

// Reasons of the machine API's refusals, for programs (docs/ingest.md).
const (
	reasonMissingSignature   = "missing_signature"
	reasonBadSignature       = "bad_signature"
	reasonStaleSignature     = "stale_signature"
	reasonUnknownIntegration = "unknown_integration"
	reasonReplayed           = "replayed"
	reasonTooLarge           = "too_large"
	reasonTooManyEvents      = "too_many_events"
	reasonMalformedJSON      = "malformed_json"
	reasonInvalidEvent       = "invalid_event"
	reasonInvalidReport      = "invalid_report"
	reasonInternal           = "internal"
	reasonUnavailable        = "unavailable" // the disk is full: nothing kept, send again after Retry-After
)

// apiError is a refusal of the machine API.
type apiError struct {
	status   int
	Error    string            `json:"error"`
	Code     string            `json:"code"`   // the status text, as in every JSON error of the portal
	Reason   string            `json:"reason"` // one of the reasons above
	Index    *int              `json:"index,omitempty"`
	Problems map[string]string `json:"problems,omitempty"` // "event 3" → what is wrong, up to 100
}

func refuse(status int, reason, msg string) *apiError {
	return &apiError{status: status, Error: msg, Code: http.StatusText(status), Reason: reason}
}

// writeAPIError answers a refusal, logging it (internal ones with their cause).
func (s *Server) writeAPIError(c echo.Context, vendorID int64, e *apiError, cause error) error {
	switch {
	case e.status == http.StatusServiceUnavailable:
		s.log.Warn("vendor api: refused for now", "route", c.Path(), "vendor", vendorID, "err", cause)
		c.Response().Header().Set("Retry-After", retryAfter)
	case e.status >= 500:
		s.log.Error("vendor api: internal error", "route", c.Path(), "vendor", vendorID, "err", cause)
		e.Error = "Internal error. It has been logged; please try again."
	default:
		s.log.Warn("vendor api: refused", "route", c.Path(), "vendor", vendorID, "status", e.status, "reason", e.Reason, "error", e.Error)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(e.status, e)
}

// signedRequest reads and authenticates a vendor's request: the integration in
// the path, the body, and the signature over both timestamp and body, made
// with one of the integration's active keys within the replay window. Whatever
// can be refused without the body is refused before a byte of it is read: an
// unknown integration, a missing, malformed or stale signature header.
func signedRequest(c echo.Context, vendors doorledger.VendorService) (doorledger.VendorRequest, []byte, *apiError, error) {
	var req doorledger.VendorRequest
	id, err := strconv.ParseInt(c.Param("vendor"), 10, 64)
	if err != nil || id <= 0 {
		return req, nil, refuse(http.StatusUnauthorized, reasonUnknownIntegration, "Unknown or retired vendor integration."), nil
	}
	req.VendorID = id
	header := c.Request().Header.Get(devicectl.SignatureHeader)
	if strings.TrimSpace(header) == "" {
		return req, nil, refuse(http.StatusUnauthorized, reasonMissingSignature, "Missing "+devicectl.SignatureHeader+" header."), nil
	}
	sig, err := devicectl.ParseSignature(header, time.Now(), devicectl.DefaultSignatureWindow)
	if err != nil {
		return req, nil, signatureRefusal(err), nil
	}
	keys, err := vendors.VendorKeys(c.Request().Context(), id)
	if code := doorledger.ErrorCode(err); code == doorledger.EUNAUTHORIZED {
		return req, nil, refuse(http.StatusUnauthorized, reasonUnknownIntegration, doorledger.ErrorMessage(err)), nil
	} else if err != nil {
		return req, nil, refuse(http.StatusInternalServerError, reasonInternal, ""), err
	}
	body, err := io.ReadAll(c.Request().Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return req, nil, refuse(http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("The body is larger than %d bytes.", mbe.Limit)), nil
	} else if err != nil {
		return req, nil, refuse(http.StatusBadRequest, reasonMalformedJSON, "The body could not be read."), nil
	}
	if err := sig.Verify(body, keys); err != nil {
		if doorledger.ErrorCode(err) == doorledger.EINTERNAL {
			return req, nil, refuse(http.StatusInternalServerError, reasonInternal, ""), err
		}
		return req, nil, signatureRefusal(err), nil
	}
	req.SignedAt = time.Unix(sig.Timestamp, 0).UTC()
	req.Until = req.SignedAt.Add(devicectl.DefaultSignatureWindow)
	h := sha256.New()
	h.Write([]byte(strconv.FormatInt(sig.Timestamp, 10) + "."))
	h.Write(body)
	copy(req.Digest[:], h.Sum(nil))
	return req, body, nil, nil
}

// signatureRefusal is the 401 for a signature devicectl refused (EINVALID or
// EUNAUTHORIZED): stale, or otherwise bad.
func signatureRefusal(err error) *apiError {
	msg := doorledger.ErrorMessage(err)
	reason := reasonBadSignature
	if strings.HasPrefix(msg, "Stale") {
		reason = reasonStaleSignature
	}
	return refuse(http.StatusUnauthorized, reason, msg)
}

// firstEvent returns the lowest event index an EINVALID error names, in its
// Fields ("event 3") or its message ("event 3: …").
func firstEvent(err error) (int, bool) {
	best := -1
	consider := func(s string) {
		rest, ok := strings.CutPrefix(s, "event ")
		if !ok {
			return
		}
		num, _, _ := strings.Cut(rest, ":")
		if n, err := strconv.Atoi(num); err == nil && n >= 0 && (best < 0 || n < best) {
			best = n
		}
	}
	for k := range doorledger.ErrorFields(err) {
		consider(k)
	}
	if best < 0 {
		consider(doorledger.ErrorMessage(err))
	}
	return best, best >= 0
}

// invalidEvents turns an EINVALID naming events into a 422 with the first index.
func invalidEvents(err error, reason string) *apiError {
	e := refuse(http.StatusUnprocessableEntity, reason, doorledger.ErrorMessage(err))
	if i, ok := firstEvent(err); ok {
		e.Index = &i
	}
	e.Problems = doorledger.ErrorFields(err)
	return e
}

// decodeError classifies what ingest.DecodeHTTPBatch refused: malformed JSON or
// the wrong shape (400), too many events (413), or bad events (422, by index).
func decodeError(err error) *apiError {
	msg := doorledger.ErrorMessage(err)
	switch {
	case doorledger.ErrorCode(err) != doorledger.EINVALID:
		return refuse(http.StatusInternalServerError, reasonInternal, "")
	case len(doorledger.ErrorFields(err)) > 0:
		return invalidEvents(err, reasonInvalidEvent)
	case strings.HasPrefix(msg, "batch: holds") && strings.Contains(msg, "at most"):
		return refuse(http.StatusRequestEntityTooLarge, reasonTooManyEvents, msg)
	default:
		return refuse(http.StatusBadRequest, reasonMalformedJSON, msg)
	}
}

// handleVendorEvents records a vendor's signed batch of unlock events:
// 200 {"received", "inserted", "duplicates", "anomalous"} once committed.
func (s *Server) handleVendorEvents(vendors doorledger.VendorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, body, refused, err := signedRequest(c, vendors)
		if refused != nil {
			return s.writeAPIError(c, req.VendorID, refused, err)
		}
		events, err := ingest.DecodeHTTPBatch(body, MaxVendorBatch)
		if err != nil {
			return s.writeAPIError(c, req.VendorID, decodeError(err), err)
		}
		res, err := vendors.RecordVendorEvents(c.Request().Context(), req, events)
		if err != nil {
			return s.writeAPIError(c, req.VendorID, serviceError(err, reasonInvalidEvent), err)
		}
		s.hub.Notify(UnlocksAllKey) // history pages show the new rows at once
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, map[string]int{"received": res.Events, "inserted": res.Inserted,
			"duplicates": res.Duplicates, "anomalous": res.Anomalous})
	}
}

// serviceError maps what the vendor service refused.
func serviceError(err error, invalid string) *apiError {
	switch doorledger.ErrorCode(err) {
	case doorledger.EINVALID:
		return invalidEvents(err, invalid)
	case doorledger.ECONFLICT:
		return refuse(http.StatusConflict, reasonReplayed, doorledger.ErrorMessage(err))
	case doorledger.EUNAUTHORIZED:
		return refuse(http.StatusUnauthorized, reasonUnknownIntegration, doorledger.ErrorMessage(err))
	case doorledger.EUNAVAILABLE:
		return refuse(http.StatusServiceUnavailable, reasonUnavailable, doorledger.ErrorMessage(err))
	}
	return refuse(http.StatusInternalServerError, reasonInternal, "")
}

// reportBody is the state a vendor's callback confirms (doorledger.ReportedState).
type reportBody struct {
	DeviceID *int64  `json:"device_id"`
	State    string  `json:"state"`
	Version  *int64  `json:"version"`
	At       *string `json:"at"`
}

// decodeReport reads a callback's body: 400 for malformed JSON, 422 for a
// missing or mistyped field.
func decodeReport(body []byte) (doorledger.ReportedState, *apiError) {
	var r doorledger.ReportedState
	if !json.Valid(body) {
		return r, refuse(http.StatusBadRequest, reasonMalformedJSON, "The body is not JSON.")
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return r, refuse(http.StatusBadRequest, reasonMalformedJSON, "The body must be a JSON object.")
	}
	var in reportBody
	if err := json.Unmarshal(body, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			kind := "an integer"
			if te.Field == "state" || te.Field == "at" {
				kind = "a string"
			}
			return r, refuse(http.StatusUnprocessableEntity, reasonInvalidReport, fmt.Sprintf("%s: must be %s", te.Field, kind))
		}
		return r, refuse(http.StatusBadRequest, reasonMalformedJSON, err.Error())
	}
	switch {
	case in.DeviceID == nil:
		return r, refuse(http.StatusUnprocessableEntity, reasonInvalidReport, "device_id: missing")
	case in.State == "":
		return r, refuse(http.StatusUnprocessableEntity, reasonInvalidReport, "state: missing (enabled or disabled)")
	case in.Version == nil:
		return r, refuse(http.StatusUnprocessableEntity, reasonInvalidReport, "version: missing")
	}
	r.DeviceID, r.State, r.Version = *in.DeviceID, doorledger.DeviceState(in.State), *in.Version
	if in.At != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.At)
		if err != nil {
			return r, refuse(http.StatusUnprocessableEntity, reasonInvalidReport, fmt.Sprintf("at: %q is not an RFC 3339 time", *in.At))
		}
		r.At = t
	}
	return r, nil
}

// handleVendorState records a vendor's signed callback: the state one of its
// devices applied, which confirms the device's command. 200 once committed.
func (s *Server) handleVendorState(vendors doorledger.VendorService) echo.HandlerFunc {
	return func(c echo.Context) error {
		req, body, refused, err := signedRequest(c, vendors)
		if refused != nil {
			return s.writeAPIError(c, req.VendorID, refused, err)
		}
		r, refused := decodeReport(body)
		if refused != nil {
			return s.writeAPIError(c, req.VendorID, refused, nil)
		}
		if err := vendors.ReportVendorState(c.Request().Context(), req, r); err != nil {
			e := serviceError(err, reasonInvalidReport)
			e.Index, e.Problems = nil, nil
			return s.writeAPIError(c, req.VendorID, e, err)
		}
		s.hub.Notify(DeviceKey(r.DeviceID))
		s.hub.Notify(DevicesKey)
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, map[string]any{"device_id": r.DeviceID, "state": r.State, "version": r.Version, "recorded": true})
	}
}
