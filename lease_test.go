package doorledger_test

import (
	"testing"
	"time"

	"github.com/doorledger/doorledger"
)

func TestCheckLeaseRequest(t *testing.T) {
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
		ok           bool
	}{{"job", "a", time.Nanosecond, true}, {"", "a", time.Second, false}, {"job", "", time.Second, false}, {"job", "a", 0, false}, {"job", "a", -time.Second, false}} {
		err := doorledger.CheckLeaseRequest(c.name, c.holder, c.ttl)
		if c.ok != (err == nil) || !c.ok && (doorledger.ErrorCode(err) != doorledger.EINVALID || doorledger.ErrorMessage(err) != "A lease needs a name, a holder and a term above zero.") {
			t.Errorf("CheckLeaseRequest(%q, %q, %v) = %v", c.name, c.holder, c.ttl, err)
		}
	}
}
