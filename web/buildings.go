package web

import (
	"net/http"
	"strconv"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

// pathID parses a numeric path parameter; a malformed id is simply not found.
func pathID(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, doorledger.Errorf(doorledger.ENOTFOUND, "There is no such page, or you do not have access to it.")
	}
	return id, nil
}

func (s *Server) handleBuildings(buildings doorledger.BuildingService, attention doorledger.AttentionService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		list, err := buildings.FindBuildings(ctx)
		if err != nil {
			return err
		}
		var counts map[int64]doorledger.AttentionCounts // what needs attention per row: not for installers
		if attention != nil && doorledger.UserFromContext(ctx).Role != doorledger.RoleInstaller {
			if counts, err = attention.AttentionCounts(ctx); err != nil {
				return err
			}
		}
		return render(c, http.StatusOK, views.BuildingsPage(s.page(c, "Buildings", "buildings"), list, counts))
	}
}

func (s *Server) handleBuildingNew(c echo.Context) error {
	return render(c, http.StatusOK, views.BuildingFormPage(s.page(c, "New building", "buildings"), 0, views.Form{}))
}

func buildingInput(c echo.Context) (doorledger.BuildingInput, views.Form) {
	f := formOf(c, "name", "address", "timezone")
	return doorledger.BuildingInput{Name: f.Value("name"), Address: f.Value("address"), Timezone: f.Value("timezone")}, f
}

func (s *Server) handleBuildingCreate(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, f := buildingInput(c)
		b, err := buildings.CreateBuilding(c.Request().Context(), in)
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.BuildingFormPage(s.page(c, "New building", "buildings"), 0, f))
		}
		return s.redirect(c, pathf("/buildings/%d", b.ID), "Building created. Add its authorized signers below.")
	}
}

// buildingPage holds the services the building page reads. The page and the
// forms on it (which show it again when they fail) take it as their argument,
// built once in routes.go; a form's handler acts through the same services.
// Papers and Residents may be nil (a server without them leaves their
// sections out).
type buildingPage struct {
	buildings   doorledger.BuildingService
	users       doorledger.UserService
	consents    doorledger.ConsentService
	devices     doorledger.DeviceService
	unlocks     doorledger.UnlockService
	papers      doorledger.PaperService
	residents   doorledger.ResidentService
	invitations doorledger.InvitationService
}

// buildingView loads what the building page shows for this user.
func (s *Server) buildingView(c echo.Context, p buildingPage, id int64) (views.BuildingView, error) {
	ctx := c.Request().Context()
	u := doorledger.UserFromContext(ctx)
	b, err := p.buildings.FindBuildingByID(ctx, id)
	if err != nil {
		return views.BuildingView{}, err
	}
	v := views.BuildingView{Building: b, CanManage: doorledger.CanManage(u), Now: s.now(), Timeout: s.cfg.CommandTimeout}
	if v.Consents, err = p.consents.FindConsents(ctx, doorledger.ConsentFilter{BuildingID: id}); err != nil {
		return v, err
	}
	if v.Devices, err = p.devices.FindDevices(ctx, doorledger.DeviceFilter{BuildingID: id}); err != nil {
		return v, err
	}
	s.markBroker(v.Devices...)
	if v.Unlocks, err = s.unlockSummary(ctx, p.unlocks, b, 0, v.Devices); err != nil {
		return v, err
	}
	if u.Role != doorledger.RoleInstaller && p.papers != nil {
		if v.PaperDisputes, err = p.papers.PaperDisputes(ctx, id); err != nil {
			return v, err
		}
	}
	if v.Unlocks != nil {
		v.Unlocks.CSRF, _ = c.Get(csrfKey).(string) // for the acknowledgement form beside each open anomaly
	}
	if v.CanManage && p.residents != nil {
		if v.Residents, err = s.residentsPanel(ctx, p.residents, id, v.Devices); err != nil {
			return v, err
		}
	}
	if v.CanManage {
		if v.Invitations, err = p.invitations.FindInvitations(ctx, id); err != nil {
			return v, err
		}
		if v.Grants, err = p.buildings.FindGrants(ctx, id); err != nil {
			return v, err
		}
		if v.Grants == nil {
			v.Grants = []*doorledger.Grant{}
		}
	}
	if u.IsAdmin() {
		all, err := p.users.FindUsers(ctx)
		if err != nil {
			return v, err
		}
		granted := map[int64]bool{}
		for _, g := range v.Grants {
			granted[g.User.ID] = true
		}
		for _, x := range all {
			if !granted[x.ID] && x.Role != doorledger.RoleAdmin && !x.Disabled {
				v.Users = append(v.Users, x)
			}
		}
	}
	return v, nil
}

// rerenderBuilding shows the building page again after a form on it failed,
// with the form's messages and input put back by set.
func (s *Server) rerenderBuilding(c echo.Context, p buildingPage, id int64, err error, set func(*views.BuildingView)) error {
	v, verr := s.buildingView(c, p, id)
	if verr != nil {
		return verr
	}
	set(&v)
	return render(c, formStatus(err), views.BuildingPage(s.page(c, v.Building.Name, "buildings"), v))
}

func (s *Server) handleBuilding(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		v, err := s.buildingView(c, p, id)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.BuildingPage(s.page(c, v.Building.Name, "buildings"), v))
	}
}

func (s *Server) handleBuildingEdit(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		b, err := buildings.FindBuildingByID(c.Request().Context(), id)
		if err != nil {
			return err
		}
		f := views.Form{Values: map[string]string{"name": b.Name, "address": b.Address, "timezone": b.Timezone}}
		return render(c, http.StatusOK, views.BuildingFormPage(s.page(c, "Edit "+b.Name, "buildings"), id, f))
	}
}

func (s *Server) handleBuildingUpdate(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		in, f := buildingInput(c)
		if _, err := buildings.UpdateBuilding(c.Request().Context(), id, in); err != nil {
			if !formError(&f, err) {
				return err
			}
			return render(c, formStatus(err), views.BuildingFormPage(s.page(c, "Edit building", "buildings"), id, f))
		}
		return s.redirect(c, pathf("/buildings/%d", id), "Building saved.")
	}
}

func (s *Server) handleSignerAdd(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "signer_name", "signer_title", "signer_email")
		in := doorledger.SignerInput{Name: f.Value("signer_name"), Title: f.Value("signer_title"), Email: f.Value("signer_email")}
		if _, err := p.buildings.AddSigner(c.Request().Context(), id, in); err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) { v.SignerForm = f })
		}
		return s.redirect(c, pathf("/buildings/%d#roster", id), "Signer added to the roster.")
	}
}

func (s *Server) handleSignerRemove(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		signer, err := pathID(c, "signer")
		if err != nil {
			return err
		}
		if err := buildings.RemoveSigner(c.Request().Context(), id, signer); err != nil {
			return err
		}
		return s.redirect(c, pathf("/buildings/%d#roster", id), "Signer removed from the roster.")
	}
}

func (s *Server) handleGrantAdd(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "user_id")
		uid, perr := strconv.ParseInt(f.Value("user_id"), 10, 64)
		if perr != nil {
			err = &doorledger.Error{Code: doorledger.EINVALID, Message: "Choose a user.", Fields: map[string]string{"user_id": "Choose a user."}}
		} else {
			err = p.buildings.GrantAccess(c.Request().Context(), id, uid)
		}
		if err != nil {
			if doorledger.ErrorCode(err) == doorledger.ENOTFOUND && perr == nil {
				if _, berr := p.buildings.FindBuildingByID(c.Request().Context(), id); berr != nil {
					return berr // the building itself is not there
				}
				err = &doorledger.Error{Code: doorledger.EINVALID, Message: "Choose a user.", Fields: map[string]string{"user_id": "That user does not exist."}}
			}
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) { v.GrantForm = f })
		}
		return s.redirect(c, pathf("/buildings/%d#access", id), "Access granted.")
	}
}

func (s *Server) handleGrantRemove(buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		uid, err := pathID(c, "user")
		if err != nil {
			return err
		}
		if err := buildings.RevokeAccess(c.Request().Context(), id, uid); err != nil {
			return err
		}
		return s.redirect(c, pathf("/buildings/%d#access", id), "Access removed.")
	}
}

func (s *Server) handleBuildingAudit(buildings doorledger.BuildingService, audit doorledger.AuditService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		b, err := buildings.FindBuildingByID(ctx, id)
		if err != nil {
			return err
		}
		entries, err := audit.FindAuditEntries(ctx, doorledger.AuditFilter{BuildingID: id})
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.AuditPage(s.page(c, "Audit journal", "buildings"), "Audit journal: "+b.Name, entries, nil))
	}
}

func (s *Server) handleAudit(audit doorledger.AuditService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		return s.renderAudit(c, audit, logs, nil)
	}
}

// renderAudit shows the admin's audit page with the signed log's panel.
func (s *Server) renderAudit(c echo.Context, audit doorledger.AuditService, logs doorledger.LogService, result *doorledger.LogVerification) error {
	ctx := c.Request().Context()
	entries, err := audit.FindAuditEntries(ctx, doorledger.AuditFilter{})
	if err != nil {
		return err
	}
	v := &views.LogView{Origin: logs.Origin(), VerifierKey: logs.VerifierKey(), Result: result}
	if v.Head, err = logs.Head(ctx, 0); err != nil && doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		return err
	}
	return render(c, http.StatusOK, views.AuditPage(s.page(c, "Audit log", "audit"), "Audit log", entries, v))
}

func (s *Server) handleAuditVerify(audit doorledger.AuditService, logs doorledger.LogService) echo.HandlerFunc {
	return func(c echo.Context) error {
		result, err := logs.Verify(c.Request().Context())
		if err != nil {
			return err
		}
		return s.renderAudit(c, audit, logs, result)
	}
}
