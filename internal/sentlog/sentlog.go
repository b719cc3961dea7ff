// Package sentlog holds the device controller's delivery records (a command
// was handed to the transport, at a time) in memory until a storage
// transaction writes them, as both storage backends do: after a push the
// record is written by the next transaction that concerns its device (the
// device's report, usually a millisecond later) rather than in a durable
// commit of its own, which the report would wait behind (docs/benchmarks.md).
//
// A transaction takes the records it writes and gives them back unless it
// commits, so each is written once; the backends' statement is order-free
// (the latest time wins), so a record written late leaves the same row.
package sentlog

import (
	"sync"
	"time"
)

// Mark is one delivery record held until written.
type Mark struct {
	Command, Device int64
	At              time.Time
}

// Log holds delivery records until a transaction writes them. Its zero value
// is empty and ready.
type Log struct {
	mu    sync.Mutex
	marks []Mark
	armed bool // a flush is scheduled
}

// Add holds marks; it reports whether a flush must be scheduled (none is
// yet, and something is held). The flush calls Disarm first.
func (l *Log) Add(marks []Mark) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks = append(l.marks, marks...)
	arm := !l.armed && len(l.marks) > 0
	l.armed = l.armed || arm
	return arm
}

// Take removes and returns the marks of device (0: all).
func (l *Log) Take(device int64) []Mark {
	l.mu.Lock()
	defer l.mu.Unlock()
	if device == 0 {
		m := l.marks
		l.marks = nil
		return m
	}
	var taken []Mark
	kept := l.marks[:0]
	for _, m := range l.marks {
		if m.Device == device {
			taken = append(taken, m)
		} else {
			kept = append(kept, m)
		}
	}
	clear(l.marks[len(kept):])
	l.marks = kept
	return taken
}

// Restore gives back marks a transaction did not commit.
func (l *Log) Restore(marks []Mark) {
	if len(marks) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marks = append(l.marks, marks...)
}

// Disarm says the scheduled flush has started: the next Add schedules another.
func (l *Log) Disarm() {
	l.mu.Lock()
	l.armed = false
	l.mu.Unlock()
}

// Len is how many marks are held.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.marks)
}
