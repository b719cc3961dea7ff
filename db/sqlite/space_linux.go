package sqlite

import "syscall"

// freeBytes returns the space on dir's filesystem that an unprivileged
// writer may still use.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
