package doorledger_test

import (
	"testing"

	"github.com/doorledger/doorledger"
)

func TestAuditFilterPageSize(t *testing.T) {
	for limit, want := range map[int]int{-1: 200, 0: 200, 1: 1, 500: 500, 501: 200} {
		if got := (doorledger.AuditFilter{Limit: limit}).PageSize(); got != want {
			t.Errorf("PageSize of Limit %d = %d, want %d", limit, got, want)
		}
	}
}

func TestCheckJournalReader(t *testing.T) {
	for _, r := range doorledger.Roles {
		err := doorledger.CheckJournalReader(r)
		if r == doorledger.RoleInstaller {
			if doorledger.ErrorCode(err) != doorledger.ENOTFOUND || doorledger.ErrorMessage(err) != "Building not found." {
				t.Errorf("installer: %v", err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}
