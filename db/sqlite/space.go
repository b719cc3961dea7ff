package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorledger/doorledger"
)

// Space keeps the database writable when its disk fills up (issue 19, "Disk
// full"; docs/reliability.md). Two defences, so that a revoke (and the
// device's confirmation of it, and the alert about the disk) can still
// commit while the disk is full:
//
//   - A floor: unlock ingest (MQTT, vendor API, CSV import) is refused with
//     EUNAVAILABLE while the filesystem has less than Floor bytes free, so
//     the last Floor bytes are left to everything else. Devices and vendors
//     keep what was refused and send it again; nothing refused was
//     acknowledged.
//   - A reserve: a file of Reserve bytes kept in the data directory while
//     space allows. Something else on the disk (a log, a backup) can still
//     take the last byte; the first sign of a full disk (free space below the
//     floor, or any write failing with SQLITE_FULL / ENOSPC) deletes the file,
//     which gives those bytes back to the database.
//
// The episode ends when free space is at least Floor + Reserve again: the
// reserve is written back and ingest resumes, without a restart. Each episode
// is recorded (disk_full_episodes) and mailed to the admins once.
type Space struct {
	db *DB
	// Floor is the free space below which ingest is refused; Reserve the size
	// of the reserve file (0: none). Set before Run.
	Floor, Reserve int64

	full atomic.Bool
	mu   sync.Mutex    // the reserve file
	kick chan struct{} // wakes Run at once
	// free measures the space left (statfs, and the page limit when one is
	// set); a variable for tests.
	free func(ctx context.Context) (int64, error)
}

// Default sizes: 32 MiB is room for thousands of revokes and their mail and
// for the WAL's checkpoints (the WAL is cut back to 16 MiB); 8 MiB of reserve
// is still hundreds of revokes if the floor was eaten by someone else.
const (
	DefaultSpaceFloor   = 32 << 20
	DefaultSpaceReserve = 8 << 20
)

func newSpace(db *DB) *Space {
	s := &Space{db: db, Floor: DefaultSpaceFloor, Reserve: DefaultSpaceReserve, kick: make(chan struct{}, 1)}
	s.free = s.measure
	return s
}

// Space returns the database's guard of free space.
func (db *DB) Space() *Space { return db.space }

// ReservePath is the reserve file, beside the database.
func (s *Space) ReservePath() string { return filepath.Join(filepath.Dir(s.db.Path), "space.reserve") }

// Full reports whether ingest is refused now for want of space (the banner).
func (s *Space) Full() bool { return s.full.Load() }

// measure returns the bytes the database may still grow by: the
// filesystem's free space, or less when a page limit is set
// (SetMaxPages, the test's fallback where no small filesystem can be made).
func (s *Space) measure(ctx context.Context) (int64, error) {
	free, err := freeBytes(filepath.Dir(s.db.Path))
	if err != nil {
		return 0, err
	}
	if limit := s.db.maxPages.Load(); limit > 0 {
		var pages, size int64
		if err := s.db.read.QueryRowContext(ctx, `SELECT page_count, page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&pages, &size); err != nil {
			return 0, err
		}
		free = min(free, max(limit-pages, 0)*size)
	}
	return free, nil
}

// Admit is asked before ingest writes: errDiskFull (EUNAVAILABLE) while the
// disk is full or free space is below the floor, which starts an episode.
// Other writes are never refused here.
func (s *Space) Admit(ctx context.Context) error {
	if s.full.Load() {
		return errDiskFull
	}
	free, err := s.free(ctx)
	if err != nil {
		slog.Warn("free space not measured", "err", err)
		return nil // SQLITE_FULL still tells
	}
	if free < s.Floor {
		s.enter(fmt.Sprintf("%d bytes free, below the floor of %d", free, s.Floor))
		return errDiskFull
	}
	return nil
}

// failed is told of every write error; a disk-full one starts an episode.
// It returns err as diskFull does.
func (s *Space) failed(err error) error {
	if err != nil && !errors.Is(err, errDiskFull) && isDiskFull(err) {
		s.enter(err.Error())
	}
	return diskFull(err)
}

// enter starts an episode: ingest is refused from now on and the reserve is
// given back to the database. Run records and mails it.
func (s *Space) enter(why string) {
	if s.full.Swap(true) {
		return
	}
	s.mu.Lock()
	freed := int64(0)
	if fi, err := os.Stat(s.ReservePath()); err == nil {
		freed = fi.Size()
		if err := os.Remove(s.ReservePath()); err != nil {
			slog.Error("disk full: reserve not released", "err", err)
			freed = 0
		}
	}
	s.mu.Unlock()
	slog.Error("disk full: ingest refused until space returns", "why", why, "reserve_released", freed)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run checks the space every interval (and at once when an episode starts)
// until ctx ends: it records and mails an episode once, ends it and writes
// the reserve back when space has returned, and keeps the reserve otherwise.
func (s *Space) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Check(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("disk space check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Check does one round of Run (one goroutine at a time).
func (s *Space) Check(ctx context.Context) error {
	free, err := s.free(ctx)
	if err != nil {
		return err
	}
	if !s.full.Load() && free < s.Floor {
		s.enter(fmt.Sprintf("%d bytes free, below the floor of %d", free, s.Floor))
		if free, err = s.free(ctx); err != nil {
			return err
		}
	}
	if s.full.Load() {
		if free < s.resumeAt() {
			return s.record(ctx, free)
		}
		if err := s.writeReserve(); err != nil {
			return err
		}
		if err := s.end(ctx); err != nil {
			// Resume anyway: the episode is closed at the next check.
			slog.Warn("disk full: end of episode not recorded", "err", err)
		}
		s.full.Store(false)
		slog.Info("disk space returned: ingest resumes", "free", free)
		return nil
	}
	if err := s.end(ctx); err != nil { // one left open by a restart
		return err
	}
	if free >= s.Floor+s.Reserve {
		return s.writeReserve()
	}
	return nil
}

// minResume is the least free space at which an episode ends, whatever the
// floor and reserve: with both 0 (no floor, no reserve) a disk at 0 bytes
// free would otherwise end the episode it just started, once a second.
const minResume = 1 << 20

// resumeAt is the free space at which an episode ends: room for the reserve
// to be written back with the floor still free.
func (s *Space) resumeAt() int64 { return max(s.Floor+s.Reserve, minResume) }

// record writes the episode and the admins' alert, once per episode (an
// episode left open by a restart is the same one).
func (s *Space) record(ctx context.Context, free int64) error {
	var open int64
	err := s.db.read.QueryRowContext(ctx, `SELECT count(*) FROM disk_full_episodes WHERE ended_at IS NULL`).Scan(&open)
	if err != nil || open > 0 {
		return err
	}
	tx, err := s.db.BeginTx(doorledger.NewSystemContext(ctx, "system"))
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO disk_full_episodes (started_at, free_bytes) VALUES (?, ?) RETURNING id`,
		formatTime(tx.now), free).Scan(&id); err != nil {
		return fmt.Errorf("record disk-full episode: %w", err)
	}
	body := fmt.Sprintf("The disk of the portal's data directory (%s) is full: %d bytes are free, below the %d bytes the portal keeps for revokes.\n\n"+
		"Until space is freed, the portal refuses door events from devices (they keep them and send them again) and from vendors (HTTP 503 with Retry-After). Nothing it acknowledged is lost. Revoking and enabling devices, and the rest of the portal, still work.\n\n"+
		"Free at least %d bytes on that disk; ingest resumes by itself, without a restart.\n",
		filepath.Dir(s.db.Path), free, s.Floor, s.resumeAt()-free)
	if err := tx.alertEach(ctx, &doorledger.Message{Subject: "Doorledger: the data disk is full; door events are refused", Body: body, Kind: "alert"},
		fmt.Sprintf("disk-full:%d", id), `SELECT email FROM users WHERE role = 'admin' AND disabled = 0 ORDER BY id`); err != nil {
		return err
	}
	return tx.Commit()
}

// end closes an open episode. It takes the write lock only when there is one.
func (s *Space) end(ctx context.Context) error {
	var open int64
	if err := s.db.read.QueryRowContext(ctx, `SELECT count(*) FROM disk_full_episodes WHERE ended_at IS NULL`).Scan(&open); err != nil || open == 0 {
		return err
	}
	tx, err := s.db.BeginTx(doorledger.NewSystemContext(ctx, "system"))
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE disk_full_episodes SET ended_at = ? WHERE ended_at IS NULL`, formatTime(tx.now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	return tx.Commit()
}

// writeReserve writes the reserve file unless it is there already: zeros
// written (not a sparse file), so its blocks are really taken, and synced.
// On failure nothing is left half-written.
func (s *Space) writeReserve() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.ReservePath()
	if s.Reserve <= 0 {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() == s.Reserve {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			err = fmt.Errorf("reserve: %w", err)
		}
	}()
	if _, err := io.CopyN(f, zeros{}, s.Reserve); err != nil {
		return err
	}
	return f.Sync()
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// SetMaxPages limits the database to n pages (PRAGMA max_page_count on the
// writer; 0: no limit): a disk that fills up, for tests where no small
// filesystem can be mounted. Free space is then measured within the limit.
func (db *DB) SetMaxPages(ctx context.Context, n int64) error {
	limit := n
	if n <= 0 {
		limit = 1<<32 - 2 // SQLite's default
	}
	if _, err := db.write.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, limit)); err != nil {
		return err
	}
	db.maxPages.Store(max(n, 0))
	return nil
}
