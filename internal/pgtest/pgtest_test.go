package pgtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/doorledger/doorledger/internal/testtool"
	"github.com/jackc/pgx/v5"
)

// cluster's template holds one table with one row.
var cluster = Cluster{Template: func(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE t (n int); INSERT INTO t VALUES (1)`)
	return err
}}

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

// Each test's database is a copy of the template of its own: what one test
// writes, another does not see.
func TestDatabasesAreFreshCopies(t *testing.T) {
	ctx := context.Background()
	count := func(url string) int {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b := cluster.Database(t), cluster.Database(t)
	if a == b {
		t.Fatalf("two databases at one address: %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if n, m := count(a), count(b); n != 2 || m != 1 {
		t.Fatalf("rows: %d in the written database, %d in the other; want 2 and 1", n, m)
	}
	// The same server over TCP.
	tcp, err := pgx.Connect(ctx, cluster.TCPURL("postgres"))
	if err != nil {
		t.Fatalf("over TCP: %v", err)
	}
	tcp.Close(ctx)
}

// Without the binaries (none on PATH, none where Debian puts them) a test
// is skipped with the reason, unless the tools are required.
func TestSkipsWithoutBinaries(t *testing.T) {
	if os.Getenv(testtool.RequireEnv) == "1" {
		t.Skipf("%s=1 turns the skip into a failure, which this test cannot show", testtool.RequireEnv)
	}
	t.Setenv("PATH", t.TempDir())
	glob := debianGlob
	debianGlob = "/nonexistent/*/bin/initdb"
	defer func() { debianGlob = glob }()
	var none Cluster
	var sub *testing.T
	t.Run("missing", func(t *testing.T) {
		sub = t
		none.Database(t)
	})
	if !sub.Skipped() {
		t.Fatal("a test went on without PostgreSQL binaries")
	}
	if none.server != nil || none.dir != "" {
		t.Fatal("a cluster half-started")
	}
}

// The directory of a cluster whose test binary died is removed by the next
// start; one whose binary lives is left alone.
func TestRemoveAbandoned(t *testing.T) {
	dirOf := func(pid int) string {
		t.Helper()
		dir, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	abandoned, alive := dirOf(dead.Process.Pid), dirOf(os.Getpid())
	removeAbandoned()
	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("the directory of a dead test binary is still there: %v", err)
	}
	if _, err := os.Stat(alive); err != nil {
		t.Errorf("the directory of a live test binary went: %v", err)
	}
}
