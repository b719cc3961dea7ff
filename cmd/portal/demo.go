package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/doorledger/doorledger/devicectl"

	"github.com/doorledger/doorledger"
)

// seedDemo creates a demo building with a roster of authorized signers, and a
// manager, a board member and an installer with access to it, once; it prints
// their sign-ins. A second start with -demo finds the building and does nothing.
func seedDemo(ctx context.Context, a *app, stdout io.Writer) error {
	const name = demoBuilding
	list, err := a.buildings.FindBuildings(ctx)
	if err != nil {
		return err
	}
	for _, b := range list {
		if b.Name == name {
			fmt.Fprintf(stdout, "Demo building already seeded (building %d).\n", b.ID)
			return nil
		}
	}
	b, err := a.buildings.CreateBuilding(ctx, doorledger.BuildingInput{Name: name, Address: "120 Harbor View Terrace, Brooklyn, NY 11201", Timezone: "America/New_York"})
	if err != nil {
		return err
	}
	for _, s := range []doorledger.SignerInput{
		{Name: "Zoë Nuñez", Title: "Board president", Email: "zoe.nunez@harborview.example"},
		{Name: "Łukasz Wróbel", Title: "Board treasurer", Email: "lukasz.wrobel@harborview.example"},
	} {
		if _, err := a.buildings.AddSigner(ctx, b.ID, s); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "Demo: seeded %q (building %d) with two authorized signers. Sign in as:\n", name, b.ID)
	var installer *doorledger.User
	for _, u := range []doorledger.NewUser{
		{Email: "manager@harborview.example", Name: "Maria Manager", Role: doorledger.RoleManager},
		{Email: "board@harborview.example", Name: "Bob Board", Role: doorledger.RoleBoard},
		{Email: "installer@fastkey.example", Name: "Ivan Installer", Role: doorledger.RoleInstaller, Company: "FastKey Installations"},
	} {
		u.Password = newPassword()
		created, err := a.users.CreateUser(ctx, u)
		if err != nil {
			return err
		}
		if err := a.buildings.GrantAccess(ctx, b.ID, created.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %-9s %-32s %s\n", u.Role, u.Email, u.Password)
		if created.Role == doorledger.RoleInstaller {
			installer = created
		}
	}
	b, err = a.buildings.FindBuildingByID(ctx, b.ID)
	if err != nil {
		return err
	}
	return seedDemoDevices(ctx, a, b, installer, stdout)
}

const demoBuilding = "Harbor View Co-op (demo)"

// seedDemoDevices gives the demo building three devices, once: one whose consent
// the board president signed (the seeder reads her signing link from the
// outbox, as she would from her mail), one awaiting her signature (its link is on
// the Outbox page), and one found in a panel with no consent at all.
func seedDemoDevices(ctx context.Context, a *app, b *doorledger.Building, installer *doorledger.User, stdout io.Writer) error {
	// The installer asks as themselves, not as the system.
	ictx := doorledger.NewContextWithUser(context.WithoutCancel(context.Background()), installer)
	president := b.Signers[0]
	for i, serial := range []string{"HV-KB2-0001", "HV-KB2-0002"} {
		if _, err := a.consents.RequestConsent(ictx, b.ID, doorledger.ConsentRequest{SignerID: president.ID, Device: doorledger.DeviceDetails{
			Vendor: "Acme Access", Model: "KeyBox 2", Serial: serial, Location: []string{"main lobby intercom panel", "garage door panel"}[i],
			Opens: "lobby door, for the vendor's couriers"}}); err != nil {
			return err
		}
	}
	msgs, err := a.outbox.PendingMessages(ctx, 100, 100)
	if err != nil {
		return err
	}
	link := regexp.MustCompile(`/sign/([A-Za-z0-9_-]+)`)
	for _, m := range msgs {
		if tok := link.FindStringSubmatch(m.Body); m.Kind == "signing_link" && tok != nil {
			sess, err := a.consents.OpenSigning(ctx, tok[1])
			if err != nil {
				return err
			}
			if _, err := a.consents.Sign(ctx, tok[1], doorledger.SignInput{TypedName: president.Name, AgreeESign: true,
				SignaturePNG: demoSignature(), TermsSHA256: doorledger.TermsSHA256(sess.Terms), IP: "127.0.0.1", UserAgent: "demo seeder"}); err != nil {
				return err
			}
			break
		}
	}
	mctx := doorledger.NewSystemContext(ctx, "demo")
	if _, err := a.devices.RecordFoundDevice(mctx, b.ID, doorledger.DeviceDetails{Vendor: "Unknown (black box)", Model: "unmarked",
		Serial: "NO-LABEL-1", Location: "rear entrance intercom panel"}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Demo: three devices (one consented, one awaiting the signer, one found without consent).")
	return nil
}

// demoSignature draws a signature-like stroke.
func demoSignature() []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 360, 120))
	for x := 20; x < 340; x++ {
		y := 60 + int(28*math.Sin(float64(x)/14)*math.Cos(float64(x)/53))
		for w := 0; w < 3; w++ {
			img.Set(x, y+w, color.NRGBA{26, 35, 126, 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

// startDemoDevices connects a simulated device for each device of the demo
// building, with a fresh credential each start, opening the door now and then.
func startDemoDevices(ctx context.Context, a *app, dc *deviceControl, stdout io.Writer) ([]*devicectl.SimDevice, error) {
	if dc.broker == nil || a.cfg.DemoDevices == 0 {
		return nil, nil
	}
	sctx := doorledger.NewSystemContext(ctx, "demo")
	list, err := a.buildings.FindBuildings(sctx)
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(a.cfg.DataDir, "demo-devices")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	var sims []*devicectl.SimDevice
	for _, b := range list {
		if b.Name != demoBuilding {
			continue
		}
		devices, err := a.devices.FindDevices(sctx, doorledger.DeviceFilter{BuildingID: b.ID})
		if err != nil {
			return nil, err
		}
		for i, d := range devices {
			if i >= a.cfg.DemoDevices {
				break
			}
			secret, err := a.devices.IssueCredential(sctx, d.ID)
			if err != nil {
				return nil, err
			}
			sim, err := devicectl.NewSimDevice(devicectl.SimConfig{BrokerURL: "mqtt://" + dc.broker.Addr(), DeviceID: d.ID, Secret: secret,
				StateDir: stateDir, UnlockEvery: 45 * time.Second, Logger: a.log.With("sim", d.ID)})
			if err != nil {
				return nil, err
			}
			if err := sim.Start(ctx); err != nil {
				return nil, err
			}
			sims = append(sims, sim)
		}
		fmt.Fprintf(stdout, "Demo: %d simulated devices connected to the embedded broker.\n", len(sims))
	}
	return sims, nil
}
