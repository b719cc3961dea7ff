package db

// SetBurstMemoryMax sets how many recorded times a group's burst check may
// keep in memory before it counts each event in the database, and returns
// the previous bound. For tests; not safe while unlocks are recorded.
func SetBurstMemoryMax(n int) int {
	old := burstMemoryMax
	burstMemoryMax = n
	return old
}
