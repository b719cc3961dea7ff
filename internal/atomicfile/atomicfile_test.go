package atomicfile_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/doorledger/doorledger/internal/atomicfile"
)

// Processes starting on one data directory at once end up with one key:
// the first file written wins and every caller reads it back.
func TestLoadOrCreateOneSecretForConcurrentStarts(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "vendor.key")
		const starts = 16
		keys := make([][]byte, starts)
		var wg sync.WaitGroup
		for i := range starts {
			wg.Go(func() {
				k, err := atomicfile.LoadOrCreate(path, 32, func(b []byte) error { _, err := rand.Read(b); return err })
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for i, k := range keys {
			if len(k) != 32 || !bytes.Equal(k, keys[0]) {
				t.Fatalf("round %d: start %d got a different key (%d bytes) than start 0", round, i, len(k))
			}
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file: %v, mode %v", err, fi.Mode())
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Fatalf("round %d: %d files left in the directory, want only the key", round, len(entries))
		}
	}
}

func TestCreateOnceNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.origin")
	if err := atomicfile.CreateOnce(path, []byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.CreateOnce(path, []byte("second\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "first\n" {
		t.Fatalf("file holds %q", b)
	}
}
