package doorledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AuditSentence says what a journal entry records, for people: the
// sentence the audit pages and the audit report print beside who did it
// and when, as in "exported 1,508 unlock events, 1–30 Nov 2026, as CSV". It
// reads the entry's action, object and detail (the detail stays, as
// recorded, in the evidence bundle's audit.jsonl). Every action the
// services journal has a sentence (AuditActions); an action this version
// does not know reads "recorded <action>" with its facts, never a dump of
// its JSON.
func AuditSentence(e *AuditEntry) string {
	d := parseDetail(e.Detail)
	if f, ok := auditSentences[e.Action]; ok {
		return f(e, d)
	}
	s := "recorded " + e.Action
	if o := objectRef(e); o != "" {
		s += " on " + o
	}
	if facts := d.facts(); facts != "" {
		s += ": " + facts
	}
	return s
}

// AuditActions lists the actions AuditSentence has a sentence for, sorted.
func AuditActions() []string {
	out := make([]string, 0, len(auditSentences))
	for a := range auditSentences {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// signersRef names the signers a consent request asked: "signer #3", or
// "signers #3 and #5" for a request under a policy of several.
func signersRef(d detail) string {
	ids := d.ints("signers")
	if len(ids) == 0 {
		return "signer #" + d.text("signer")
	}
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = "#" + strconv.FormatInt(id, 10)
	}
	if len(refs) == 1 {
		return "signer " + refs[0]
	}
	return "signers " + JoinAnd(refs)
}

// auditSentences writes each action's sentence, by action.
var auditSentences = map[string]func(e *AuditEntry, d detail) string{
	// Accounts and sign-in.
	"user.create": func(e *AuditEntry, d detail) string {
		return "created the account of " + d.text("email") + roleSuffix(d.text("role"))
	},
	"user.update": func(e *AuditEntry, d detail) string {
		state := "active"
		if d.flag("disabled") {
			state = "disabled"
		}
		return fmt.Sprintf("changed the account of %s: role %s, %s", objectRef(e), d.text("role"), state)
	},
	"user.password": func(e *AuditEntry, d detail) string {
		if e.ObjectID == e.ActorID && e.ActorID != 0 {
			return "changed their password"
		}
		return "set a new password for " + objectRef(e)
	},
	"user.login":           func(*AuditEntry, detail) string { return "signed in" },
	"user.login_failed":    func(*AuditEntry, detail) string { return "failed to sign in: unknown account or wrong password" },
	"user.login_throttled": func(*AuditEntry, detail) string { return "was refused signing in: too many failed attempts" },
	"user.logout":          func(*AuditEntry, detail) string { return "signed out" },
	// Single sign-on (sso.go): the provider by its issuer URL.
	"user.login_sso": func(e *AuditEntry, d detail) string { return "signed in via " + ssoIssuer(d) },
	"user.login_sso_failed": func(e *AuditEntry, d detail) string {
		return "was refused signing in via " + ssoIssuer(d) + reasonSuffix(d.text("reason"))
	},
	"user.create_sso": func(e *AuditEntry, d detail) string {
		s := "was given an account" + roleSuffix(d.text("role")) + " at their first sign-in via " + ssoIssuer(d)
		if dom := d.text("domain"); dom != "" {
			s += ", by the domain " + dom + " allowed for it"
		}
		return s
	},
	"sso.domain_allow": func(e *AuditEntry, d detail) string {
		return "allowed sign-up by single sign-on for " + orWords(d.text("domain"), "a domain") + roleSuffix(d.text("role"))
	},
	"sso.domain_remove": func(e *AuditEntry, d detail) string {
		return "stopped sign-up by single sign-on for " + orWords(d.text("domain"), "a domain")
	},
	"user.logout_everywhere": func(e *AuditEntry, d detail) string {
		if e.ObjectID == e.ActorID && e.ActorID != 0 {
			return "signed out everywhere, ending every session"
		}
		return "ended every session of " + objectRef(e)
	},
	// Second factors (secondfactor.go): never the secret or the code.
	"user.2fa_enrolled": func(e *AuditEntry, d detail) string {
		return "set up a second factor: " + factorName(d.text("factor")) + nameSuffix(d.text("name"))
	},
	"user.2fa_used": func(e *AuditEntry, d detail) string {
		return "proved their second factor: " + factorName(d.text("factor")) + nameSuffix(d.text("name"))
	},
	"user.2fa_removed": func(e *AuditEntry, d detail) string {
		return "removed a second factor: " + factorName(d.text("factor")) + nameSuffix(d.text("name"))
	},
	"user.2fa_failed":    func(*AuditEntry, detail) string { return "failed to prove their second factor" },
	"user.2fa_throttled": func(*AuditEntry, detail) string { return "was refused a second-factor try: too many wrong codes" },
	"user.2fa_recovery": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("used a one-time recovery code instead of their second factor (%d left)", d.int("left"))
	},
	"user.2fa_recovery_codes": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("made %d new recovery codes, ending the old ones", d.int("count"))
	},
	"user.2fa_reset": func(e *AuditEntry, d detail) string {
		return "reset the second factor of " + objectRef(e) + ": authenticator app, passkeys and recovery codes removed"
	},
	"user.2fa_policy": func(e *AuditEntry, d detail) string {
		roles := d.text("roles")
		if roles == "" {
			return "required a second factor of no one"
		}
		var names []string
		for _, r := range strings.Split(roles, ",") {
			names = append(names, r+"s")
		}
		return "required a second factor of " + JoinAnd(names)
	},

	// Buildings, access, the signers' roster, invitations.
	"building.create": func(e *AuditEntry, d detail) string {
		return "created the building " + buildingFacts(d)
	},
	"building.update": func(e *AuditEntry, d detail) string {
		return "changed the building's details: " + buildingFacts(d)
	},
	"building.grant": func(e *AuditEntry, d detail) string {
		return "gave " + objectRef(e) + " access to the building" + roleSuffix(d.text("role"))
	},
	"building.revoke_access": func(e *AuditEntry, d detail) string {
		return "removed the building access of " + objectRef(e)
	},
	"building.unlock_settings": func(e *AuditEntry, d detail) string {
		return "changed the building's unlock rules: " + settingsChange(d.sub("old"), d.sub("new"))
	},
	"signer.add": func(e *AuditEntry, d detail) string {
		s := "added " + quote(d.text("Name", "name"))
		var about []string
		if t := d.text("Title", "title"); t != "" {
			about = append(about, t)
		}
		if m := d.text("Email", "email"); m != "" {
			about = append(about, m)
		}
		if len(about) > 0 {
			s += " (" + strings.Join(about, ", ") + ")"
		}
		return s + " to the roster of authorized signers as " + objectRef(e)
	},
	"signer.remove": func(e *AuditEntry, d detail) string {
		return "removed " + objectRef(e) + " from the roster of authorized signers"
	},
	"invitation.create": func(e *AuditEntry, d detail) string {
		s := "invited " + d.text("email") + " to submit consent requests as an installer"
		if c := d.text("company"); c != "" {
			s += " of " + quote(c)
		}
		return s + " (" + objectRef(e) + ")"
	},
	"invitation.withdraw": func(e *AuditEntry, d detail) string { return "withdrew " + objectRef(e) },
	"invitation.accept": func(e *AuditEntry, d detail) string {
		return "accepted " + objectRef(e) + " and created their installer account"
	},

	// Consents.
	"consent.request": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("requested %s from %s for the device with serial %s", objectRef(e), signersRef(d), d.text("serial"))
		switch m := d.text("mode"); m {
		case "in_person":
			s += ", to be signed in person with a code"
		case "link":
			s += ", by a signing link mailed to them"
		case "":
		default:
			s += ", by " + strings.ReplaceAll(m, "_", " ")
		}
		if r := d.int("renewal_of"); r > 0 {
			s += fmt.Sprintf(", renewing consent #%d", r)
		}
		return s
	},
	"consent.resend": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("sent consent #%d again as %s, with new signing links", d.int("resend_of"), objectRef(e))
	},
	"consent.expire": func(e *AuditEntry, d detail) string {
		s := "ended " + objectRef(e) + ": it waited for signatures past its expiry period"
		if n := d.text("still_needed"); n != "" {
			s += " (still needed: " + oneLine(n) + ")"
		}
		return s
	},
	"consent_policy.set": func(e *AuditEntry, d detail) string {
		return "changed the building's consent policy from " + quote(d.text("before")) + " to " + quote(d.text("after"))
	},
	"consent.code_sent": func(e *AuditEntry, d detail) string {
		return "mailed the signer a code to sign " + objectRef(e) + " in person"
	},
	"consent.sign": func(e *AuditEntry, d detail) string {
		s := "signed " + objectRef(e)
		if n := d.text("typed_name"); n != "" {
			s += ", typing the name " + quote(n)
		}
		if m := d.text("method"); m != "" {
			s += ", verified by " + verifiedBy(m)
		}
		if h := d.text("terms_sha256"); h != "" {
			s += "; terms SHA-256 " + shortHash(h)
		}
		return s
	},
	"consent.links_mailed": func(e *AuditEntry, d detail) string {
		return "asked for the withdraw and \u201cI did not sign this\u201d links of " + objectRef(e) + " again; they were mailed to the registered address"
	},
	// Paper forms.
	"paper_form.attach": func(e *AuditEntry, d detail) string {
		what := "photos of a signed paper form"
		if d.text("kind") == string(PaperPDF) {
			what = "a signed paper form (PDF, " + count(d.int("pages"), "page", "pages") + ")"
		}
		s := "attached " + what + " to " + objectRef(e)
		if d.flag("on_behalf") {
			s += " on a signer's behalf"
		}
		if w := d.text("date_written"); w != "" {
			s += ", dated " + w + " on the form"
		}
		return s + "; SHA-256 " + shortHash(d.text("sha256")) + "; each signer it names is asked to confirm it"
	},
	"paper_form.confirm": func(e *AuditEntry, d detail) string {
		return "confirmed signing the paper form of " + objectRef(e) + " (SHA-256 " + shortHash(d.text("paper_sha256")) + ") and signed electronically"
	},
	"paper_form.dispute": func(e *AuditEntry, d detail) string {
		s := "answered “I did not sign this form” to the paper form of " + objectRef(e) + reasonSuffix(d.text("reason"))
		if d.flag("request_ended") {
			s += "; the request is refused"
		}
		return s + "; the installer's submission is marked disputed" + devicesDisabled(d)
	},
	"consent.decline": func(e *AuditEntry, d detail) string {
		return "declined " + objectRef(e) + reasonSuffix(d.text("reason"))
	},
	"consent.withdrawn": func(e *AuditEntry, d detail) string {
		return "withdrew " + objectRef(e) + reasonSuffix(d.text("note")) + devicesDisabled(d)
	},
	"consent.disputed": func(e *AuditEntry, d detail) string {
		return "disputed " + objectRef(e) + ": “I did not sign this”" + reasonSuffix(d.text("note")) + devicesDisabled(d)
	},
	"consent.lapsed": func(e *AuditEntry, d detail) string {
		s := "ended " + objectRef(e) + ": its period ran out"
		if n := d.text("note"); n != "" {
			s += " (" + oneLine(n) + ")"
		}
		return s + devicesDisabled(d)
	},

	// Residents and the building's public notice.
	"notice.rotate": func(e *AuditEntry, d detail) string {
		return "replaced the address of the building's public device notice: the old address and its posters no longer work"
	},
	"notice.contact": func(e *AuditEntry, d detail) string {
		if c := d.text("contact"); c != "" {
			return "set the contact line of the building's public device notice to " + quote(c)
		}
		return "removed the contact line of the building's public device notice"
	},
	"resident.report": func(e *AuditEntry, d detail) string {
		s := "a resident reported a device the notice does not list (" + objectRef(e)
		switch {
		case d.flag("photo") && d.flag("contact_given"):
			s += ", with a photo and a way to reach them"
		case d.flag("photo"):
			s += ", with a photo"
		case d.flag("contact_given"):
			s += ", with a way to reach them"
		}
		return s + ")"
	},
	"resident.report_resolve": func(e *AuditEntry, d detail) string {
		return "resolved " + objectRef(e) + ": " + ReportOutcomeLabel(d.text("outcome"), d.int("device")) + reasonSuffix(d.text("note"))
	},
	"resident.notify": func(e *AuditEntry, d detail) string {
		n, changes := int(d.int("subscribers")), len(d.ints("entries"))
		return fmt.Sprintf("mailed %d %s of the building a notice of %d %s", n, plural(n, "subscribed resident", "subscribed residents"),
			changes, plural(changes, "change to its devices", "changes to its devices"))
	},

	// Devices and commands.
	"device.register": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("registered %s (serial %s), awaiting consent #%s", objectRef(e), d.text("serial"), d.text("consent"))
	},
	"device.found": func(e *AuditEntry, d detail) string {
		var facts []string
		if v := strings.TrimSpace(d.text("Vendor", "vendor") + " " + d.text("Model", "model")); v != "" {
			facts = append(facts, v)
		}
		if sn := d.text("Serial", "serial"); sn != "" {
			facts = append(facts, "serial "+sn)
		}
		if l := d.text("Location", "location"); l != "" {
			facts = append(facts, "at "+quote(l))
		}
		if o := d.text("Opens", "opens"); o != "" {
			facts = append(facts, "opens "+quote(o))
		}
		s := "registered " + objectRef(e) + ", found without consent"
		if len(facts) > 0 {
			s += " (" + strings.Join(facts, ", ") + ")"
		}
		return s + "; kept disabled"
	},
	"device.credential": func(e *AuditEntry, d detail) string {
		if d.flag("rotated") {
			return "issued a new secret for " + objectRef(e) + "; the previous one no longer works"
		}
		return "issued the first secret for " + objectRef(e)
	},
	"device.disconnect": func(e *AuditEntry, d detail) string {
		n := d.int("sessions")
		s := "ended " + count(n, "connection", "connections") + " of " + objectRef(e)
		if r := d.text("reason"); r != "" {
			s += " (" + r + ")"
		}
		return s
	},
	"device.enable":  deviceCommand("enable"),
	"device.disable": deviceCommand("disable"),
	"device.disable_many": func(e *AuditEntry, d detail) string {
		cmds := d.ints("commands")
		s := "told " + count(int64(len(cmds)), "device", "devices") + " of the building to disable at once"
		var scope []string
		if v := d.int("installer"); v > 0 {
			scope = append(scope, fmt.Sprintf("those of installer user #%d", v))
		}
		if v := d.text("vendor"); v != "" {
			scope = append(scope, "those of vendor "+quote(v))
		}
		if v := d.int("consent"); v > 0 {
			scope = append(scope, fmt.Sprintf("those under consent #%d", v))
		}
		if len(scope) > 0 {
			s += " (" + strings.Join(scope, ", ") + ")"
		}
		if len(cmds) > 0 {
			s += ", " + idList("command", cmds)
		}
		return s + reasonSuffix(d.text("reason"))
	},
	"device.bad_report": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("reported %s at version %s for %s: %s", d.text("state"), d.text("version"), objectRef(e), d.text("problem"))
		if v := d.text("desired_version"); v != "" {
			s += " (desired version " + v + ")"
		}
		if v := d.text("desired_state"); v != "" {
			s += " (told to be " + v + ")"
		}
		return s + "; not taken as a confirmation"
	},
	"device.unconsented": func(e *AuditEntry, d detail) string {
		s := objectRef(e)
		if id := d.int("unlock_event"); id > 0 {
			s += fmt.Sprintf(" opened the door without an active consent (unlock event #%d, the device's event %s)", id, quote(d.text("event_id")))
		} else {
			s += fmt.Sprintf(" reported itself %s (version %s) without an active consent", d.text("reported_state"), d.text("reported_version"))
		}
		if c := d.int("command"); c > 0 {
			s += fmt.Sprintf(": marked unconsented and told to disable (command #%d)", c)
		}
		return s
	},
	"device.heartbeat": func(e *AuditEntry, d detail) string {
		if sec := d.int("seconds"); sec > 0 {
			return fmt.Sprintf("set the heartbeat of %s to %s", objectRef(e), duration(time.Duration(sec)*time.Second))
		}
		return "turned off the silence watch of " + objectRef(e)
	},
	"device.offline": func(e *AuditEntry, d detail) string {
		s := objectRef(e) + " went silent: not heard from since " + timeText(d.text("since"))
		if sec := d.int("heartbeat_seconds"); sec > 0 {
			s += ", longer than its heartbeat of " + duration(time.Duration(sec)*time.Second)
		}
		return s
	},
	"device.vendor": func(e *AuditEntry, d detail) string {
		if d.int("vendor_integration") == 0 {
			return "moved " + objectRef(e) + " back to MQTT, off its vendor integration"
		}
		return "moved " + objectRef(e) + " under the vendor integration " + quote(d.text("name")) + ", reached by webhook"
	},
	"command.confirmed": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("confirmed %s: device #%s is %s at version %s", objectRef(e), d.text("device"), d.text("state"), d.text("version"))
		if ms, ok := d.num("latency_ms"); ok {
			s += ", " + duration(time.Duration(ms)*time.Millisecond) + " after it was requested"
		}
		return s
	},
	"command.not_confirmed": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("found %s (%s device #%s, version %s) not confirmed within %s; the building's managers were alerted",
			objectRef(e), stateVerb(d.text("state")), d.text("device"), d.text("version"), d.text("timeout"))
	},

	"command.refused": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("refused %s: device #%s, told to %s at version %s, reported that version still %s", objectRef(e), d.text("device"),
			stateVerb(d.text("desired_state")), d.text("version"), d.text("reported_state"))
		if ms, ok := d.num("after_ms"); ok {
			s += ", " + duration(time.Duration(ms)*time.Millisecond) + " after it was requested"
		}
		return s + "; the building's managers were alerted at once"
	},

	// Unlock events.
	"anomaly.acknowledge": func(e *AuditEntry, d detail) string {
		s := "acknowledged the anomalies of " + objectRef(e)
		if dev := d.int("device_id"); dev > 0 {
			s += fmt.Sprintf(" (device #%d's event %s)", dev, quote(d.text("event_id")))
		} else if ref := d.text("device_ref"); ref != "" {
			s += fmt.Sprintf(" (event %s of the unknown device %s)", quote(d.text("event_id")), quote(ref))
		}
		if kinds := d.strings("anomalies"); len(kinds) > 0 {
			for i, k := range kinds {
				kinds[i] = strings.ReplaceAll(k, "_", " ")
			}
			s += ": " + strings.Join(kinds, ", ")
		}
		return s + reasonSuffix(d.text("note"))
	},
	"unlocks.import": func(e *AuditEntry, d detail) string {
		s := "imported " + count(d.int("events"), "unlock event", "unlock events")
		if f := d.text("file"); f != "" {
			s += " from " + quote(f)
		}
		return s + fmt.Sprintf(" (%s new, %s already recorded, %s anomalous)",
			number(d.int("inserted")), number(d.int("duplicates")), number(d.int("anomalous")))
	},
	"unlocks.export": func(e *AuditEntry, d detail) string {
		s := "exported "
		if n, ok := d.num("events"); ok {
			s += count(n, "unlock event", "unlock events")
		} else {
			s += "unlock events"
		}
		s += ", " + dateRange(d.text("from", "From"), d.text("to", "To"))
		var filters []string
		if v := d.int("device_id", "DeviceID"); v > 0 {
			filters = append(filters, fmt.Sprintf("of device #%d", v))
		}
		if v := d.text("device_ref", "DeviceRef"); v != "" {
			filters = append(filters, "of the unknown device "+quote(v))
		}
		if v := d.text("method", "Method"); v != "" {
			filters = append(filters, "by "+strings.ReplaceAll(v, "_", " "))
		}
		if v := d.text("result", "Result"); v != "" {
			filters = append(filters, v+" only")
		}
		switch {
		case d.text("anomaly", "Anomaly") != "":
			filters = append(filters, "flagged "+strings.ReplaceAll(d.text("anomaly", "Anomaly"), "_", " ")+" only")
		case d.flag("open_only", "OpenOnly"):
			filters = append(filters, "open anomalies only")
		case d.flag("anomalies_only", "AnomaliesOnly"):
			filters = append(filters, "anomalies only")
		}
		if len(filters) > 0 {
			s += ", " + strings.Join(filters, ", ")
		}
		format := d.text("format")
		if format == "" {
			format = "csv"
		}
		return s + ", as " + strings.ToUpper(format)
	},
	"unlocks.purge": func(e *AuditEntry, d detail) string {
		s := "deleted " + count(d.int("deleted"), "unlock event", "unlock events") + " older than " + timeText(d.text("before"))
		if days := d.int("retention_days"); days > 0 {
			s += ", past the building's retention of " + count(days, "day", "days")
		}
		return s + "; their entries stay in the verifiable log"
	},

	RedactAction: func(e *AuditEntry, d detail) string {
		return "removed the courier and package references of " + count(d.int("events"), "unlock event", "unlock events") +
			" older than " + timeText(d.text("before")) + " under the Tenant Data Privacy Act profile; counts and anomaly flags stay, " +
			"and each event still proves against its entry in the verifiable log (digest " + shortHash(d.text("digest")) + ")"
	},

	// The privacy profile.
	"building.privacy_profile": func(e *AuditEntry, d detail) string {
		if p := d.text("profile"); p != "" {
			return "put the building under the privacy profile of the " + PrivacyProfileName(p)
		}
		return "took the building out of its privacy profile"
	},
	"vendor_disclosure.create": func(e *AuditEntry, d detail) string {
		return "added the vendor disclosure record #" + number(e.ObjectID) + " of " + quote(d.text("legal_name"))
	},
	"vendor_disclosure.update": func(e *AuditEntry, d detail) string {
		return "edited the vendor disclosure record #" + number(e.ObjectID) + " of " + quote(d.text("legal_name"))
	},
	"device.disclosure": func(e *AuditEntry, d detail) string {
		if id := d.int("disclosure"); id != 0 {
			return "named vendor disclosure record #" + number(id) + " for " + objectRef(e)
		}
		return "removed the vendor disclosure record of " + objectRef(e)
	},

	// Reports.
	"report.request": func(e *AuditEntry, d detail) string {
		verb := "requested"
		if d.flag("monthly") {
			verb = "queued the monthly"
		}
		s := fmt.Sprintf("%s report %s (%s)", verb, d.text("report"), reportFacts(d))
		if n, ok := d.num("events"); ok {
			s = strings.TrimSuffix(s, ")") + ", " + count(n, "unlock event", "unlock events") + ")"
		}
		return s
	},
	"report.generate": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("generated report %s (%s", d.text("report"), reportFacts(d))
		if b := d.int("bytes"); b > 0 {
			s += ", " + byteCount(b)
		}
		s += ")"
		if n := d.int("head_size"); n > 0 {
			s += ", its signed log head covering " + count(n, "entry", "entries")
		}
		return s
	},
	"report.download": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("downloaded report %s (%s)", d.text("report"), reportFacts(d))
	},
	"report.fail": func(e *AuditEntry, d detail) string {
		return "could not make report " + d.text("report") + reasonSuffix(d.text("reason"))
	},
	"report.subscribe":   func(*AuditEntry, detail) string { return "subscribed to the building's monthly report by mail" },
	"report.unsubscribe": func(*AuditEntry, detail) string { return "unsubscribed from the building's monthly report" },

	// The verifiable log.
	"log.verify": func(e *AuditEntry, d detail) string {
		s := "verified the audit log (" + count(d.int("entries"), "entry", "entries") + "): "
		if d.flag("ok") {
			return s + "intact"
		}
		return s + "it does NOT verify: " + d.text("problem")
	},

	// Witnesses of the log (docs/witnesses.md).
	"witness.add": func(e *AuditEntry, d detail) string {
		return "added the witness " + quote(d.text("witness")) + " at " + d.text("url") + ", key " + d.text("key")
	},
	"witness.remove": func(e *AuditEntry, d detail) string {
		return "removed the witness " + quote(d.text("witness")) + "; its cosignatures no longer count"
	},
	"witness.policy": func(e *AuditEntry, d detail) string {
		return fmt.Sprintf("set the witness policy to %d of %d witnesses (was %d)", d.int("k"), d.int("n"), d.int("previous_k"))
	},
	"witness.refused": func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("the witness %s refused the log's checkpoint of %d entries (%d): %s", quote(d.text("witness")), d.int("size"), d.int("status"), d.text("reason"))
		if d.flag("security") {
			s = "SECURITY: " + s + "; the log it was shown may have been rewritten"
		}
		return s
	},

	// Vendor integrations.
	"vendor.create": func(e *AuditEntry, d detail) string {
		s := "created the vendor integration " + quote(d.text("vendor_integration"))
		if u := d.text("webhook_url"); u != "" {
			s += ", webhook " + u
		}
		if k := d.text("key"); k != "" {
			s += ", key " + k
		}
		return s
	},
	"vendor.rotate_key": func(e *AuditEntry, d detail) string {
		s := "issued a new key " + d.text("key") + " for the vendor integration " + quote(d.text("vendor_integration"))
		if p := d.text("previous_key"); p != "" {
			s += "; the previous key " + p + " works until removed"
		}
		if p := d.text("dropped_key"); p != "" {
			s += "; the key " + p + " before it no longer works"
		}
		return s
	},
	"vendor.remove_previous_key": func(e *AuditEntry, d detail) string {
		return "removed the previous key " + d.text("key") + " of the vendor integration " + quote(d.text("vendor_integration"))
	},
	"vendor.retire": func(e *AuditEntry, d detail) string {
		s := "retired the vendor integration " + quote(d.text("vendor_integration"))
		if ids := d.ints("devices"); len(ids) > 0 {
			s += "; " + idList("device", ids) + " back on MQTT"
		}
		return s
	},

	// Outbound events.
	"webhook.subscribe": func(e *AuditEntry, d detail) string {
		s := "subscribed " + quote(d.text("name")) + " (" + d.text("url") + ") to " + strings.Join(d.strings("event_types"), ", ")
		if k := d.text("secret"); k != "" {
			s += ", secret " + k
		}
		return s
	},
	"webhook.disable": func(e *AuditEntry, d detail) string {
		s := "disabled the event subscription " + quote(d.text("name"))
		if n := d.int("undelivered"); n > 0 {
			s += fmt.Sprintf("; %d undelivered events given up", n)
		}
		return s
	},
	"webhook.replay": func(e *AuditEntry, d detail) string {
		return "queued event " + d.text("event_id") + " (" + d.text("event_type") + ") to be delivered again, " + objectRef(e)
	},

	// Mail.
	"mail.retry": func(e *AuditEntry, d detail) string {
		s := "queued mail " + objectRef(e) + " to be sent again"
		if to := d.text("to"); to != "" {
			s += " (to " + to + ")"
		}
		return s
	},
}

// detail is an entry's JSON detail, decoded (numbers kept exact).
type detail map[string]any

func parseDetail(s string) detail {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var d detail
	if err := dec.Decode(&d); err != nil {
		return detail{}
	}
	return d
}

// text is the first of keys present (old entries carry Go field names), as
// one line of text.
func (d detail) text(keys ...string) string {
	for _, k := range keys {
		switch v := d[k].(type) {
		case string:
			return oneLine(v)
		case json.Number:
			return v.String()
		case bool:
			return strconv.FormatBool(v)
		}
	}
	return ""
}

func (d detail) num(keys ...string) (int64, bool) {
	for _, k := range keys {
		if v, ok := d[k].(json.Number); ok {
			if n, err := v.Int64(); err == nil {
				return n, true
			}
			if f, err := v.Float64(); err == nil {
				return int64(f), true
			}
		}
	}
	return 0, false
}

func (d detail) int(keys ...string) int64 {
	n, _ := d.num(keys...)
	return n
}

func (d detail) flag(keys ...string) bool {
	for _, k := range keys {
		if v, ok := d[k].(bool); ok {
			return v
		}
	}
	return false
}

func (d detail) sub(key string) detail {
	m, _ := d[key].(map[string]any)
	return detail(m)
}

func (d detail) ints(key string) []int64 {
	list, _ := d[key].([]any)
	var out []int64
	for _, v := range list {
		if n, ok := v.(json.Number); ok {
			if i, err := n.Int64(); err == nil {
				out = append(out, i)
			}
		}
	}
	return out
}

func (d detail) strings(key string) []string {
	list, _ := d[key].([]any)
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, oneLine(s))
		}
	}
	return out
}

// facts writes every fact of the detail as "key value", sorted, nested
// ones inline: how an action without a sentence reads.
func (d detail) facts() string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		var v string
		switch x := d[k].(type) {
		case string:
			if x == "" {
				continue
			}
			v = quote(x)
		case json.Number:
			v = x.String()
		case bool:
			v = strconv.FormatBool(x)
		case nil:
			continue
		default:
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(x)
			v = strings.TrimSpace(buf.String())
		}
		parts = append(parts, strings.ReplaceAll(k, "_", " ")+" "+v)
	}
	return strings.Join(parts, ", ")
}

// objectRef names an entry's object, as in "device #3".
func objectRef(e *AuditEntry) string {
	if e.ObjectType == "" {
		return ""
	}
	name := strings.ReplaceAll(e.ObjectType, "_", " ")
	switch e.ObjectType {
	case "user":
		name = "user"
	case "vendor_integration":
		name = "vendor integration"
	}
	if e.ObjectID == 0 {
		return name
	}
	return fmt.Sprintf("%s #%d", name, e.ObjectID)
}

func deviceCommand(verb string) func(e *AuditEntry, d detail) string {
	return func(e *AuditEntry, d detail) string {
		s := fmt.Sprintf("told %s to %s", objectRef(e), verb)
		if c := d.int("command"); c > 0 {
			s += fmt.Sprintf(" (command #%d, version %s)", c, d.text("version"))
		}
		return s + reasonSuffix(d.text("reason"))
	}
}

func buildingFacts(d detail) string {
	s := quote(d.text("Name", "name"))
	if a := d.text("Address", "address"); a != "" {
		s += ", " + a
	}
	if tz := d.text("Timezone", "timezone"); tz != "" {
		s += ", time zone " + tz
	}
	if m := d.int("ConsentMonths", "consent_months"); m > 0 {
		s += ", consents valid " + count(m, "month", "months")
	}
	return s
}

// settingsChange says which unlock rules changed, from old to new.
func settingsChange(old, new detail) string {
	labels := []struct{ key, label string }{
		{"retention_days", "retention (days)"}, {"delivery_hours", "delivery hours"}, {"burst_count", "burst: unlocks"},
		{"burst_minutes", "burst: minutes"}, {"alert_board", "alert the board"}, {"heartbeat_seconds", "heartbeat (seconds)"},
	}
	var parts []string
	for _, l := range labels {
		o, n := old.text(l.key), new.text(l.key)
		if o == n {
			continue
		}
		if o == "" {
			o = "none"
		}
		if n == "" {
			n = "none"
		}
		parts = append(parts, l.label+" "+o+" → "+n)
	}
	if len(parts) == 0 {
		return "nothing changed"
	}
	return strings.Join(parts, ", ")
}

func reportFacts(d detail) string {
	format := map[string]string{ReportPDF: "PDF", ReportCSV: "CSV", ReportBundle: "evidence bundle"}[d.text("format")]
	if format == "" {
		format = d.text("format")
	}
	return format + ", " + dateRange(d.text("from"), d.text("to"))
}

func roleSuffix(role string) string {
	if role == "" {
		return ""
	}
	return " as " + role
}

func reasonSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + quote(s)
}

func devicesDisabled(d detail) string {
	if n := d.int("devices_disabled"); n > 0 {
		return "; " + count(n, "device", "devices") + " told to disable"
	}
	return ""
}

func verifiedBy(method string) string {
	switch method {
	case "link":
		return "the signing link mailed to the roster's address"
	case "code":
		return "a code mailed to the roster's address"
	}
	return method
}

func stateVerb(state string) string {
	switch state {
	case "enabled":
		return "enable"
	case "disabled":
		return "disable"
	}
	return state
}

// idList writes ids as "commands #4, #5 and #7" (at most 10, then "and 12 more").
func idList(what string, ids []int64) string {
	parts := make([]string, 0, min(len(ids), 10))
	for _, id := range ids[:min(len(ids), 10)] {
		parts = append(parts, "#"+strconv.FormatInt(id, 10))
	}
	s := what
	if len(ids) != 1 {
		s += "s"
	}
	s += " " + strings.Join(parts, ", ")
	if len(ids) > 10 {
		s += fmt.Sprintf(" and %d more", len(ids)-10)
	}
	return s
}

// quote writes text people gave between curly quotes, on one line.
func quote(s string) string { return "“" + oneLine(s) + "”" }

// oneLine turns line breaks and other control characters into spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// number writes n with thousands separators: 1,508.
func number(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return number(n) + " " + many
}

func byteCount(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return count(n, "byte", "bytes")
}

// duration writes a duration as people say it: "1.2 s", "10 min", "2 h".
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
	case d < time.Hour && d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return d.String()
}

// timeText writes a recorded time (RFC 3339, UTC) as "2026-11-10 08:00 UTC".
func timeText(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// dateRange writes a range of dates (2006-01-02, both included) as people
// read it: "1–30 Nov 2026", "28 Oct – 3 Nov 2026", "from 1 Nov 2026",
// "all dates".
func dateRange(from, to string) string {
	f, ferr := time.Parse("2006-01-02", from)
	t, terr := time.Parse("2006-01-02", to)
	switch {
	case from == "" && to == "":
		return "all dates"
	case ferr != nil && from != "" || terr != nil && to != "":
		return strings.TrimSpace(from + " to " + to)
	case to == "":
		return "from " + f.Format("2 Jan 2006")
	case from == "":
		return "until " + t.Format("2 Jan 2006")
	case f.Equal(t):
		return f.Format("2 Jan 2006")
	case f.Year() != t.Year():
		return f.Format("2 Jan 2006") + " – " + t.Format("2 Jan 2006")
	case f.Month() != t.Month():
		return f.Format("2 Jan") + " – " + t.Format("2 Jan 2006")
	}
	return strconv.Itoa(f.Day()) + "–" + t.Format("2 Jan 2006")
}

// factorName is how the journal names a second factor.
func factorName(kind string) string {
	switch SecondFactorKind(kind) {
	case FactorTOTP:
		return "authenticator app"
	case FactorPasskey:
		return "passkey"
	case FactorRecovery:
		return "recovery code"
	}
	return kind
}

// nameSuffix is ` “name”` for a named thing, "" otherwise.
func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return " “" + name + "”"
}

// ssoIssuer names the provider of a sign-in by SSO: its issuer URL.
func ssoIssuer(d detail) string { return orWords(d.text("issuer"), "single sign-on") }

// orWords returns s, or words when s is empty.
func orWords(s, words string) string {
	if s == "" {
		return words
	}
	return s
}
