package main

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
)

// Two portals started on one data directory at the same moment (a restart
// overlapping the old process, or two instances) end up with one seal key:
// with a key each, mail sealed by one could never be opened by the other.
func TestKeyFilesCreatedOnceUnderConcurrentStarts(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "vendor.key")
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := vendorSealKey(path)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for i, k := range keys {
			if !bytes.Equal(k, keys[0]) {
				t.Fatalf("round %d: start %d read another key than start 0", round, i)
			}
		}
	}
}
