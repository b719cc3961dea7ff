// Package atomicfile writes the data directory's small secret files (keys,
// the log's origin) so that a crash or a second process starting at the
// same moment never leaves a torn file or two different keys, and makes
// renames durable.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CreateOnce writes data to a new file at path, readable by the owner only:
// written in full and synced under a temporary name, then linked into place,
// so that a crash leaves either no file or the whole of it, and when another
// process created one meanwhile, theirs wins (CreateOnce then returns nil and
// the caller reads the file back). A file at path is never overwritten.
func CreateOnce(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // the temporary name only: the file lives on at path
	if err := write(tmp, data); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

func write(f *os.File, data []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SyncDir makes a rename or link in dir durable. A file system where
// directories cannot be synced (EINVAL, as some do) has nothing more to do;
// any other error is returned.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

// LoadOrCreate reads the secret of size bytes at path or, when there is
// none, creates it from newSecret with CreateOnce and reads back what is
// there: every process starting on the data directory at once ends up with
// the same secret.
func LoadOrCreate(path string, size int, newSecret func([]byte) error) ([]byte, error) {
	buf, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		fresh := make([]byte, size)
		if err := newSecret(fresh); err != nil {
			return nil, err
		}
		if err := CreateOnce(path, fresh); err != nil {
			return nil, err
		}
		buf, err = os.ReadFile(path)
	}
	return buf, err
}

// Replace writes data to path in place of what is there, readable by the
// owner only: written in full and synced under a temporary name, then
// renamed over path, so that a crash leaves either the old file or the new
// one, whole.
func Replace(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone once renamed; removes a failed write's
	if err := write(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}
