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
// holds it. One data directory (its SQLite database, its embedded broker)
// serves one portal process: a second one would split the devices between two
// brokers. The lock is flock(2), so the kernel releases it when the process
// dies, kill -9 included; commands that read the directory while the portal
// runs (audit, backup, user) do not take it.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "process " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("data directory %s is in use by another portal (%s): one data directory serves one portal; "+
				"several instances need PostgreSQL and an external MQTT broker (docs/deploy.md)", dir, holder)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
