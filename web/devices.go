package web

import (
	"net/http"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

func (s *Server) handleFoundDevice(buildings doorledger.BuildingService, users doorledger.UserService, devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "vendor", "model", "serial", "location", "opens")
		d, err := devices.RecordFoundDevice(c.Request().Context(), id, doorledger.DeviceDetails{
			Vendor: f.Value("vendor"), Model: f.Value("model"), Serial: f.Value("serial"), Location: f.Value("location"), Opens: f.Value("opens")})
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			v, verr := s.buildingView(c, buildings, users, id)
			if verr != nil {
				return verr
			}
			v.FoundForm = f
			return render(c, formStatus(err), views.BuildingPage(s.page(c, v.Building.Name, "buildings"), v))
		}
		return s.redirect(c, pathf("/devices/%d", d.ID), "Device recorded as unconsented and kept disabled. The building's managers have been alerted.")
	}
}

// deviceView loads the device page's content.
func (s *Server) deviceView(c echo.Context, devices doorledger.DeviceService, buildings doorledger.BuildingService) (views.DeviceView, error) {
	id, err := pathID(c, "device")
	if err != nil {
		return views.DeviceView{}, err
	}
	ctx := c.Request().Context()
	d, err := devices.FindDeviceByID(ctx, id)
	if err != nil {
		return views.DeviceView{}, err
	}
	b, err := buildings.FindBuildingByID(ctx, d.BuildingID)
	if err != nil {
		return views.DeviceView{}, err
	}
	cmds, err := devices.FindCommands(ctx, doorledger.CommandFilter{DeviceID: id, Limit: 100})
	if err != nil {
		return views.DeviceView{}, err
	}
	return views.DeviceView{Device: d, Building: b, Commands: cmds, Now: time.Now(),
		CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx))}, nil
}

func (s *Server) handleDevice(devices doorledger.DeviceService, buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := s.deviceView(c, devices, buildings)
		if err != nil {
			return err
		}
		return render(c, http.StatusOK, views.DevicePage(s.page(c, v.Device.Vendor+" "+v.Device.Serial, "buildings"), v))
	}
}

func (s *Server) handleSetState(devices doorledger.DeviceService, state doorledger.DeviceState) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "device")
		if err != nil {
			return err
		}
		reason := "revoked by a manager"
		if state == doorledger.StateEnabled {
			reason = "enabled by a manager"
		}
		if _, err := devices.SetDesiredState(c.Request().Context(), id, state, reason); err != nil {
			if doorledger.ErrorCode(err) == doorledger.ECONFLICT {
				s.flash(c, "error", doorledger.ErrorMessage(err))
				return c.Redirect(http.StatusSeeOther, pathf("/devices/%d", id))
			}
			return err
		}
		msg := "Revoked: the device is told to disable. This page shows when it confirms."
		if state == doorledger.StateEnabled {
			msg = "Enabled: the device is told to enable."
		}
		return s.redirect(c, pathf("/devices/%d", id), msg)
	}
}

func (s *Server) handleCredential(devices doorledger.DeviceService, buildings doorledger.BuildingService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "device")
		if err != nil {
			return err
		}
		secret, err := devices.IssueCredential(c.Request().Context(), id)
		if err != nil {
			return err
		}
		// The secret is rendered in this response only, never stored or flashed.
		v, err := s.deviceView(c, devices, buildings)
		if err != nil {
			return err
		}
		v.Secret = secret
		return render(c, http.StatusOK, views.DevicePage(s.page(c, v.Device.Vendor+" "+v.Device.Serial, "buildings"), v))
	}
}
