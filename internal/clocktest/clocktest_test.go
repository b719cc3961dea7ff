package clocktest

import (
	"testing"
	"time"
)

func TestJump(t *testing.T) {
	var c Jumpable
	before := c.Now()
	c.Jump(time.Hour)
	if d := c.Now().Sub(before); d < time.Hour {
		t.Errorf("an hour forward: %s later", d)
	}
	c.Jump(-2 * time.Hour)
	if d := c.Now().Sub(before); d > -59*time.Minute {
		t.Errorf("then two hours back: %s later, want about an hour earlier", d)
	}
	if got := c.Offset(); got != -time.Hour {
		t.Errorf("offset %s, want -1h", got)
	}
}
