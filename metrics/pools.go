package metrics

import (
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// The database pools under one naming, whichever the backend: SQLite's two
// database/sql pools ("sqlite_write", "sqlite_read") and PostgreSQL's pgxpool
// ("postgres") are doorledger_db_pool_*{pool=…}. A figure only one kind of
// pool keeps (database/sql counts no acquires; pgxpool no connections closed
// for the idle limit) is exported only for the pools that keep it.

// PoolStats are one pool's figures at a scrape.
type PoolStats struct {
	MaxOpen  int64         // the most connections the pool opens
	Open     int64         // connections open now (in use, idle, being opened)
	InUse    int64         // connections handed out now
	Idle     int64         // connections open and free now
	Waits    int64         // acquires that found no free connection and waited (since the pool opened)
	WaitTime time.Duration // the time they waited, in all
	// Acquires are the pool's acquires; nil for a pool that does not count
	// them (database/sql).
	Acquires *AcquireStats
	// Closed are connections the pool closed by its limits, by reason
	// ("max_lifetime", "max_idle_time", "max_idle_conns").
	Closed map[string]int64
}

// AcquireStats are the acquires of a pool that counts them (pgxpool).
type AcquireStats struct {
	Count    int64         // acquires that got a connection
	Time     time.Duration // how long they took, in all
	Canceled int64         // acquires whose context ended first
}

// SQLPool reads a database/sql pool's figures.
func SQLPool(db *sql.DB) func() PoolStats {
	return func() PoolStats {
		st := db.Stats()
		return PoolStats{MaxOpen: int64(st.MaxOpenConnections), Open: int64(st.OpenConnections), InUse: int64(st.InUse),
			Idle: int64(st.Idle), Waits: st.WaitCount, WaitTime: st.WaitDuration,
			Closed: map[string]int64{"max_lifetime": st.MaxLifetimeClosed, "max_idle_time": st.MaxIdleTimeClosed, "max_idle_conns": st.MaxIdleClosed}}
	}
}

// PgxPool reads a pgxpool's figures. Its "empty acquires" are database/sql's
// waits: acquires that found no idle connection and waited for one to be
// released or opened.
func PgxPool(p *pgxpool.Pool) func() PoolStats {
	return func() PoolStats {
		st := p.Stat()
		return PoolStats{MaxOpen: int64(st.MaxConns()), Open: int64(st.TotalConns()), InUse: int64(st.AcquiredConns()),
			Idle: int64(st.IdleConns()), Waits: st.EmptyAcquireCount(), WaitTime: st.EmptyAcquireWaitTime(),
			Acquires: &AcquireStats{Count: st.AcquireCount(), Time: st.AcquireDuration(), Canceled: st.CanceledAcquireCount()},
			Closed:   map[string]int64{"max_lifetime": st.MaxLifetimeDestroyCount(), "max_idle_time": st.MaxIdleDestroyCount()}}
	}
}

var (
	descPoolMaxOpen  = prometheus.NewDesc("doorledger_db_pool_max_open_connections", "The most connections a database pool opens.", []string{"pool"}, nil)
	descPoolOpen     = prometheus.NewDesc("doorledger_db_pool_open_connections", "Connections a database pool has open now (in use, idle, being opened).", []string{"pool"}, nil)
	descPoolInUse    = prometheus.NewDesc("doorledger_db_pool_in_use_connections", "Connections of a database pool in use now.", []string{"pool"}, nil)
	descPoolIdle     = prometheus.NewDesc("doorledger_db_pool_idle_connections", "Connections of a database pool open and free now.", []string{"pool"}, nil)
	descPoolWaits    = prometheus.NewDesc("doorledger_db_pool_waits_total", "Acquires that found no free connection and waited for one.", []string{"pool"}, nil)
	descPoolWaitTime = prometheus.NewDesc("doorledger_db_pool_wait_seconds_total", "Time spent waiting for a free connection.", []string{"pool"}, nil)
	descPoolAcquires = prometheus.NewDesc("doorledger_db_pool_acquires_total", "Connections acquired from a pool that counts them (PostgreSQL's).", []string{"pool"}, nil)
	descPoolAcqTime  = prometheus.NewDesc("doorledger_db_pool_acquire_seconds_total", "Time the acquires took, in all (PostgreSQL's pool).", []string{"pool"}, nil)
	descPoolCanceled = prometheus.NewDesc("doorledger_db_pool_canceled_acquires_total", "Acquires given up because their request ended first (PostgreSQL's pool).", []string{"pool"}, nil)
	descPoolClosed   = prometheus.NewDesc("doorledger_db_pool_closed_total", "Connections a pool closed by its limits, by reason.", []string{"pool", "reason"}, nil)
	poolDescs        = []*prometheus.Desc{descPoolMaxOpen, descPoolOpen, descPoolInUse, descPoolIdle, descPoolWaits,
		descPoolWaitTime, descPoolAcquires, descPoolAcqTime, descPoolCanceled, descPoolClosed}
)

// collectPool sends one pool's figures.
func collectPool(ch chan<- prometheus.Metric, name string, st PoolStats) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name}, labels...)...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{name}, labels...)...)
	}
	gauge(descPoolMaxOpen, float64(st.MaxOpen))
	gauge(descPoolOpen, float64(st.Open))
	gauge(descPoolInUse, float64(st.InUse))
	gauge(descPoolIdle, float64(st.Idle))
	counter(descPoolWaits, float64(st.Waits))
	counter(descPoolWaitTime, st.WaitTime.Seconds())
	if a := st.Acquires; a != nil {
		counter(descPoolAcquires, float64(a.Count))
		counter(descPoolAcqTime, a.Time.Seconds())
		counter(descPoolCanceled, float64(a.Canceled))
	}
	for reason, n := range st.Closed {
		counter(descPoolClosed, float64(n), reason)
	}
}
