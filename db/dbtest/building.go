package dbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

var buildingTests = []test{
	{"PolicySetJournal", testPolicySetJournal},
	{"BuildingAccess", testBuildingAccess},
	{"RosterAndGrants", testRosterAndGrants},
	{"InvitationNewInstaller", testInvitationNewInstaller},
	{"InvitationExistingInstaller", testInvitationExistingInstaller},
	{"InvitationWithdrawnOrExpired", testInvitationWithdrawnOrExpired},
}

// wantCode fails unless err has the code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := doorledger.ErrorCode(err); got != code {
		t.Errorf("%s: err = %v, want %s", what, err, code)
	}
}

// Who sees and changes which building: admins all, others their grants;
// managers change theirs, boards and installers only look; the journal of
// a building is for its managers and board, not its installers.
func testBuildingAccess(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	board, err := w.Users.CreateUser(sys(), doorledger.NewUser{Email: "board@example.com", Name: "Board", Role: doorledger.RoleBoard, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Buildings.GrantAccess(sys(), w.A.ID, board.ID); err != nil {
		t.Fatal(err)
	}
	names := func(ctx context.Context) string {
		t.Helper()
		list, err := w.Buildings.FindBuildings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, b := range list {
			s = append(s, b.Name)
		}
		return strings.Join(s, ",")
	}
	if got := names(sys()); got != "Elm Court,Harbor View" {
		t.Errorf("the system sees %q, want every building by name", got)
	}
	if got := names(as(w.InstB)); got != "Elm Court" {
		t.Errorf("an installer of B sees %q", got)
	}
	_, err = w.Buildings.FindBuildings(context.Background())
	wantCode(t, "anonymous FindBuildings", err, doorledger.EUNAUTHORIZED)
	_, err = w.Buildings.FindBuildingByID(as(w.InstB), w.A.ID)
	wantCode(t, "installer of B reads A", err, doorledger.ENOTFOUND)
	b, err := w.Buildings.FindBuildingByID(as(w.Inst), w.A.ID)
	if err != nil || len(b.Signers) != 1 || b.Signers[0].Email != "zoe@example.com" || b.Timezone != "America/New_York" || b.CreatedAt.IsZero() {
		t.Fatalf("building A with its roster: %+v %v", b, err)
	}
	in := doorledger.BuildingInput{Name: "Harbor View Towers", Address: "1 Harbor St", Timezone: "America/Chicago", ConsentMonths: 24}
	_, err = w.Buildings.UpdateBuilding(as(board), w.A.ID, in)
	wantCode(t, "board updates", err, doorledger.EFORBIDDEN)
	_, err = w.Buildings.UpdateBuilding(as(w.Inst), w.A.ID, in)
	wantCode(t, "installer updates", err, doorledger.EFORBIDDEN)
	_, err = w.Buildings.UpdateBuilding(as(w.Manager), w.B.ID, in)
	wantCode(t, "manager of A updates B", err, doorledger.ENOTFOUND)
	_, err = w.Buildings.CreateBuilding(as(w.Manager), in)
	wantCode(t, "manager creates a building", err, doorledger.EFORBIDDEN)
	up, err := w.Buildings.UpdateBuilding(as(w.Manager), w.A.ID, in)
	if err != nil || up.Name != in.Name || up.Timezone != "America/Chicago" || up.ConsentMonths != 24 || len(up.Signers) != 1 {
		t.Fatalf("manager updates A: %+v %v", up, err)
	}
	_, err = w.Audit.FindAuditEntries(as(w.Inst), doorledger.AuditFilter{BuildingID: w.A.ID})
	wantCode(t, "installer reads A's journal", err, doorledger.ENOTFOUND)
	_, err = w.Audit.FindAuditEntries(as(w.Manager), doorledger.AuditFilter{})
	wantCode(t, "manager reads the whole journal", err, doorledger.EFORBIDDEN)
	entries, err := w.Audit.FindAuditEntries(as(board), doorledger.AuditFilter{BuildingID: w.A.ID})
	if err != nil || len(entries) == 0 {
		t.Fatalf("board reads A's journal: %v", err)
	}
	if e := entries[0]; e.Action != "building.update" || e.Actor != "manager@example.com" || e.BuildingID != w.A.ID || !strings.Contains(e.Detail, "Harbor View Towers") || e.At.IsZero() {
		t.Errorf("newest entry of A: %+v", e)
	}
	for _, e := range entries {
		if e.BuildingID != w.A.ID {
			t.Errorf("A's journal holds an entry of building %d", e.BuildingID)
		}
	}
}

// The roster holds one active entry per address; a removed signer is gone
// from it and may be added again. Grants are given once and taken back.
func testRosterAndGrants(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	mgr := as(w.Manager)
	in := doorledger.SignerInput{Name: "Ann Lee", Title: "Owner", Email: "ann@example.com"}
	ann, err := w.Buildings.AddSigner(mgr, w.A.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Buildings.AddSigner(mgr, w.A.ID, in)
	if doorledger.ErrorCode(err) != doorledger.ECONFLICT || doorledger.ErrorFields(err)["signer_email"] == "" {
		t.Errorf("the same address twice: %v, want a conflict on signer_email", err)
	}
	if _, err := w.Buildings.AddSigner(as(w.Inst), w.A.ID, in); doorledger.ErrorCode(err) != doorledger.EFORBIDDEN {
		t.Errorf("installer adds a signer: %v", err)
	}
	if _, err := w.Buildings.AddSigner(mgr, w.B.ID, in); doorledger.ErrorCode(err) != doorledger.ENOTFOUND {
		t.Errorf("manager of A adds to B: %v", err)
	}
	if err := w.Buildings.RemoveSigner(mgr, w.A.ID, ann.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "remove twice", w.Buildings.RemoveSigner(mgr, w.A.ID, ann.ID), doorledger.ENOTFOUND)
	b, _ := w.Buildings.FindBuildingByID(mgr, w.A.ID)
	if len(b.Signers) != 1 {
		t.Errorf("roster after removal: %d signers, want 1", len(b.Signers))
	}
	again, err := w.Buildings.AddSigner(mgr, w.A.ID, in)
	if err != nil || again.ID == ann.ID || !again.Active {
		t.Fatalf("added again after removal: %+v %v", again, err)
	}
	wantCode(t, "grant twice", w.Buildings.GrantAccess(sys(), w.A.ID, w.Inst.ID), doorledger.ECONFLICT)
	wantCode(t, "manager grants", w.Buildings.GrantAccess(mgr, w.A.ID, w.InstB.ID), doorledger.EFORBIDDEN)
	wantCode(t, "grant to nobody", w.Buildings.GrantAccess(sys(), w.A.ID, 9999), doorledger.ENOTFOUND)
	wantCode(t, "grant on no building", w.Buildings.GrantAccess(sys(), 9999, w.Inst.ID), doorledger.ENOTFOUND)
	grants, err := w.Buildings.FindGrants(mgr, w.A.ID)
	if err != nil || len(grants) != 3 {
		t.Fatalf("grants of A: %d %v, want manager and two installers", len(grants), err)
	}
	if g := grants[0]; g.User.Role != doorledger.RoleInstaller || g.CreatedAt.IsZero() || g.BuildingID != w.A.ID {
		t.Errorf("first grant (by role, then name): %+v %+v", g, g.User)
	}
	if err := w.Buildings.RevokeAccess(sys(), w.A.ID, w.Inst.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "revoke twice", w.Buildings.RevokeAccess(sys(), w.A.ID, w.Inst.ID), doorledger.ENOTFOUND)
	_, err = w.Buildings.FindBuildingByID(as(w.Inst), w.A.ID)
	wantCode(t, "revoked installer reads A", err, doorledger.ENOTFOUND)
}

// A new installer follows the mailed link once: it shows the building, sets
// their password, makes their account with a grant; the link then no
// longer works.
func testInvitationNewInstaller(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	mgr := as(w.Manager)
	_, err := w.Invitations.Invite(mgr, w.A.ID, "Bad address", "", "")
	if f := doorledger.ErrorFields(err); doorledger.ErrorCode(err) != doorledger.EINVALID || f["invite_email"] == "" || f["invite_name"] == "" || f["invite_company"] == "" {
		t.Errorf("invite with nothing right: %v", err)
	}
	_, err = w.Invitations.Invite(mgr, w.A.ID, "manager@example.com", "M", "FastKey")
	if doorledger.ErrorFields(err)["invite_email"] == "" {
		t.Errorf("invite a manager's address: %v", err)
	}
	_, err = w.Invitations.Invite(as(w.Inst), w.A.ID, "new@example.com", "New", "FastKey")
	wantCode(t, "installer invites", err, doorledger.EFORBIDDEN)
	inv, err := w.Invitations.Invite(mgr, w.A.ID, " New@Example.com ", "Nia New", "FastKey")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Email != "new@example.com" || inv.InvitedBy != w.Manager.ID || !inv.ExpiresAt.Equal(inv.CreatedAt.Add(doorledger.InvitationTTL)) || !inv.AcceptedAt.IsZero() {
		t.Errorf("invitation: %+v", inv)
	}
	token := w.LastLink(t, "new@example.com", "/invite/")
	got, b, exists, err := w.Invitations.OpenInvitation(context.Background(), token)
	if err != nil || got.ID != inv.ID || b.ID != w.A.ID || exists {
		t.Fatalf("open: %+v %+v %v %v", got, b, exists, err)
	}
	_, err = w.Invitations.AcceptInvitation(context.Background(), token, "short")
	wantCode(t, "accept with a short password", err, doorledger.EINVALID)
	u, err := w.Invitations.AcceptInvitation(context.Background(), token, "correct horse battery")
	if err != nil || u.Role != doorledger.RoleInstaller || u.Email != "new@example.com" || u.Company != "FastKey" {
		t.Fatalf("accept: %+v %v", u, err)
	}
	if _, err := w.Buildings.FindBuildingByID(as(u), w.A.ID); err != nil {
		t.Errorf("the new installer reads A: %v", err)
	}
	if _, err := w.Users.Authenticate(context.Background(), "new@example.com", "correct horse battery", "10.0.0.9"); err != nil {
		t.Errorf("the new installer signs in: %v", err)
	}
	_, err = w.Invitations.AcceptInvitation(context.Background(), token, "correct horse battery")
	wantCode(t, "accept twice", err, doorledger.ENOTFOUND)
	_, _, _, err = w.Invitations.OpenInvitation(context.Background(), token)
	wantCode(t, "open after accepting", err, doorledger.ENOTFOUND)
	list, err := w.Invitations.FindInvitations(mgr, w.A.ID)
	if err != nil || len(list) != 1 || list[0].AcceptedAt.IsZero() {
		t.Fatalf("invitations of A: %+v %v", list, err)
	}
	entries, _ := w.Audit.FindAuditEntries(sys(), doorledger.AuditFilter{BuildingID: w.A.ID})
	if e := entries[0]; e.Action != "invitation.accept" || e.Actor != "new@example.com" || e.ObjectID != inv.ID {
		t.Errorf("newest entry: %+v", e)
	}
}

// An installer with an account accepts with their own password, and gets
// the grant; a wrong password is refused and the link still works.
func testInvitationExistingInstaller(t *testing.T, newServices NewServices) {
	w := NewConsentWorld(t, newServices(t))
	if _, err := w.Invitations.Invite(as(w.Manager), w.A.ID, w.InstB.Email, "Inst B", "FastKey"); err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, w.InstB.Email, "/invite/")
	if _, _, exists, err := w.Invitations.OpenInvitation(context.Background(), token); err != nil || !exists {
		t.Fatalf("open: account exists %v, %v", exists, err)
	}
	_, err := w.Invitations.AcceptInvitation(context.Background(), token, "not my password")
	if doorledger.ErrorFields(err)["password"] == "" {
		t.Errorf("accept with a wrong password: %v", err)
	}
	u, err := w.Invitations.AcceptInvitation(context.Background(), token, "correct horse battery")
	if err != nil || u.ID != w.InstB.ID {
		t.Fatalf("accept: %+v %v", u, err)
	}
	if _, err := w.Buildings.FindBuildingByID(as(w.InstB), w.A.ID); err != nil {
		t.Errorf("installer of B now reads A: %v", err)
	}
}

// A withdrawn invitation's link does not work, nor an expired one's.
func testInvitationWithdrawnOrExpired(t *testing.T, newServices NewServices) {
	s := newServices(t)
	w := NewConsentWorld(t, s)
	mgr := as(w.Manager)
	inv, err := w.Invitations.Invite(mgr, w.A.ID, "one@example.com", "One", "FastKey")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "withdraw from B", w.Invitations.WithdrawInvitation(as(w.Manager), w.B.ID, inv.ID), doorledger.ENOTFOUND)
	if err := w.Invitations.WithdrawInvitation(mgr, w.A.ID, inv.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "withdraw twice", w.Invitations.WithdrawInvitation(mgr, w.A.ID, inv.ID), doorledger.ENOTFOUND)
	_, _, _, err = w.Invitations.OpenInvitation(context.Background(), w.LastLink(t, "one@example.com", "/invite/"))
	wantCode(t, "open withdrawn", err, doorledger.ENOTFOUND)
	if _, err := w.Invitations.Invite(mgr, w.A.ID, "two@example.com", "Two", "FastKey"); err != nil {
		t.Fatal(err)
	}
	token := w.LastLink(t, "two@example.com", "/invite/")
	*s.Now = s.Now.Add(doorledger.InvitationTTL + time.Second)
	_, err = w.Invitations.AcceptInvitation(context.Background(), token, "correct horse battery")
	wantCode(t, "accept expired", err, doorledger.ENOTFOUND)
}

// TestPolicySetJournal: the journal entry of a new consent policy, word for
// word: its numbers, and the policy before and after in words.
func testPolicySetJournal(t *testing.T, newServices NewServices) {
	w := NewPolicyWorld(t, NewConsentWorld(t, newServices(t)))
	before, err := w.Policies.FindConsentPolicy(as(w.Manager), w.A.ID)
	if err != nil {
		t.Fatal(err)
	}
	p := w.SetPolicy(t, doorledger.PolicyInput{Required: 2, Ordered: true, ReminderDays: "5, 2", ExpiryDays: 9})
	text := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	// No roles asked for: the entry records the policy as set, roles null.
	want := fmt.Sprintf(`{"after":%s,"before":%s,"expiry_days":9,"ordered":true,"reminder_days":[2,5],"required":2,"roles":null}`,
		text(p.Describe()+"; "+p.DescribeReminders()), text(before.Describe()+"; "+before.DescribeReminders()))
	e := w.JournalEntry(t, w.A.ID, "consent_policy.set")
	if e.Detail != want || e.ObjectType != "consent_policy" || e.ObjectID != p.ID {
		t.Errorf("journal entry %s %d %s, want %s", e.ObjectType, e.ObjectID, e.Detail, want)
	}
}
