// Package pgtest runs a throw-away PostgreSQL cluster for a test package:
// one cluster per package (started on first use), a fresh database per test
// made from a template the package migrates once, all removed at exit.
//
//	var cluster = pgtest.Cluster{Template: migrate}
//	func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
//	func TestX(t *testing.T) { url := cluster.Database(t) … }
//
// The server runs as a child of the test binary (the kernel stops it should
// the binary die without cleaning up: Pdeathsig), on its own free port and a
// unix socket in its temporary directory. Without the PostgreSQL binaries a
// test is skipped with the reason, or fails when DOORLEDGER_REQUIRE_TOOLS=1.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/jackc/pgx/v5"
)

// Cluster is one test package's throw-away PostgreSQL cluster.
type Cluster struct {
	// Template prepares the template database every test's database is a
	// copy of (the package's migrations); url reaches it. Nil: empty.
	Template func(ctx context.Context, url string) error
	// Durable keeps fsync, synchronous_commit and full_page_writes on:
	// for benchmarks that measure what a commit costs.
	Durable bool

	once     sync.Once
	err      error // why the cluster is not there
	missing  bool  // the binaries are missing (skip rather than fail)
	dir      string
	socket   string
	port     int
	server   *exec.Cmd
	exited   chan struct{}
	mu       sync.Mutex    // CREATE DATABASE … TEMPLATE, one at a time
	n        atomic.Int64  // databases made
	creating atomic.Int64  // nanoseconds spent making them
	Started  time.Duration // how long initdb and the server's start took
	Migrated time.Duration // how long the template's migration took
}

// superuser is the cluster's bootstrap role (initdb -U).
const superuser = "doorledger"

// templateDB is the database every test's database copies.
const templateDB = "doorledger_template"

// debianGlob is where Debian's postgresql packages put initdb.
var debianGlob = "/usr/lib/postgresql/*/bin/initdb"

// Bin finds the directory of initdb and postgres: PATH first, then Debian's
// /usr/lib/postgresql/*/bin (not on PATH there), the newest version.
func Bin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob(debianGlob)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if len(dirs) == 0 {
		return "", errors.New("initdb not found on PATH nor under /usr/lib/postgresql/*/bin (Debian package postgresql)")
	}
	return filepath.Dir(dirs[0]), nil
}

// version reads the major version out of /usr/lib/postgresql/N/bin/initdb.
func version(p string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
	return n
}

// Main runs the package's tests and then stops and removes the cluster, if
// one was started, whether the tests passed or not.
func (c *Cluster) Main(m *testing.M) int {
	code := m.Run()
	if c.server != nil && testing.Verbose() {
		fmt.Fprintf(os.Stderr, "pgtest: cluster started in %v, template migrated in %v, %d databases made in %v on average\n",
			c.Started.Round(time.Millisecond), c.Migrated.Round(time.Millisecond), c.n.Load(), c.PerDatabase().Round(time.Millisecond))
	}
	if err := c.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest: stopping the cluster:", err)
	}
	return code
}

// Database returns the connection string of a fresh database for the test,
// a copy of the template; it is dropped when the test ends.
func (c *Cluster) Database(tb testing.TB) string {
	tb.Helper()
	return c.database(tb, templateDB)
}

// EmptyDatabase is Database without the template: an empty database (a
// copy of template0), for tests of what runs on one (migrations).
func (c *Cluster) EmptyDatabase(tb testing.TB) string {
	tb.Helper()
	return c.database(tb, "template0")
}

func (c *Cluster) database(tb testing.TB, template string) string {
	tb.Helper()
	c.once.Do(func() { c.err = c.start() })
	if c.err != nil {
		if c.missing && os.Getenv(testtool.RequireEnv) != "1" {
			tb.Skipf("SKIPPED: %v; set %s=1 to make this a failure", c.err, testtool.RequireEnv)
		}
		tb.Fatalf("pgtest: %v", c.err)
	}
	name := fmt.Sprintf("t%d", c.n.Add(1))
	ctx := context.Background()
	// FILE_COPY copies the template's files (its checkpoints cost little
	// with fsync off); PostgreSQL 15's default, WAL_LOG, writes the whole
	// copy to the WAL: 2.3 s against 0.9-1.9 s a database here under load
	// (BenchmarkNewDatabase in db/postgres).
	began := time.Now()
	c.mu.Lock()
	err := c.exec(ctx, "postgres", `CREATE DATABASE `+name+` TEMPLATE `+template+` STRATEGY FILE_COPY`)
	c.mu.Unlock()
	c.creating.Add(int64(time.Since(began)))
	if err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		// WITH (FORCE): a pool the test left open does not keep it.
		if err := c.exec(ctx, "postgres", `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("pgtest: drop database: %v", err)
		}
	})
	return c.URL(name)
}

// PerDatabase is the mean time a test's database took to make.
func (c *Cluster) PerDatabase() time.Duration {
	if n := c.n.Load(); n > 0 {
		return time.Duration(c.creating.Load() / n)
	}
	return 0
}

// URL is the connection string of the named database of the cluster, over
// its unix socket.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.socket, c.port, superuser, database)
}

// TCPURL is the same over TCP on 127.0.0.1.
func (c *Cluster) TCPURL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", superuser, c.port, database)
}

func (c *Cluster) exec(ctx context.Context, database, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL(database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// start runs initdb in a temporary directory and the server on it, then
// makes the template database.
func (c *Cluster) start() error {
	began := time.Now()
	bin, err := Bin()
	if err != nil {
		c.missing = true
		return err
	}
	cred, err := credential()
	if err != nil {
		return err
	}
	removeAbandoned()
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	if cred != nil {
		// initdb refuses to run as root: the directory goes to postgres.
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	c.socket = c.dir
	data := filepath.Join(c.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", superuser,
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		err = c.serve(bin, data, cred)
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		return err
	}
	c.Started = time.Since(began)
	ctx := context.Background()
	if err := c.exec(ctx, "postgres", `CREATE DATABASE `+templateDB); err != nil {
		return err
	}
	began = time.Now()
	if c.Template != nil {
		if err := c.Template(ctx, c.URL(templateDB)); err != nil {
			return fmt.Errorf("template: %w", err)
		}
	}
	c.Migrated = time.Since(began)
	return nil
}

// serve starts the server on a free port and waits until it accepts
// connections.
func (c *Cluster) serve(bin, data string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", c.socket,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=32MB"}
	if !c.Durable {
		// Throw-away data: what a crash would lose does not matter, and
		// each commit's flush would dominate the suite's time.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logf, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT (immediate shutdown) should the test binary die unannounced.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=postgres", c.socket, port, superuser))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			c.port, c.server, c.exited = port, cmd, exited
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("postgres exited: %s", strings.TrimSpace(string(log)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres did not accept connections within 30 s: %v", err)
		}
	}
}

// stop shuts the server down (fast shutdown: SIGINT) and removes the
// directory.
func (c *Cluster) stop() error {
	var errs []error
	if c.server != nil {
		c.server.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.server.Process.Kill()
			<-c.exited
			errs = append(errs, errors.New("postgres did not stop within 30 s: killed"))
		}
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// ownerFile holds the pid of the test binary a cluster's directory is for.
const ownerFile = "owner.pid"

// removeAbandoned removes the directories of clusters whose test binary died
// without cleaning up (a panic, a -timeout, a kill): the kernel stopped their
// server then (Pdeathsig), and the next test binary removes what is left.
func removeAbandoned() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not one of ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // its test binary is alive (or the pid is not ours to judge)
		}
		os.RemoveAll(dir)
	}
}

// credential is whom to run initdb and the server as: the postgres user
// when running as root (initdb refuses root), else nil (ourselves).
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a port no one listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
