package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/doorledger/doorledger/witness"
	"github.com/labstack/echo/v4"
)

// witnessesView reads the admin's witnesses page.
func witnessesView(c echo.Context, witnesses doorledger.WitnessService, logs doorledger.LogService) (views.WitnessesView, error) {
	ctx := c.Request().Context()
	v := views.WitnessesView{LogKey: logs.VerifierKey()}
	var err error
	if v.Witnesses, err = witnesses.Witnesses(ctx); err != nil {
		return v, err
	}
	if v.Policy, err = witnesses.WitnessPolicy(ctx); err != nil {
		return v, err
	}
	if v.Refusals, err = witnesses.WitnessRefusals(ctx, 20); err != nil {
		return v, err
	}
	v.PolicyForm = views.Form{Values: map[string]string{"k": strconv.Itoa(v.Policy.K)}}
	return v, nil
}

func (s *Server) renderWitnesses(c echo.Context, status int, v views.WitnessesView) error {
	return render(c, status, views.WitnessesPage(s.page(c, "Witnesses", "witnesses"), v))
}

func (s *Server) handleWitnesses(witnesses doorledger.WitnessService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := witnessesView(c, witnesses, logs)
		if err != nil {
			return err
		}
		return s.renderWitnesses(c, http.StatusOK, v)
	}
}

func (s *Server) handleWitnessAdd(witnesses doorledger.WitnessService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "name", "url", "vkey")
		_, err := witnesses.AddWitness(c.Request().Context(), doorledger.WitnessInput{Name: f.Value("name"), URL: f.Value("url"), VerifierKey: f.Value("vkey")})
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			v, verr := witnessesView(c, witnesses, logs)
			if verr != nil {
				return verr
			}
			v.Form = f
			return s.renderWitnesses(c, formStatus(err), v)
		}
		return c.Redirect(http.StatusSeeOther, "/witnesses")
	}
}

func (s *Server) handleWitnessPolicy(witnesses doorledger.WitnessService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f := formOf(c, "k")
		k, perr := strconv.Atoi(f.Value("k"))
		err := perr
		if perr == nil {
			err = witnesses.SetWitnessPolicy(c.Request().Context(), k)
		} else {
			err = doorledger.Validation{"k": "Enter a whole number of witnesses."}.Err()
		}
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			v, verr := witnessesView(c, witnesses, logs)
			if verr != nil {
				return verr
			}
			v.PolicyForm = f
			return s.renderWitnesses(c, formStatus(err), v)
		}
		return c.Redirect(http.StatusSeeOther, "/witnesses")
	}
}

func (s *Server) handleWitnessRemove(witnesses doorledger.WitnessService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "witness")
		if err != nil {
			return err
		}
		if err := witnesses.RemoveWitness(c.Request().Context(), id); err != nil {
			if doorledger.ErrorCode(err) != doorledger.ECONFLICT {
				return err
			}
			v, verr := witnessesView(c, witnesses, logs)
			if verr != nil {
				return verr
			}
			v.PolicyForm.Error = doorledger.ErrorMessage(err)
			return s.renderWitnesses(c, formStatus(err), v)
		}
		return c.Redirect(http.StatusSeeOther, "/witnesses")
	}
}

// vouched says which of trusted vouched for a registered report's head
// (nil when it has none or nobody is trusted), k of them being required.
func vouched(ctx context.Context, logs doorledger.LogService, witnesses doorledger.WitnessService, rec *doorledger.ReportRecord, trusted []witness.Trusted, k int) (*views.WitnessesVouched, error) {
	if rec == nil || rec.HeadSize == 0 || len(trusted) == 0 || witnesses == nil {
		return nil, nil
	}
	head := &doorledger.LogHead{Size: rec.HeadSize, Root: rec.HeadRoot, Note: rec.HeadNote}
	vs, err := witness.Vouch(ctx, logs, witnesses, head, trusted)
	if err != nil {
		return nil, err
	}
	w := &views.WitnessesVouched{}
	w.Summary, w.OK = witness.Summary(vs, k)
	for _, v := range vs {
		w.Vouchers = append(w.Vouchers, views.VoucherRow{Label: v.Label, Vouched: v.Vouched, Size: v.Size, SignedAt: v.SignedAt, Problem: v.Problem})
	}
	return w, nil
}

// configuredVouched is vouched with the portal's configured witnesses and
// policy: the report's page shows cosignatures that arrived after it.
func configuredVouched(ctx context.Context, logs doorledger.LogService, witnesses doorledger.WitnessService, rec *doorledger.ReportRecord) (*views.WitnessesVouched, error) {
	if witnesses == nil || rec == nil || rec.HeadSize == 0 {
		return nil, nil
	}
	now, err := witnesses.LatestWitnessed(ctx, 0)
	if err != nil {
		return nil, err
	}
	trusted := make([]witness.Trusted, len(now.Configured))
	for i, c := range now.Configured {
		trusted[i] = witness.Trusted{Label: c.Name, VerifierKey: c.VerifierKey}
	}
	return vouched(ctx, logs, witnesses, rec, trusted, now.Policy.K)
}
