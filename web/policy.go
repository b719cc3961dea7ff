package web

import (
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// policyView is a building's policy form with the policy in force (f empty)
// or the input posted.
func (s *Server) policyView(c echo.Context, buildings doorledger.BuildingService, policies doorledger.PolicyService, id int64, f views.Form) (views.PolicyView, error) {
	ctx := c.Request().Context()
	b, err := buildings.FindBuildingByID(ctx, id)
	if err != nil {
		return views.PolicyView{}, err
	}
	p, err := policies.FindConsentPolicy(ctx, id)
	if err != nil {
		return views.PolicyView{}, err
	}
	v := views.PolicyView{Building: b, Policy: p, Form: f, Roles: map[string]bool{}}
	seen := map[string]bool{}
	for _, sg := range b.Signers {
		if k := strings.ToLower(strings.Join(strings.Fields(sg.Title), " ")); !seen[k] {
			seen[k] = true
			v.Titles = append(v.Titles, sg.Title)
		}
	}
	sort.Strings(v.Titles)
	if f.Values == nil {
		days := make([]string, len(p.ReminderDays))
		for i, d := range p.ReminderDays {
			days[i] = strconv.Itoa(d)
		}
		v.Form.Values = map[string]string{"required": strconv.Itoa(p.Required), "reminder_days": strings.Join(days, ", "),
			"expiry_days": strconv.Itoa(p.ExpiryDays)}
		if p.Ordered {
			v.Form.Values["ordered"] = "1"
		}
		for _, r := range p.Roles {
			v.Roles[r] = true
		}
	} else {
		for _, r := range c.Request().Form["roles"] {
			v.Roles[r] = true
		}
	}
	for r := range v.Roles { // a required role nobody on the roster holds any more still shows
		if !seen[strings.ToLower(strings.Join(strings.Fields(r), " "))] {
			v.Titles = append(v.Titles, r)
		}
	}
	return v, nil
}

func (s *Server) handlePolicyPage(buildings doorledger.BuildingService, policies doorledger.PolicyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		v, err := s.policyView(c, buildings, policies, id, views.Form{})
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.PolicyPage(s.page(c, "Consent policy", "buildings"), v))
	}
}

func (s *Server) handlePolicyUpdate(buildings doorledger.BuildingService, policies doorledger.PolicyService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "required", "reminder_days", "expiry_days", "ordered", "roles")
		in := doorledger.PolicyInput{Roles: c.Request().Form["roles"], Ordered: f.Value("ordered") == "1", ReminderDays: f.Value("reminder_days")}
		v := doorledger.Validation{}
		if in.Required, err = strconv.Atoi(strings.TrimSpace(f.Value("required"))); err != nil {
			v.Add("required", "Write a number, e.g. 2.")
		}
		if in.ExpiryDays, err = strconv.Atoi(strings.TrimSpace(f.Value("expiry_days"))); err != nil {
			v.Add("expiry_days", "Write a number of days, e.g. 14.")
		}
		err = v.Err()
		if err == nil {
			var p *doorledger.ConsentPolicy
			if p, err = policies.SetConsentPolicy(c.Request().Context(), id, in); err == nil {
				return s.redirect(c, pathf("/buildings/%d/policy", id), "Consent policy saved: "+p.Describe()+"; "+p.DescribeReminders()+". It applies to requests made from now on.")
			}
		}
		if !formError(&f, err) {
			return err
		}
		pv, verr := s.policyView(c, buildings, policies, id, f)
		if verr != nil {
			return verr
		}
		return render(c, formStatus(err), views.PolicyPage(s.page(c, "Consent policy", "buildings"), pv))
	}
}

// handleConsentResend sends an expired request again as a new one (its
// installer, or the building's managers).
func (s *Server) handleConsentResend(consents doorledger.ConsentService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "consent")
		if err != nil {
			return err
		}
		again, err := consents.ResendRequest(c.Request().Context(), id)
		if doorledger.ErrorCode(err) == doorledger.ECONFLICT || doorledger.ErrorCode(err) == doorledger.EINVALID {
			s.flash(c, "error", doorledger.ErrorMessage(err)+" "+strings.Join(fieldMessages(err), " "))
			return c.Redirect(http.StatusSeeOther, pathf("/consents/%d", id))
		} else if err != nil {
			return err
		}
		return s.redirect(c, pathf("/consents/%d", again.ID), "Sent again as consent #"+itoa(again.ID)+": each signer gets a new link.")
	}
}

func fieldMessages(err error) []string {
	var out []string
	for _, m := range doorledger.ErrorFields(err) {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
