package doorledger_test

import (
	"testing"

	"github.com/doorledger/doorledger"
)

// TestLogProofChecks: the ranges a proof may be asked for, and the words
// of each refusal.
func TestLogProofChecks(t *testing.T) {
	for _, c := range []struct {
		what string
		err  error
		msg  string
	}{
		{"inclusion", doorledger.CheckInclusion(0, 1, 1), ""},
		{"inclusion at the size", doorledger.CheckInclusion(5, 5, 9), "Entry 5 is not in a log of 5 entries (the log has 9)."},
		{"inclusion, negative", doorledger.CheckInclusion(-1, 5, 9), "Entry -1 is not in a log of 5 entries (the log has 9)."},
		{"inclusion past the log", doorledger.CheckInclusion(0, 10, 9), "Entry 0 is not in a log of 10 entries (the log has 9)."},
		{"consistency", doorledger.CheckConsistency(1, 9, 9), ""},
		{"consistency from 0", doorledger.CheckConsistency(0, 9, 9), "Cannot prove a log of 9 entries extends one of 0 (the log has 9)."},
		{"consistency backwards", doorledger.CheckConsistency(5, 4, 9), "Cannot prove a log of 4 entries extends one of 5 (the log has 9)."},
		{"consistency past the log", doorledger.CheckConsistency(1, 10, 9), "Cannot prove a log of 10 entries extends one of 1 (the log has 9)."},
		{"inclusions", doorledger.CheckInclusions([]int64{0, 3, 8}, 9, 9), ""},
		{"inclusions, none", doorledger.CheckInclusions(nil, 0, 0), ""},
		{"inclusions past the log", doorledger.CheckInclusions([]int64{0}, 10, 9), "Cannot prove entries in a log of 10 entries (the log has 9)."},
		{"inclusions repeated", doorledger.CheckInclusions([]int64{2, 2}, 9, 9), "Entry 2 is not in a log of 9 entries, or the entries are not ascending."},
		{"inclusions at the size", doorledger.CheckInclusions([]int64{1, 9}, 9, 9), "Entry 9 is not in a log of 9 entries, or the entries are not ascending."},
	} {
		if c.msg == "" {
			if c.err != nil {
				t.Errorf("%s: %v", c.what, c.err)
			}
		} else if doorledger.ErrorCode(c.err) != doorledger.EINVALID || doorledger.ErrorMessage(c.err) != c.msg {
			t.Errorf("%s: %v, want EINVALID %q", c.what, c.err, c.msg)
		}
	}
}

func TestCheckLogReader(t *testing.T) {
	for _, r := range doorledger.Roles {
		err := doorledger.CheckLogReader(r)
		if r == doorledger.RoleInstaller {
			if doorledger.ErrorCode(err) != doorledger.EFORBIDDEN || doorledger.ErrorMessage(err) != "Installers do not see the audit log." {
				t.Errorf("installer: %v", err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}
