package doorledger

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ConsentPolicy is a building's rule for who must sign a consent before its
// device may be enabled: how many distinct people of the roster, which roles
// must be among them, and whether they sign in order. It also sets when
// pending requests are reminded and when they expire. A policy is recorded
// with each request made under it; changing the building's policy later
// changes no request already made and no signed consent.
type ConsentPolicy struct {
	ID         int64 // 0: the default, never set by a manager
	BuildingID int64
	// Required is how many distinct people must sign: different roster
	// entries with different registered addresses (AddressKey).
	Required int
	// Roles are roster titles that must be among the signers, one signer per
	// role (RoleMatches says when a title holds a role).
	Roles []string
	// Ordered: the named signers sign one after another in the request's
	// order; otherwise in any order.
	Ordered bool
	// ReminderDays: days after the request on which signers who have not
	// signed are reminded, ascending.
	ReminderDays []int
	// ExpiryDays: a request unsigned this many days after it was made expires.
	ExpiryDays int
	SetAt      time.Time
	SetBy      string
}

// Policy defaults: one signer, reminded on days 2 and 5, expiring after 14 days.
const (
	DefaultRequiredSigners = 1
	DefaultExpiryDays      = 14
	MaxRequiredSigners     = 20
	MaxExpiryDays          = 90
)

// DefaultReminderDays are the days after a request on which it is reminded
// unless the building sets others.
var DefaultReminderDays = []int{2, 5}

// DefaultPolicy is the policy of a building whose managers never set one.
func DefaultPolicy(buildingID int64) *ConsentPolicy {
	return &ConsentPolicy{BuildingID: buildingID, Required: DefaultRequiredSigners,
		ReminderDays: append([]int(nil), DefaultReminderDays...), ExpiryDays: DefaultExpiryDays}
}

// Expiry is how long a request made under p stays open.
func (p *ConsentPolicy) Expiry() time.Duration { return time.Duration(p.ExpiryDays) * 24 * time.Hour }

// Describe says the rule in one sentence, e.g. "2 of the roster's signers,
// including the President and the Treasurer, signing in order".
func (p *ConsentPolicy) Describe() string {
	s := "1 signer of the roster"
	if p.Required > 1 {
		s = fmt.Sprintf("%d different people of the roster", p.Required)
	}
	if len(p.Roles) > 0 {
		s += ", including " + JoinAnd(p.Roles)
	}
	if p.Ordered && p.Required > 1 {
		s += ", signing in the order of the request"
	} else if p.Required > 1 {
		s += ", in any order"
	}
	return s
}

// DescribeReminders says the reminder and expiry schedule in words.
func (p *ConsentPolicy) DescribeReminders() string {
	r := "no reminders"
	if len(p.ReminderDays) > 0 {
		days := make([]string, len(p.ReminderDays))
		for i, d := range p.ReminderDays {
			days[i] = strconv.Itoa(d)
		}
		r = "reminders on days " + JoinAnd(days)
	}
	return fmt.Sprintf("%s after the request; it expires after %d days", r, p.ExpiryDays)
}

// SetDetail is the journal detail of p set as the building's policy in
// place of before (the "consent_policy.set" entry): its numbers, and both
// policies in words.
func (p *ConsentPolicy) SetDetail(before *ConsentPolicy) map[string]any {
	return map[string]any{
		"required": p.Required, "roles": p.Roles, "ordered": p.Ordered, "reminder_days": p.ReminderDays, "expiry_days": p.ExpiryDays,
		"before": before.Describe() + "; " + before.DescribeReminders(), "after": p.Describe() + "; " + p.DescribeReminders()}
}

// JoinAnd joins words as "a", "a and b", "a, b and c".
func JoinAnd(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// PolicyInput is what the policy form sets.
type PolicyInput struct {
	Required     int
	Roles        []string
	Ordered      bool
	ReminderDays string // e.g. "2, 5"; empty for none
	ExpiryDays   int
}

// ParseReminderDays reads "2, 5" (commas or spaces) into ascending distinct days.
func ParseReminderDays(s string) ([]int, error) {
	var days []int
	seen := map[int]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		d, err := strconv.Atoi(f)
		if err != nil || d < 1 {
			return nil, fmt.Errorf("%q is not a number of days (1 or more)", f)
		}
		if !seen[d] {
			seen[d] = true
			days = append(days, d)
		}
	}
	sort.Ints(days)
	return days, nil
}

// Policy checks the input, alone and against the building's active roster,
// and returns the policy it sets. A policy the roster cannot satisfy is
// refused (EINVALID) with the reason beside its field.
func (in PolicyInput) Policy(buildingID int64, roster []*Signer) (*ConsentPolicy, error) {
	v := Validation{}
	p := &ConsentPolicy{BuildingID: buildingID, Required: in.Required, Ordered: in.Ordered, ExpiryDays: in.ExpiryDays}
	if p.ExpiryDays == 0 {
		p.ExpiryDays = DefaultExpiryDays
	}
	if p.Required < 1 || p.Required > MaxRequiredSigners {
		v.Add("required", fmt.Sprintf("Use a number from 1 to %d.", MaxRequiredSigners))
	}
	seen := map[string]bool{}
	for _, r := range in.Roles {
		r = strings.Join(strings.Fields(r), " ")
		if r == "" || seen[roleKey(r)] {
			continue
		}
		seen[roleKey(r)] = true
		p.Roles = append(p.Roles, r)
	}
	days, err := ParseReminderDays(in.ReminderDays)
	if err != nil {
		v.Add("reminder_days", "Write days after the request, e.g. 2, 5: "+err.Error()+".")
	}
	p.ReminderDays = days
	if p.ExpiryDays < 1 || p.ExpiryDays > MaxExpiryDays {
		v.Add("expiry_days", fmt.Sprintf("Use a number of days from 1 to %d.", MaxExpiryDays))
	} else if len(days) > 0 && days[len(days)-1] >= p.ExpiryDays {
		v.Add("reminder_days", fmt.Sprintf("Every reminder must come before the request expires (day %d).", p.ExpiryDays))
	}
	if v["required"] == "" && len(p.Roles) > p.Required {
		v.Add("required", fmt.Sprintf("%d roles are required (%s), so at least %d people must sign.", len(p.Roles), JoinAnd(p.Roles), len(p.Roles)))
	}
	if len(v) == 0 {
		if msg, field := p.Unsatisfiable(roster); msg != "" {
			v.Add(field, msg)
		}
	}
	return p, v.Err()
}

// Unsatisfiable says why the signers given (a roster, or a request's
// remaining signers) cannot satisfy p — too few distinct people, or a
// required role nobody (or nobody distinct) holds — and which field of the
// policy form it concerns; "" when they can.
func (p *ConsentPolicy) Unsatisfiable(signers []*Signer) (msg, field string) {
	people := DistinctPeople(signers)
	for _, role := range p.Roles {
		holders := 0
		for _, s := range signers {
			if RoleMatches(s.Title, role) {
				holders++
			}
		}
		if holders == 0 {
			return fmt.Sprintf("Nobody on the roster holds the title “%s”. Add them to the roster first, or choose another role.", role), "roles"
		}
	}
	if people < p.Required {
		return fmt.Sprintf("The roster has %d different %s (different registered addresses), fewer than the %d required. Add signers first, or require fewer.",
			people, plural(people, "person", "people"), p.Required), "required"
	}
	if len(p.Roles) > 0 && CoverRoles(p.Roles, signers) == nil {
		return fmt.Sprintf("The roles %s must be held by different people, and the roster's holders of them share a registered address.", JoinAnd(p.Roles)), "roles"
	}
	return "", ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// RoleMatches reports whether a roster title holds a required role. The rule
// is exact, so that a board's policy means what it says: the title and the
// role must be the same words, compared case-insensitively (Unicode simple
// folding) with runs of spaces treated as one. "Board president" does not
// hold "President"; "treasurer" holds "Treasurer". The policy form offers the
// titles on the roster as the roles to choose from.
func RoleMatches(title, role string) bool {
	return roleKey(title) == roleKey(role) && roleKey(role) != ""
}

func roleKey(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// AddressKey is the identity of a person behind a registered address: the
// address lower-cased, with a "+tag" in its local part dropped, since
// "zoe+board@example.com" and "zoe@example.com" reach the same mailbox. Two
// roster entries with the same key are one person: they cannot both sign one
// request, nor count twice towards a policy.
func AddressKey(email string) string {
	e := strings.ToLower(strings.TrimSpace(email))
	local, domain, ok := strings.Cut(e, "@")
	if !ok {
		return e
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local + "@" + domain
}

// DistinctPeople counts the different people (AddressKey) among signers.
func DistinctPeople(signers []*Signer) int {
	seen := map[string]bool{}
	for _, s := range signers {
		seen[AddressKey(s.Email)] = true
	}
	return len(seen)
}

// CoverRoles assigns each role a different person of signers holding it
// (a small matching, by backtracking), or returns nil when none exists. The
// result maps each role to its signer.
func CoverRoles(roles []string, signers []*Signer) map[string]*Signer {
	out := map[string]*Signer{}
	used := map[string]bool{}
	var try func(i int) bool
	try = func(i int) bool {
		if i == len(roles) {
			return true
		}
		for _, s := range signers {
			k := AddressKey(s.Email)
			if used[k] || !RoleMatches(s.Title, roles[i]) {
				continue
			}
			used[k], out[roles[i]] = true, s
			if try(i + 1) {
				return true
			}
			delete(used, k)
			delete(out, roles[i])
		}
		return false
	}
	if !try(0) {
		return nil
	}
	return out
}

// ProposeSigners is the portal's proposal for a request under p from the
// active roster: the holders of the required roles first, then the others,
// in roster order, until p.Required different people are named. Nil when
// the roster cannot satisfy p.
func ProposeSigners(p *ConsentPolicy, roster []*Signer) []*Signer {
	cover := CoverRoles(p.Roles, roster)
	if cover == nil && len(p.Roles) > 0 {
		return nil
	}
	var out []*Signer
	used := map[string]bool{}
	for _, r := range p.Roles {
		out = append(out, cover[r])
		used[AddressKey(cover[r].Email)] = true
	}
	for _, s := range roster {
		if len(out) >= p.Required {
			break
		}
		if k := AddressKey(s.Email); !used[k] {
			used[k] = true
			out = append(out, s)
		}
	}
	if len(out) < p.Required {
		return nil
	}
	return out
}

// CheckNamedSigners checks the signers an installer named for a request
// under p (field signer_id): each once, different people, enough of them,
// and the required roles among them.
func CheckNamedSigners(p *ConsentPolicy, named []*Signer) error {
	seen := map[string]*Signer{}
	for _, s := range named {
		k := AddressKey(s.Email)
		if other := seen[k]; other != nil {
			return signerFieldError(fmt.Sprintf("%s and %s share one registered address: one person cannot sign twice. Name someone else.", other.Name, s.Name))
		}
		seen[k] = s
	}
	if len(named) < p.Required {
		return signerFieldError(fmt.Sprintf("This building requires %d different people to sign: name at least %d.", p.Required, p.Required))
	}
	if len(p.Roles) > 0 && CoverRoles(p.Roles, named) == nil {
		return signerFieldError(fmt.Sprintf("This building requires %s among the signers: name them.", JoinAnd(p.Roles)))
	}
	return nil
}

func signerFieldError(msg string) error {
	return &Error{Code: EINVALID, Message: "Please correct the highlighted fields.", Fields: map[string]string{"signer_id": msg}}
}

// SignerState is where one signer named in a request stands.
type SignerState string

const (
	SignerSigned    SignerState = "signed"     // their signature is recorded
	SignerToSign    SignerState = "to_sign"    // asked; may sign now
	SignerWaiting   SignerState = "waiting"    // ordered signing: an earlier signer has not signed yet
	SignerRemoved   SignerState = "removed"    // taken off the roster before signing: dropped out
	SignerNotNeeded SignerState = "not_needed" // the policy was satisfied (or the request ended) without them
)

// RequestSigner is one signer a request names, with their signature once
// they signed.
type RequestSigner struct {
	Signer    Signer // the roster entry, as it is now
	Position  int    // 1-based, the order of signing when the policy is ordered
	Signature *ConsentSignature
	State     SignerState
}

// Need says what a request still needs under its policy.
type Need struct {
	More        int      // signatures still needed
	Roles       []string // required roles not yet among the signatures
	Satisfied   bool
	Satisfiable bool   // the signers still able to sign can satisfy the policy
	Why         string // when not satisfiable
}

// ComputeNeed works out, for a request under p with its named signers (their
// signatures set), what is still needed, and sets each signer's state.
func ComputeNeed(p *ConsentPolicy, signers []RequestSigner, open bool) Need {
	var signedPeople []*Signer
	var able []*Signer
	for i := range signers {
		rs := &signers[i]
		if rs.Signature != nil {
			s := rs.Signer
			signedPeople = append(signedPeople, &s)
		} else if rs.Signer.Active {
			s := rs.Signer
			able = append(able, &s)
		}
	}
	n := Need{More: max(0, p.Required-DistinctPeople(signedPeople))}
	for _, r := range p.Roles {
		held := false
		for _, s := range signedPeople {
			if RoleMatches(s.Title, r) {
				held = true
			}
		}
		if !held {
			n.Roles = append(n.Roles, r)
		}
	}
	n.Satisfied = n.More == 0 && len(n.Roles) == 0
	// Satisfiable: the signatures so far plus the signers still able can
	// meet the policy.
	all := append(append([]*Signer(nil), signedPeople...), able...)
	n.Satisfiable = n.Satisfied
	if !n.Satisfied {
		if msg, _ := p.Unsatisfiable(all); msg == "" {
			n.Satisfiable = true
		} else {
			n.Why = fmt.Sprintf("the signers still able to sign cannot satisfy the policy (%s)", p.Describe())
		}
	}
	// States: in order, the first unsigned active signer is the one whose
	// turn it is; the later ones wait.
	turnTaken := false
	for i := range signers {
		rs := &signers[i]
		switch {
		case rs.Signature != nil:
			rs.State = SignerSigned
		case !rs.Signer.Active:
			rs.State = SignerRemoved
		case n.Satisfied || !open:
			rs.State = SignerNotNeeded
		case p.Ordered && turnTaken:
			rs.State = SignerWaiting
		default:
			rs.State = SignerToSign
			turnTaken = true
		}
	}
	return n
}

// Describe says what is still needed, e.g. "1 more signature, including the
// Treasurer".
func (n Need) Describe() string {
	switch {
	case n.Satisfied:
		return "nothing: the policy is satisfied"
	case !n.Satisfiable:
		return "more than the signers still able to sign can give: " + n.Why
	}
	s := fmt.Sprintf("%d more %s", n.More, plural(n.More, "signature", "signatures"))
	if len(n.Roles) > 0 {
		s += ", including " + JoinAnd(n.Roles)
	}
	return s
}

// PolicyService reads and sets buildings' consent policies.
type PolicyService interface {
	// FindConsentPolicy returns the building's policy in force (the default
	// when none was set). Anyone who sees the building.
	FindConsentPolicy(ctx context.Context, buildingID int64) (*ConsentPolicy, error)
	// SetConsentPolicy records a new policy for the building (admins and its
	// managers), journaled. EINVALID with the reason beside the field when
	// the input is wrong or the active roster cannot satisfy it.
	SetConsentPolicy(ctx context.Context, buildingID int64, in PolicyInput) (*ConsentPolicy, error)
}
