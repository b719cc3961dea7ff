package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// The committer's lookups by a JSON array of ids find each row by its key:
// json_each feeds the primary key, it does not scan the table.
func TestIngestLookupsUseKeys(t *testing.T) {
	d := NewDB(filepath.Join(t.TempDir(), "plan.db"))
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		name, query string
		args        []any
		want        string
	}{
		{"devices", loadDevicesSQL, []any{"[1,2]"}, "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)"},
		{"buildings", loadBuildingsSQL, []any{"[1,2]"}, "SEARCH b USING INTEGER PRIMARY KEY (rowid=?)"},
		{"seen", devicesSeenSQL, []any{"2026-12-08T00:00:00Z", "[1,2]"}, "SEARCH devices USING INTEGER PRIMARY KEY (rowid=?)"},
	} {
		rows, err := d.Reader().Query(`EXPLAIN QUERY PLAN `+tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		t.Logf("%s: %s", tc.name, got)
		if !strings.Contains(got, tc.want) || strings.Contains(got, "SCAN d") || strings.Contains(got, "SCAN b") || strings.Contains(got, "SCAN devices") {
			t.Errorf("%s plan: %s", tc.name, got)
		}
	}
}
