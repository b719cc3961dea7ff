package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the data directory's instance lock: the portal serving from a
// data directory holds it for as long as it runs.
const lockFile = "portal.lock"

// lockDataDir takes the data directory's instance lock, or says which process
// holds it. A portal with the embedded broker takes it exclusively: a second
// portal on the same database would split the devices between two brokers.
// Portals on an external broker (-mqtt-url) take it shared: several may run
// on one database, as on PostgreSQL, but none beside an embedded broker. The
// lock is flock(2), so the kernel releases it when the process dies, kill -9
// included; commands that read the directory while the portal runs (audit,
// backup, user) do not take it.
func lockDataDir(dir string, shared bool) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("data directory %s is in use by another portal (%s): a portal with the embedded MQTT broker "+
				"runs alone on its database; several instances share an external broker (-mqtt-url) and one database (docs/operations.md)", dir, holder)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	// The exclusive holder names itself; shared holders are several, and
	// clear a name a past holder left.
	if err := f.Truncate(0); err == nil && !shared {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
