package devicectl_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/doorledger/doorledger/devicectl"
)

// lockedBuffer is a log destination the broker's goroutines write while the
// test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A message the portal could not commit is logged once, by the broker's
// hook, with the device and the cause. mochi logged it again at error level
// with the whole packet, its payload printed byte by byte: under load, when
// commits time out and every device publishes again, that second line took
// a third of the portal's CPU and wrote 300 MB of log in two minutes
// (docs/reliability.md, Load).
func TestBroker_NotCommittedLoggedOnceWithoutPacket(t *testing.T) {
	f := newFakePortal(secrets)
	var logs lockedBuffer
	b, err := devicectl.NewBroker(devicectl.BrokerConfig{Addr: "127.0.0.1:0", Devices: f, Events: f,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	c := mustV5(t, b.Addr(), 3, "s3-secret")
	f.mu.Lock()
	f.failReports = 1
	f.mu.Unlock()
	pr, err := c.Publish(waitCtx(t), &paho.Publish{QoS: 1, Topic: devicectl.ReportedTopic(3), Payload: []byte(`{"state":"enabled","version":4}`)})
	if err == nil || pr == nil || pr.ReasonCode < 0x80 {
		t.Fatalf("want a negative PUBACK, got %+v, %v", pr, err)
	}
	c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	b.Close() // every log line of the refused message is written by now
	out := logs.String()
	if n := strings.Count(out, "device message not committed"); n != 1 {
		t.Errorf("%d lines say the message was not committed, want 1:\n%s", n, out)
	}
	if strings.Contains(out, "publish packet error") || strings.Contains(out, "Payload") {
		t.Errorf("the refused packet is logged whole:\n%s", out)
	}
}
