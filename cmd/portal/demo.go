package main

import (
	"context"
	"fmt"
	"io"

	"github.com/doorledger/doorledger"
)

// seedDemo creates a demo building with a roster of authorized signers, and a
// manager, a board member and an installer with access to it, once; it prints
// their sign-ins. A second start with -demo finds the building and does nothing.
func seedDemo(ctx context.Context, a *app, stdout io.Writer) error {
	const name = "Harbor View Co-op (demo)"
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
	}
	return nil
}
