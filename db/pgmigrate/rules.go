package pgmigrate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The copy runs with the target's user triggers off (they would refuse
// writing evidence that already exists, or count derived rows twice), and
// turns them on again before it commits. Every rule a trigger enforces is
// then re-checked on the copied rows, inside the same transaction: a rule
// broken anywhere rolls the whole copy back.
//
// Each trigger of the target falls in one of three kinds:
//
//   - a rule on what the rows hold (the core rule, derived counts, the
//     log's positions): re-checked by a query of rules below, which reads
//     the rows that break it;
//   - a rule on changes only (append-only, immutability, no delete): the
//     copy inserts each row once and changes none, so there is nothing to
//     re-check; the trigger guards the target from the commit on;
//   - a rule on the moment of writing (a request awaiting signatures when
//     a signature or paper form was added, the signer on the roster then):
//     what held then cannot be read from the rows now; the source's own
//     triggers checked it when the row was written, and the parts that
//     still hold (signer named by the request, signature of its terms) are
//     re-checked below.
//
// A trigger in none of these lists stops the copy before it begins: a rule
// added by a later migration is classified here, not bypassed unchecked.

// rule is a re-check: query returns a description of each row that breaks
// it (a few are enough).
type rule struct {
	name     string
	triggers []string
	query    string
}

var rules = []rule{
	{
		name: "no device is enabled without an active consent of its building, signed as its policy requires",
		triggers: []string{"devices_enable_needs_consent", "consents_end_needs_devices_disabled",
			"consents_signed_needs_quorum", "consents_signed_only_from_awaiting"},
		query: `SELECT 'device ' || d.id FROM devices d WHERE d.desired_state = 'enabled' AND NOT EXISTS (
			SELECT 1 FROM consents c WHERE c.id = d.consent_id AND c.building_id = d.building_id
			AND c.status = 'signed' AND c.expires_at > now()
			AND consent_signature_count(c.id, c.terms_sha256) >= consent_required(c.policy_id))`,
	},
	{
		name:     "a signed consent has the signatures its policy requires and was not an expired request",
		triggers: []string{"consents_signed_needs_quorum", "consents_expired_not_signed"},
		query: `SELECT 'consent ' || c.id FROM consents c WHERE c.status = 'signed'
			AND (consent_signature_count(c.id, c.terms_sha256) < consent_required(c.policy_id) OR c.expired_at IS NOT NULL)`,
	},
	{
		name:     "a signed consent's signer is of its building",
		triggers: []string{"consents_sign_needs_roster"},
		query: `SELECT 'consent ' || c.id FROM consents c WHERE c.signed_at IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM signers s WHERE s.id = c.signer_id AND s.building_id = c.building_id)`,
	},
	{
		name:     "under the privacy profile no device is enabled without a complete vendor disclosure record",
		triggers: []string{"devices_enable_needs_disclosure", "vendor_disclosures_stay_complete"},
		query: `SELECT 'device ' || d.id FROM devices d JOIN buildings b ON b.id = d.building_id
			WHERE d.desired_state = 'enabled' AND b.privacy_profile = 'nyc_tdpa' AND NOT EXISTS (
			SELECT 1 FROM vendor_disclosures v WHERE v.id = d.vendor_disclosure_id AND v.building_id = d.building_id AND disclosure_complete(v))`,
	},
	{
		name:     "a device's vendor integration covers its building, its disclosure record is of its building",
		triggers: []string{"devices_same_building", "vendor_disclosures_same_building"},
		query: `SELECT 'device ' || d.id FROM devices d WHERE (d.vendor_integration_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM vendor_integration_buildings vb WHERE vb.vendor_integration_id = d.vendor_integration_id AND vb.building_id = d.building_id))
			OR (d.vendor_disclosure_id IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM vendor_disclosures v WHERE v.id = d.vendor_disclosure_id AND v.building_id = d.building_id))`,
	},
	{
		name:     "a device's offline_after is its last sign of life plus its heartbeat",
		triggers: []string{"devices_offline_after", "buildings_offline_after"},
		query: `SELECT 'device ' || d.id FROM devices d JOIN buildings b ON b.id = d.building_id
			WHERE d.offline_after IS DISTINCT FROM (CASE WHEN COALESCE(d.heartbeat_seconds, b.heartbeat_seconds) > 0
			THEN COALESCE(d.last_seen_at, d.created_at) + make_interval(secs => COALESCE(d.heartbeat_seconds, b.heartbeat_seconds)) END)`,
	},
	{
		name:     "every building has its notice page and its open-anomaly counter",
		triggers: []string{"buildings_made"},
		query: `SELECT 'building ' || b.id FROM buildings b WHERE NOT EXISTS (SELECT 1 FROM building_notices n WHERE n.building_id = b.id)
			OR NOT EXISTS (SELECT 1 FROM building_open_anomalies o WHERE o.building_id = b.id)`,
	},
	{
		name:     "each building's open anomalies are its anomalous unlock events not acknowledged",
		triggers: []string{"building_open_anomalies_event", "building_open_anomalies_purge", "building_open_anomalies_ack"},
		query: `SELECT 'building ' || o.building_id || ': ' || o.n || ' counted, ' || COALESCE(e.n, 0) || ' open' FROM building_open_anomalies o
			LEFT JOIN (SELECT building_id, count(*) AS n FROM unlock_events u WHERE anomalies <> 0
				AND NOT EXISTS (SELECT 1 FROM anomaly_acks a WHERE a.event_id = u.id) GROUP BY building_id) e ON e.building_id = o.building_id
			WHERE o.n <> COALESCE(e.n, 0)`,
	},
	{
		name:     "an acknowledged anomaly is an anomalous unlock event of the building (while the event is kept)",
		triggers: []string{"anomaly_acks_event"},
		query: `SELECT 'acknowledgement of event ' || a.event_id FROM anomaly_acks a JOIN unlock_events e ON e.id = a.event_id
			WHERE e.building_id <> a.building_id OR e.anomalies = 0`,
	},
	{
		name:     "each building's daily unlock counts are dated in its time zone",
		triggers: []string{"unlock_daily_building", "unlock_daily_zone_change"},
		query: `SELECT 'building ' || b.id FROM buildings b WHERE NOT EXISTS (
			SELECT 1 FROM unlock_daily_zones z WHERE z.building_id = b.id AND z.zone = b.timezone)`,
	},
	{
		name:     "the daily unlock counts are the counts of the events they cover",
		triggers: []string{"unlock_daily_insert", "unlock_daily_delete"},
		query: `WITH counted AS (
			SELECT e.building_id, (e.effective_at AT TIME ZONE z.zone)::date AS day,
				count(*) FILTER (WHERE e.result = 'granted') AS granted, count(*) FILTER (WHERE e.result = 'denied') AS denied,
				count(*) FILTER (WHERE e.anomalies <> 0) AS anomalous
			FROM unlock_events e JOIN unlock_daily_zones z ON z.building_id = e.building_id
			WHERE e.effective_at < z.counted_until GROUP BY 1, 2)
			SELECT 'building ' || COALESCE(c.building_id, d.building_id) || ' on ' || COALESCE(c.day, d.day)
			FROM counted c FULL JOIN unlock_daily d ON d.building_id = c.building_id AND d.day = c.day
			WHERE (c.granted, c.denied, c.anomalous) IS DISTINCT FROM (d.granted, d.denied, d.anomalous)`,
	},
	{
		name:     "an unlock event's effective time is its received time when flagged clock_skew, else its occurred time",
		triggers: []string{"unlock_events_effective_at"},
		query: `SELECT 'unlock event ' || id FROM unlock_events
			WHERE effective_at IS DISTINCT FROM (CASE WHEN anomalies & 32 <> 0 THEN received_at ELSE occurred_at END)`,
	},
	{
		name:     "a redacted unlock event lost only its actor, under a redaction entry of its building that recorded it",
		triggers: []string{"unlock_events_no_update"},
		query: `SELECT 'unlock event ' || e.id FROM unlock_events e WHERE (e.redaction_id IS NULL) <> (e.redacted_at IS NULL)
			OR (e.redaction_id IS NOT NULL AND (e.actor_ref <> ''
			OR NOT EXISTS (SELECT 1 FROM audit_entries a WHERE a.id = e.redaction_id AND a.action = 'unlock.redact' AND a.building_id = e.building_id)
			OR NOT EXISTS (SELECT 1 FROM unlock_redactions r WHERE r.unlock_id = e.id AND r.redaction_id = e.redaction_id)))`,
	},
	{
		name:     "the log's entries and hashes sit at consecutive positions from 0",
		triggers: []string{"log_leaves_next", "log_hashes_next"},
		query: `SELECT t || ': ' || n || ' rows, last position ' || last FROM (
			SELECT 'log_leaves' AS t, count(*) AS n, COALESCE(max(idx), -1) AS last FROM log_leaves
			UNION ALL SELECT 'log_hashes', count(*), COALESCE(max(idx), -1) FROM log_hashes) p WHERE n <> last + 1`,
	},
	{
		name: "a signature is by a signer its request names, of its building, of the request's own terms",
		// The request awaiting signatures, the signer on the roster and the
		// earlier signers' turn held when it was written (checked then).
		triggers: []string{"consent_signatures_valid"},
		query: `SELECT 'signature ' || g.id FROM consent_signatures g JOIN consents c ON c.id = g.consent_id
			WHERE NOT EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = g.consent_id AND n.signer_id = g.signer_id)
			OR NOT EXISTS (SELECT 1 FROM signers s WHERE s.id = g.signer_id AND s.building_id = c.building_id)
			OR c.terms_sha256 IS DISTINCT FROM g.terms_sha256`,
	},
	{
		name: "a paper form's signers are named by its request; a confirmation carries the signer's own signature",
		// The request was awaiting signatures when the form was attached
		// (checked then).
		triggers: []string{"paper_form_signers_named", "paper_form_signers_answer_once", "paper_forms_on_request"},
		query: `SELECT 'paper form ' || s.paper_form_id || ', signer ' || s.signer_id FROM paper_form_signers s JOIN paper_forms p ON p.id = s.paper_form_id
			WHERE NOT EXISTS (SELECT 1 FROM consent_signers n WHERE n.consent_id = p.consent_id AND n.signer_id = s.signer_id)
			OR (s.answer = 'confirmed' AND NOT EXISTS (SELECT 1 FROM consent_signatures g
				WHERE g.id = s.signature_id AND g.consent_id = p.consent_id AND g.signer_id = s.signer_id))`,
	},
}

// changeOnly are the triggers that guard changes (update, delete,
// truncate) only: the copy makes none, and from the commit on they guard
// the target. Also the unlock cache's epoch, which counts changes.
var changeOnly = []string{
	"anomaly_acks_no_delete", "anomaly_acks_no_truncate", "anomaly_acks_no_update",
	"audit_entries_append_only", "audit_entries_no_truncate",
	"consent_events_append_only", "consent_policies_append_only",
	"consent_signatures_immutable", "consent_signers_recorded",
	"consents_expired_for_good", "consents_no_delete", "consents_no_truncate",
	"consents_policy_recorded", "consents_policy_terms_fixed", "consents_signed_immutable", "consents_status_forward",
	"devices_no_delete", "devices_no_truncate",
	"log_hashes_append_only", "log_heads_append_only", "log_leaves_append_only", "log_purges_append_only", "log_no_truncate",
	"paper_form_files_no_delete", "paper_form_files_no_update", "paper_form_signers_no_delete",
	"paper_forms_fixed", "paper_forms_no_delete",
	"reports_done_immutable", "reports_no_delete", "reports_no_truncate",
	"resident_reports_final", "resident_reports_no_delete",
	"signers_removed_for_good",
	"unlock_events_delete_only_expired", "unlock_events_no_truncate",
	"unlock_redactions_no_delete", "unlock_redactions_no_truncate", "unlock_redactions_no_update",
	"vendor_disclosures_no_delete", "vendor_integrations_no_delete",
	"witness_cosignatures_append_only", "witness_cosignatures_no_truncate",
	"witness_refusals_append_only", "witness_refusals_no_truncate",
	"unlock_cache_building_update", "unlock_cache_consent_update", "unlock_cache_device_insert", "unlock_cache_device_update",
}

// userTriggers lists the target's user triggers as "table.trigger".
func userTriggers(ctx context.Context, tx pgx.Tx) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			return nil, err
		}
		out = append(out, table+"."+name)
	}
	return out, rows.Err()
}

// unclassified returns the target's triggers that neither a rule re-checks
// nor changeOnly lists.
func unclassified(triggers []string) []string {
	known := map[string]bool{}
	for _, n := range changeOnly {
		known[n] = true
	}
	for _, r := range rules {
		for _, n := range r.triggers {
			known[n] = true
		}
	}
	var out []string
	for _, t := range triggers {
		if !known[t[strings.IndexByte(t, '.')+1:]] {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// checkRules runs every rule's query and returns the broken rules, each
// with up to five of the rows that break it.
func checkRules(ctx context.Context, tx pgx.Tx) ([]string, error) {
	var broken []string
	for _, r := range rules {
		rows, err := tx.Query(ctx, r.query+` LIMIT 5`)
		if err != nil {
			return nil, fmt.Errorf("re-check %q: %w", r.name, err)
		}
		var bad []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, err
			}
			bad = append(bad, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("re-check %q: %w", r.name, err)
		}
		if len(bad) > 0 {
			broken = append(broken, fmt.Sprintf("%s (trigger %s): %s", r.name, strings.Join(r.triggers, ", "), strings.Join(bad, "; ")))
		}
	}
	return broken, nil
}
