package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/views"
	"github.com/labstack/echo/v4"
)

func (s *Server) handleFoundDevice(p buildingPage) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		f := formOf(c, "vendor", "model", "serial", "location", "opens")
		d, err := p.devices.RecordFoundDevice(c.Request().Context(), id, doorledger.DeviceDetails{
			Vendor: f.Value("vendor"), Model: f.Value("model"), Serial: f.Value("serial"), Location: f.Value("location"), Opens: f.Value("opens")})
		if err != nil {
			if !formError(&f, err) {
				return err
			}
			return s.rerenderBuilding(c, p, id, err, func(v *views.BuildingView) { v.FoundForm = f })
		}
		return s.redirect(c, pathf("/devices/%d", d.ID), "Device recorded as unconsented and kept disabled. The building's managers have been alerted.")
	}
}

// deviceView loads the device page's content.
func (s *Server) deviceView(c echo.Context, devices doorledger.DeviceService, buildings doorledger.BuildingService, unlocks doorledger.UnlockService) (views.DeviceView, error) {
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
	s.markBroker(d)
	v := views.DeviceView{Device: d, Building: b, Commands: cmds, Now: s.now(), Timeout: s.cfg.CommandTimeout, BrokerDown: s.brokerDown(),
		CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx))}
	if v.Unlocks, err = s.unlockSummary(ctx, unlocks, b, d.ID, []*doorledger.Device{d}); err != nil {
		return views.DeviceView{}, err
	}
	return v, nil
}

func (s *Server) handleDevice(devices doorledger.DeviceService, buildings doorledger.BuildingService, unlocks doorledger.UnlockService) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := s.deviceView(c, devices, buildings, unlocks)
		if err != nil {
			return err
		}
		v.Secret = s.takeSecret(c, v.Device.ID)
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
			if doorledger.ErrorCode(err) == doorledger.ECONFLICT && c.Request().Header.Get("HX-Request") == "" {
				s.flash(c, "error", doorledger.ErrorMessage(err))
				return c.Redirect(http.StatusSeeOther, pathf("/devices/%d", id))
			}
			return err
		}
		if c.Request().Header.Get("HX-Request") != "" {
			// htmx swaps only the buttons; the state beside them is the
			// stream's, which the commit's hook has woken ("pending").
			d, err := devices.FindDeviceByID(c.Request().Context(), id)
			if err != nil {
				return err
			}
			return render(c, http.StatusOK, views.DeviceActions(s.page(c, "", "buildings"), views.DeviceView{Device: d, CanManage: true}))
		}
		msg := "Revoked: the device is told to disable. This page shows when it confirms."
		if state == doorledger.StateEnabled {
			msg = "Enabled: the device is told to enable."
		}
		return s.redirect(c, pathf("/devices/%d", id), msg)
	}
}

func (s *Server) handleCredential(devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "device")
		if err != nil {
			return err
		}
		secret, err := devices.IssueCredential(c.Request().Context(), id)
		if err != nil {
			return err
		}
		// Post-redirect-get: a reload of the page must not post again (and
		// rotate the secret unseen). The secret waits in the session cookie,
		// encrypted, for the next GET of the device page, which shows it once.
		if err := s.holdSecret(c, id, secret); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, pathf("/devices/%d", id))
	}
}

// secretKey is the session value that holds a device's new secret until
// its page shows it.
func secretKey(deviceID int64) string { return "device-secret:" + strconv.FormatInt(deviceID, 10) }

// holdSecret keeps a device's new secret in this browser's session for the
// device page to show once. It is bound to the signed-in session: another
// account signing in on the same browser never sees it.
func (s *Server) holdSecret(c echo.Context, deviceID int64, secret string) error {
	sid, _ := c.Get("sid").(string)
	sess, _ := s.sessions.Get(c.Request(), s.sessionCookie)
	sess.Values[secretKey(deviceID)] = sid + "\x00" + secret
	return sess.Save(c.Request(), c.Response())
}

// takeSecret returns the secret held for the device's page, and forgets it.
func (s *Server) takeSecret(c echo.Context, deviceID int64) string {
	sess, err := s.sessions.Get(c.Request(), s.sessionCookie)
	if err != nil {
		return ""
	}
	held, ok := sess.Values[secretKey(deviceID)].(string)
	if !ok {
		return ""
	}
	delete(sess.Values, secretKey(deviceID))
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return ""
	}
	sid, _ := c.Get("sid").(string)
	owner, secret, _ := strings.Cut(held, "\x00")
	if sid == "" || owner != sid {
		return ""
	}
	return secret
}

// deviceLive renders the device's live state for its stream.
func (s *Server) handleDeviceEvents(devices doorledger.DeviceService, buildings doorledger.BuildingService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "device")
		if err != nil {
			return err
		}
		d, err := devices.FindDeviceByID(c.Request().Context(), id)
		if err != nil {
			return err
		}
		loc := buildingLocation(c, buildings, d.BuildingID)
		return s.stream(c, users, "state", []string{DeviceKey(id)}, func(ctx context.Context) (templ.Component, bool, error) {
			d, err := devices.FindDeviceByID(ctx, id)
			if err != nil {
				return nil, true, err
			}
			// The command table too, out of band: after a revoke the whole
			// page is current, not only the state.
			cmds, err := devices.FindCommands(ctx, doorledger.CommandFilter{DeviceID: id, Limit: 100})
			if err != nil {
				return nil, true, err
			}
			s.markBroker(d)
			return views.DeviceLive(d, cmds, loc, s.now(), s.cfg.CommandTimeout, s.brokerDown(), true), false, nil
		})
	}
}

func buildingLocation(c echo.Context, buildings doorledger.BuildingService, id int64) *time.Location {
	if b, err := buildings.FindBuildingByID(c.Request().Context(), id); err == nil {
		return b.Location()
	}
	return time.UTC
}

// progress loads the devices a lockdown or revoke-all covers, judged at the
// portal's clock.
func (s *Server) progress(ctx context.Context, devices doorledger.DeviceService, f doorledger.DeviceFilter) (views.ProgressView, error) {
	list, err := devices.FindDevices(ctx, f)
	if err != nil {
		return views.ProgressView{}, err
	}
	var live []*doorledger.Device
	for _, d := range list {
		if !d.Retired {
			live = append(live, d)
		}
	}
	s.markBroker(live...)
	return views.ProgressView{Devices: live, Now: s.now(), Timeout: s.cfg.CommandTimeout}, nil
}

func (s *Server) handleLockdownPage(buildings doorledger.BuildingService, devices doorledger.DeviceService) echo.HandlerFunc {
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
		v := views.LockdownView{Building: b, Started: c.QueryParam("started") != ""}
		if v.Progress, err = s.progress(ctx, devices, doorledger.DeviceFilter{BuildingID: id}); err != nil {
			return err
		}
		for _, d := range v.Progress.Devices {
			if d.DesiredState == doorledger.StateEnabled {
				v.Enabled++
			}
		}
		return render(c, http.StatusOK, views.LockdownPage(s.page(c, "Disable all devices", "buildings"), v))
	}
}

func (s *Server) handleLockdown(devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		reason := "building lockdown"
		if r := strings.TrimSpace(c.FormValue("reason")); r != "" {
			reason += ": " + r
		}
		cmds, err := devices.DisableDevices(c.Request().Context(), doorledger.DeviceFilter{BuildingID: id}, reason)
		if err != nil && doorledger.ErrorCode(err) != doorledger.EINVALID {
			return err
		}
		return s.redirect(c, pathf("/buildings/%d/lockdown?started=1", id), fmt.Sprintf("%d devices told to disable.", len(cmds)))
	}
}

func (s *Server) handleLockdownEvents(buildings doorledger.BuildingService, devices doorledger.DeviceService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if _, err := buildings.FindBuildingByID(c.Request().Context(), id); err != nil {
			return err
		}
		return s.streamEvery(c, users, "progress", []string{DevicesKey}, listStreamGap, func(ctx context.Context) (templ.Component, bool, error) {
			v, err := s.progress(ctx, devices, doorledger.DeviceFilter{BuildingID: id})
			return views.Progress(v), false, err
		})
	}
}

// devicesFilter reads the vendor and installer filter of the devices index.
func devicesFilter(c echo.Context, get func(string) string) (doorledger.DeviceFilter, error) {
	f := doorledger.DeviceFilter{Vendor: strings.TrimSpace(get("vendor"))}
	if s := get("installer"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			return f, doorledger.Errorf(doorledger.EINVALID, "Choose an installer from the list.")
		}
		f.InstallerID = id
	}
	return f, nil
}

func (s *Server) handleDevicesIndex(devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		f, err := devicesFilter(c, c.QueryParam)
		if err != nil {
			return err
		}
		all, err := devices.FindDevices(ctx, doorledger.DeviceFilter{})
		if err != nil {
			return err
		}
		v := views.DevicesIndexView{Vendor: f.Vendor, Installer: f.InstallerID, Installers: map[int64]string{}, Now: s.now(), Timeout: s.cfg.CommandTimeout,
			Started: c.QueryParam("started") != "", CanManage: doorledger.CanManage(doorledger.UserFromContext(ctx))}
		seen := map[string]bool{}
		for _, d := range all {
			if !seen[d.Vendor] {
				seen[d.Vendor] = true
				v.Vendors = append(v.Vendors, d.Vendor)
			}
			if d.InstallerID != 0 {
				v.Installers[d.InstallerID] = d.Installer + " (" + d.Company + ")"
			}
		}
		sort.Strings(v.Vendors)
		if v.Progress, err = s.progress(ctx, devices, f); err != nil {
			return err
		}
		v.Devices = v.Progress.Devices
		return render(c, http.StatusOK, views.DevicesIndexPage(s.page(c, "Devices", "devices"), v))
	}
}

func (s *Server) handleDisableMany(devices doorledger.DeviceService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := devicesFilter(c, c.FormValue)
		if err != nil {
			return err
		}
		if f.Vendor == "" && f.InstallerID == 0 {
			return doorledger.Errorf(doorledger.EINVALID, "Choose a vendor or an installer first.")
		}
		cmds, err := devices.DisableDevices(c.Request().Context(), f, "revoked by vendor/installer")
		if err != nil {
			return err
		}
		q := url.Values{"started": {"1"}}
		if f.Vendor != "" {
			q.Set("vendor", f.Vendor)
		}
		if f.InstallerID != 0 {
			q.Set("installer", strconv.FormatInt(f.InstallerID, 10))
		}
		return s.redirect(c, "/devices?"+q.Encode(), fmt.Sprintf("%d devices told to disable.", len(cmds)))
	}
}

func (s *Server) handleDevicesEvents(devices doorledger.DeviceService, users doorledger.UserService) echo.HandlerFunc {
	return func(c echo.Context) error {
		f, err := devicesFilter(c, c.QueryParam)
		if err != nil {
			return err
		}
		return s.streamEvery(c, users, "progress", []string{DevicesKey}, listStreamGap, func(ctx context.Context) (templ.Component, bool, error) {
			v, err := s.progress(ctx, devices, f)
			return views.Progress(v), false, err
		})
	}
}
