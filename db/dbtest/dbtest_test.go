package dbtest

import (
	"slices"
	"testing"
)

// TestGroupsNamed: every group Run runs is named in Groups once, so that
// RunGroups(Groups...) is the whole suite and Missing is honest.
func TestGroupsNamed(t *testing.T) {
	if len(Groups) != len(groups) {
		t.Fatalf("Groups names %d groups, the suite has %d", len(Groups), len(groups))
	}
	for _, g := range Groups {
		if _, ok := groups[g]; !ok {
			t.Errorf("Groups names %q, which the suite does not have", g)
		}
	}
	if m := Missing("users", "outbox"); len(m) != len(Groups)-2 || slices.Contains(m, "users") || slices.Contains(m, "outbox") {
		t.Errorf("Missing(users, outbox) = %v", m)
	}
}
