// Package eventcodec encodes unlock events compactly, for the copy a
// report keeps of its events between the walks the PDF and the evidence
// bundle make (see the report services of package sqlite and package
// postgres, and docs/benchmarks.md for the size).
package eventcodec

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/doorledger/doorledger"
	"github.com/doorledger/doorledger/internal/anomalybits"
)

// Events are encoded as: flags (1: acknowledged, 2: no received time),
// the id, device id, occurred and received times (µs since the epoch, the
// received time as a difference) as varints, the anomaly bits, then the
// texts (device ref, event id, method, actor ref, result, source; when
// acknowledged, its time as a varint then who and the note), each a
// uvarint length and its bytes.
const (
	keptAcked      = 1
	keptNoReceived = 2
)

// Append appends e, encoded, to b.
func Append(b []byte, e *doorledger.UnlockEvent) []byte {
	var flags byte
	if e.Acknowledged() {
		flags |= keptAcked
	}
	if e.ReceivedAt.IsZero() {
		flags |= keptNoReceived
	}
	occurred := e.OccurredAt.UnixMicro()
	b = append(b, flags)
	b = binary.AppendVarint(b, e.ID)
	b = binary.AppendVarint(b, e.DeviceID)
	b = binary.AppendVarint(b, occurred)
	b = binary.AppendVarint(b, e.ReceivedAt.UnixMicro()-occurred)
	var bits int64
	for _, k := range e.Anomalies {
		bits |= anomalybits.Bit(k)
	}
	b = binary.AppendUvarint(b, uint64(bits))
	for _, s := range [...]string{e.DeviceRef, e.EventID, e.Method, e.ActorRef, string(e.Result), e.Source} {
		b = appendText(b, s)
	}
	if flags&keptAcked != 0 {
		b = binary.AppendVarint(b, e.AcknowledgedAt.UnixMicro())
		b = appendText(appendText(b, e.AcknowledgedBy), e.AckNote)
	}
	return b
}

func appendText(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// ErrDamaged says a buffer does not hold a whole encoded event.
var ErrDamaged = errors.New("damaged")

// Read decodes the event at the start of b into e, every field of e
// overwritten, and returns the rest.
func Read(b []byte, e *doorledger.UnlockEvent) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrDamaged
	}
	flags := b[0]
	b = b[1:]
	var nums [5]int64
	for i := range nums {
		var n int
		if i == 4 {
			u, m := binary.Uvarint(b)
			nums[i], n = int64(u), m
		} else {
			nums[i], n = binary.Varint(b)
		}
		if n <= 0 {
			return nil, ErrDamaged
		}
		b = b[n:]
	}
	e.ID, e.DeviceID = nums[0], nums[1]
	e.OccurredAt = time.UnixMicro(nums[2]).UTC()
	e.ReceivedAt = time.UnixMicro(nums[2] + nums[3]).UTC()
	if flags&keptNoReceived != 0 {
		e.ReceivedAt = time.Time{}
	}
	e.Anomalies = Kinds(nums[4])
	var f [6]string
	for i := range f {
		var ok bool
		if f[i], b, ok = readText(b); !ok {
			return nil, ErrDamaged
		}
	}
	e.DeviceRef, e.EventID, e.Method, e.ActorRef, e.Result, e.Source = f[0], f[1], f[2], f[3], doorledger.UnlockResult(f[4]), f[5]
	e.AcknowledgedAt, e.AcknowledgedBy, e.AckNote = time.Time{}, "", ""
	if flags&keptAcked != 0 {
		at, n := binary.Varint(b)
		if n <= 0 {
			return nil, ErrDamaged
		}
		b = b[n:]
		e.AcknowledgedAt = time.UnixMicro(at).UTC()
		var ok1, ok2 bool
		e.AcknowledgedBy, b, ok1 = readText(b)
		e.AckNote, b, ok2 = readText(b)
		if !ok1 || !ok2 {
			return nil, ErrDamaged
		}
	}
	return b, nil
}

func readText(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < l {
		return "", nil, false
	}
	return string(b[n : n+int(l)]), b[n+int(l):], true
}

// kindSets holds the kinds of every combination of bits, so that reading
// an event allocates none. Their capacity is their length: a caller
// appending to one gets a copy.
var kindSets = func() (sets [64][]string) {
	for bits := range sets {
		sets[bits] = slices.Clip(anomalybits.Kinds(int64(bits)))
	}
	return sets
}()

// Kinds names the anomalies of an event's bits, the same slice for the same
// bits (not to be changed).
func Kinds(bits int64) []string {
	if bits >= 0 && bits < int64(len(kindSets)) {
		return kindSets[bits]
	}
	return anomalybits.Kinds(bits)
}
