package sqlite_test

import (
	"strings"
	"testing"
)

// The burst count is an index-only scan of granted events.
func TestBurstCountUsesCoveringIndex(t *testing.T) {
	d, _ := MustOpenDB(t)
	rows, err := d.Reader().Query(`EXPLAIN QUERY PLAN SELECT COUNT(*) FROM unlock_events
		WHERE building_id = ?1 AND effective_at > ?2 AND effective_at <= ?3 AND result = 'granted'`, 1, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "COVERING INDEX unlock_events_granted") {
		t.Fatalf("burst count plan: %s", got)
	}
}
