package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// sqlTarget is a database the sql sink tests write to.
type sqlTarget struct {
	driver string
	dsn    string
	db     *sql.DB   // for the test's own statements
	pg     *pgServer // nil for SQLite
}

func sqliteTarget(t *testing.T) *sqlTarget {
	dsn := filepath.Join(t.TempDir(), "test.db")
	return &sqlTarget{driver: sqlSQLite, dsn: dsn, db: openTestDB(t, "sqlite", dsn)}
}

func postgresTarget(t *testing.T) *sqlTarget {
	srv := startPostgres(t)
	return &sqlTarget{driver: sqlPostgres, dsn: srv.DSN, db: openTestDB(t, "pgx", srv.DSN), pg: srv}
}

func openTestDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (tg *sqlTarget) exec(t *testing.T, q string) {
	t.Helper()
	if _, err := tg.db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rows returns every row of table as its columns cast to text and joined
// by |, NULL as "null", sorted.
func (tg *sqlTarget) rows(t *testing.T, table string, cols ...string) []string {
	t.Helper()
	casts := make([]string, len(cols))
	for i, c := range cols {
		casts[i] = "CAST(" + c + " AS TEXT)"
	}
	q := "SELECT " + strings.Join(casts, ", ") + " FROM " + table
	rows, err := tg.db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fields := make([]string, len(cols))
		for i, v := range vals {
			fields[i] = "null"
			if v.Valid {
				fields[i] = v.String
			}
		}
		out = append(out, strings.Join(fields, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// newSQLTestSink builds a sql sink on the target's table t.
func (tg *sqlTarget) sink(t *testing.T, table string, raw map[string]any) stages.Sink {
	t.Helper()
	params := map[string]any{"driver": tg.driver, "dsn": tg.dsn, "table": table}
	for k, v := range raw {
		params[k] = v
	}
	return stagetest.NewSink(t, "sql", params, stages.Info{})
}

// sqlCase writes batches to a table and checks the rows it ends with.
type sqlCase struct {
	name string
	// schema creates the table named by %s, with the columns of want.
	schema  string
	raw     map[string]any
	batches [][]string
	// bad lists, per batch, the indexes of the records that must fail
	// alone with a permanent error; badPG, if set, replaces it on
	// PostgreSQL.
	bad, badPG [][]int
	cols       []string // the columns want shows
	want       []string
	wantPG     []string // if set, replaces want on PostgreSQL
}

const sqlOrders = `CREATE TABLE %s (id integer PRIMARY KEY, name text NOT NULL, amount double precision, tags text)`

func sqlCases() []sqlCase {
	return []sqlCase{
		{
			name:   "columns from expressions",
			schema: sqlOrders,
			raw:    map[string]any{"columns": map[string]any{"id": "id", "name": "upper(name)", "amount": "amount", "tags": "tags"}},
			batches: [][]string{{
				`{"id": 1, "name": "ann", "amount": 2.5, "tags": ["a", "b"]}`,
				`{"id": 2, "name": "bob", "extra": true}`,
			}},
			cols: []string{"id", "name", "amount", "tags"},
			want: []string{`1|ANN|2.5|["a","b"]`, `2|BOB|null|null`},
		},
		{
			name:   "fields to the columns of the same name",
			schema: `CREATE TABLE %s (id integer PRIMARY KEY, name text NOT NULL DEFAULT 'none', amount double precision, tags text)`,
			batches: [][]string{{
				`{"id": 1, "name": "ann", "amount": 10.5, "tags": {"k": [1, true, null]}}`,
				`{"id": 2}`,
				`{"id": 3, "nope": 1}`,
				`{"id": 4, "name": null}`,
				`[1, 2]`,
				`{}`,
				`{"id": 5, "name": "eve", "amount": null}`,
			}},
			bad:  [][]int{{2, 3, 4, 5}},
			cols: []string{"id", "name", "amount", "tags"},
			want: []string{`1|ann|10.5|{"k":[1,true,null]}`, `2|none|null|null`, `5|eve|null|null`},
		},
		{
			name:   "upsert is idempotent on replay",
			schema: sqlOrders,
			raw:    map[string]any{"upsert_key": "id"},
			batches: [][]string{
				{`{"id": 1, "name": "a"}`, `{"id": 2, "name": "b", "amount": 1.5}`, `{"id": 1, "name": "a2"}`},
				{`{"id": 1, "name": "a"}`, `{"id": 2, "name": "b", "amount": 1.5}`, `{"id": 1, "name": "a2"}`},
				{`{"id": 2, "name": "b2"}`, `{"id": 3, "name": "c"}`},
				{`{"id": 2, "name": "b2"}`, `{"id": 3, "name": "c"}`},
			},
			cols: []string{"id", "name", "amount"},
			// An upsert sets the columns the record has: 2 keeps its
			// amount.
			want: []string{"1|a2|null", "2|b2|1.5", "3|c|null"},
		},
		{
			name:   "upsert with a composite key and columns",
			schema: `CREATE TABLE %s (day text, site text, hits integer, PRIMARY KEY (day, site))`,
			raw: map[string]any{
				"columns":    map[string]any{"day": "day", "site": "lower(site)", "hits": "hits"},
				"upsert_key": []any{"day", "site"},
				"max_batch":  2,
			},
			batches: [][]string{
				{`{"day": "d1", "site": "A", "hits": 1}`, `{"day": "d1", "site": "B", "hits": 2}`, `{"day": "d1", "site": "a", "hits": 3}`, `{"day": "d2", "site": "A", "hits": 4}`, `{"day": null, "site": "A", "hits": 5}`},
				{`{"day": "d1", "site": "A", "hits": 1}`, `{"day": "d1", "site": "B", "hits": 2}`, `{"day": "d1", "site": "a", "hits": 3}`, `{"day": "d2", "site": "A", "hits": 4}`},
			},
			bad:  [][]int{{4}, nil},
			cols: []string{"day", "site", "hits"},
			want: []string{"d1|a|3", "d1|b|2", "d2|a|4"},
		},
		{
			name:   "bad records fail alone",
			schema: sqlOrders,
			raw:    map[string]any{"columns": map[string]any{"id": "int(id)", "name": "name", "amount": "amount"}},
			batches: [][]string{
				{
					`{"id": 1, "name": "a"}`,
					`{"id": "x", "name": "b"}`,                 // the expression fails
					`{"id": 3}`,                                // NOT NULL
					`not json`,                                 // not a record
					`{"id": 1, "name": "again"}`,               // PRIMARY KEY
					`{"id": 6, "name": "f", "amount": "lots"}`, // not a number: PostgreSQL refuses it
					`{"id": 7, "name": "g", "amount": 7.5}`,
				},
				{`{"id": 8, "name": "h"}`, `{"id": 1, "name": "again"}`},
			},
			bad:    [][]int{{1, 2, 3, 4}, {1}},
			badPG:  [][]int{{1, 2, 3, 4, 5}, {1}},
			cols:   []string{"id", "name", "amount"},
			want:   []string{"1|a|null", "6|f|lots", "7|g|7.5", "8|h|null"},
			wantPG: []string{"1|a|null", "7|g|7.5", "8|h|null"},
		},
		{
			name:   "values of every kind",
			schema: `CREATE TABLE %s (id integer PRIMARY KEY, big bigint, f double precision, s text, b boolean, n integer, j text, t text)`,
			raw: map[string]any{"columns": map[string]any{
				"id": "id", "big": "big", "f": "f", "s": "s", "b": "b", "n": "n", "j": "j", "t": "t",
			}},
			batches: [][]string{{
				`{"id": 1, "big": 9007199254740993, "f": 0.5, "s": 42, "b": true, "n": "7", "j": {"z": 1, "a": [1.5, "x"]}, "t": "2024-05-01T12:00:00Z"}`,
				`{"id": 2, "big": null, "f": -3, "s": "é\"'", "b": false, "n": 8, "j": [], "t": "x"}`,
			}},
			cols:   []string{"id", "big", "f", "s", "b", "n", "j", "t"},
			want:   []string{`1|9007199254740993|0.5|42|1|7|{"a":[1.5,"x"],"z":1}|2024-05-01T12:00:00Z`, `2|null|-3.0|é"'|0|8|[]|x`},
			wantPG: []string{`1|9007199254740993|0.5|42|true|7|{"a":[1.5,"x"],"z":1}|2024-05-01T12:00:00Z`, `2|null|-3|é"'|false|8|[]|x`},
		},
		{
			name:   "a value that cannot be stored",
			schema: sqlOrders,
			raw:    map[string]any{"columns": map[string]any{"id": "id", "name": "name", "amount": `duration("1h")`}},
			batches: [][]string{{
				`{"id": 1, "name": "a"}`,
			}},
			bad:  [][]int{{0}},
			cols: []string{"id"},
		},
		{
			name:    "schema-qualified table",
			schema:  sqlOrders,
			raw:     map[string]any{"upsert_key": "id"},
			batches: [][]string{{`{"id": 1, "name": "a"}`}},
			cols:    []string{"id", "name"},
			want:    []string{"1|a"},
		},
		{
			name:    "names that are keywords",
			schema:  `CREATE TABLE %s ("order" integer PRIMARY KEY, "select" text)`,
			raw:     map[string]any{"columns": map[string]any{"order": "n", "select": "s"}, "upsert_key": "order"},
			batches: [][]string{{`{"n": 1, "s": "x"}`, `{"n": 1, "s": "y"}`}},
			cols:    []string{`"order"`, `"select"`},
			want:    []string{"1|y"},
		},
	}
}

func TestSQLSink(t *testing.T) {
	targets := []struct {
		name string
		open func(t *testing.T) *sqlTarget
	}{
		{"sqlite", sqliteTarget},
		{"postgres", postgresTarget},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			tg := target.open(t)
			for i, tt := range sqlCases() {
				t.Run(tt.name, func(t *testing.T) {
					table := fmt.Sprintf("t%d", i)
					tg.exec(t, fmt.Sprintf(tt.schema, table))
					if tt.name == "schema-qualified table" {
						table = "main." + table
						if tg.driver == sqlPostgres {
							table = "public." + strings.TrimPrefix(table, "main.")
						}
					}
					runSQLCase(t, tg, table, tt)
				})
			}
			t.Run("concurrent writes", func(t *testing.T) { testSQLConcurrent(t, tg) })
			t.Run("closed", func(t *testing.T) {
				tg.exec(t, fmt.Sprintf(sqlOrders, "closed"))
				sk := tg.sink(t, "closed", nil)
				if err := sk.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := sk.Write(context.Background(), stagetest.Msgs(`{"id": 1, "name": "a"}`)); !errors.Is(err, stages.ErrSinkClosed) {
					t.Errorf("write after close: %v", err)
				}
				if err := sk.Close(context.Background()); err != nil {
					t.Errorf("second close: %v", err)
				}
			})
			t.Run("a column added while writing", func(t *testing.T) {
				tg.exec(t, fmt.Sprintf(sqlOrders, "grows"))
				sk := tg.sink(t, "grows", nil)
				batch := []string{`{"id": 1, "name": "a", "note": "x"}`, `{"id": 2, "name": "b"}`}
				checkBatchErr(t, 0, sk.Write(context.Background(), stagetest.Msgs(batch...)), 2, []int{0})
				tg.exec(t, `ALTER TABLE grows ADD COLUMN note text`)
				checkBatchErr(t, 1, sk.Write(context.Background(), stagetest.Msgs(batch[0])), 1, nil)
				if got, want := tg.rows(t, "grows", "id", "note"), []string{"1|x", "2|null"}; !slices.Equal(got, want) {
					t.Errorf("rows: got %q, want %q", got, want)
				}
			})
			t.Run("start-up errors", func(t *testing.T) { testSQLStartErrors(t, tg) })
			if tg.pg == nil {
				t.Run("locked", func(t *testing.T) { testSQLiteLocked(t, tg) })
			}
			if tg.pg != nil {
				t.Run("read-only", func(t *testing.T) { testSQLReadOnly(t, tg) })
				t.Run("table dropped", func(t *testing.T) { testSQLTableDropped(t, tg) })
				// Last: it stops the server.
				t.Run("server down", func(t *testing.T) { testSQLServerDown(t, tg) })
			}
		})
	}
}

func runSQLCase(t *testing.T, tg *sqlTarget, table string, tt sqlCase) {
	t.Helper()
	sk := tg.sink(t, table, tt.raw)
	bad, want := tt.bad, tt.want
	if tg.driver == sqlPostgres {
		if tt.badPG != nil {
			bad = tt.badPG
		}
		if tt.wantPG != nil {
			want = tt.wantPG
		}
	}
	for b, batch := range tt.batches {
		err := sk.Write(context.Background(), stagetest.Msgs(batch...))
		var wantBad []int
		if b < len(bad) {
			wantBad = bad[b]
		}
		checkBatchErr(t, b, err, len(batch), wantBad)
	}
	if got := tg.rows(t, table, tt.cols...); !slices.Equal(got, want) {
		t.Errorf("rows:\ngot  %q\nwant %q", got, want)
	}
}

// checkBatchErr checks that err fails exactly the messages bad of a batch
// of n, each with a permanent error.
func checkBatchErr(t *testing.T, b int, err error, n int, bad []int) {
	t.Helper()
	if err == nil {
		if len(bad) > 0 {
			t.Errorf("batch %d: no error, want %v to fail", b, bad)
		}
		return
	}
	var be *stages.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("batch %d: %v, want a BatchError", b, err)
	}
	if len(be.Errs) != n {
		t.Fatalf("batch %d: %d errors for %d messages", b, len(be.Errs), n)
	}
	var got []int
	for i, err := range be.Errs {
		if err == nil {
			continue
		}
		got = append(got, i)
		if !stages.IsPermanent(err) {
			t.Errorf("batch %d message %d: %v is not permanent", b, i, err)
		}
		t.Logf("batch %d message %d: %v", b, i, err)
	}
	if !slices.Equal(got, bad) {
		t.Errorf("batch %d: messages %v failed, want %v", b, got, bad)
	}
}

// testSQLConcurrent writes from many goroutines to one sink at once.
func testSQLConcurrent(t *testing.T, tg *sqlTarget) {
	tg.exec(t, fmt.Sprintf(sqlOrders, "concurrent"))
	sk := tg.sink(t, "concurrent", map[string]any{
		"columns":    map[string]any{"id": "id", "name": `"w" + string(w)`, "amount": "id * 0.5"},
		"upsert_key": "id",
		"max_batch":  7,
	})
	const writers, batches, size = 6, 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				batch := make([]string, size)
				for i := range batch {
					batch[i] = fmt.Sprintf(`{"id": %d, "w": %d}`, (w*batches+b)*size+i, w)
				}
				if err := sk.Write(context.Background(), stagetest.Msgs(batch...)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := tg.rows(t, "concurrent", "COUNT(*)", "COUNT(DISTINCT name)", "SUM(amount)")
	n := writers * batches * size
	if want := fmt.Sprintf("%d|%d|%g", n, writers, float64(n*(n-1))/4); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// testSQLStartErrors checks that mistakes the database shows are
// start-up errors naming the parameter.
func testSQLStartErrors(t *testing.T, tg *sqlTarget) {
	tg.exec(t, `CREATE TABLE plain (id integer, name text)`)
	for _, tt := range []struct {
		name  string
		raw   map[string]any
		param string
	}{
		{"no such table", map[string]any{"table": "missing"}, "table"},
		{"no such table with columns", map[string]any{"table": "missing", "columns": map[string]any{"id": "id"}}, ""},
		{"no such column", map[string]any{"table": "plain", "columns": map[string]any{"idx": "id"}}, ""},
		{"upsert_key not a column", map[string]any{"table": "plain", "upsert_key": "nope"}, "upsert_key"},
		{"upsert_key not unique", map[string]any{"table": "plain", "upsert_key": "id"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"driver": tg.driver, "dsn": tg.dsn}
			for k, v := range tt.raw {
				raw[k] = v
			}
			spec := stagetest.Lookup(t, stages.RoleSink, "sql")
			sk, err := spec.NewSink(stagetest.Parse(t, spec, raw), stages.Info{})
			if err == nil {
				sk.Close(context.Background())
				t.Fatal("no error")
			}
			t.Log(err)
			var pe *stages.ParamError
			if errors.As(err, &pe) != (tt.param != "") || (pe != nil && pe.Param != tt.param) {
				t.Errorf("error %v: want it located on %q", err, tt.param)
			}
		})
	}
}

// testSQLServerDown stops the server: a write fails as a whole with an
// outage, a sink that cannot connect does not start, its error without
// the dsn's password, and once the server is back the same sink writes.
func testSQLServerDown(t *testing.T, tg *sqlTarget) {
	tg.exec(t, fmt.Sprintf(sqlOrders, "down"))
	sk := tg.sink(t, "down", nil)
	if err := tg.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	err := sk.Write(context.Background(), stagetest.Msgs(`{"id": 1, "name": "a"}`))
	checkOutage(t, err)

	const password = "s3cr3t-Pa55"
	dsn := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", password, tg.pg.Port)
	spec := stagetest.Lookup(t, stages.RoleSink, "sql")
	_, err = spec.NewSink(stagetest.Parse(t, spec, map[string]any{"driver": sqlPostgres, "dsn": dsn, "table": "down"}), stages.Info{})
	if err == nil {
		t.Fatal("a sink started with the server down")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Log(err)

	if err := tg.pg.Start(); err != nil {
		t.Fatal(err)
	}
	if err := sk.Write(context.Background(), stagetest.Msgs(`{"id": 1, "name": "a"}`)); err != nil {
		t.Fatalf("write once the server is back: %v", err)
	}
	// The test's own pool holds connections the stop ended.
	back := *tg
	back.db = openTestDB(t, "pgx", tg.dsn)
	if got, want := back.rows(t, "down", "id", "name"), []string{"1|a"}; !slices.Equal(got, want) {
		t.Errorf("rows: got %q, want %q", got, want)
	}
}

// checkOutage checks that err failed a whole batch as an outage.
func checkOutage(t *testing.T, err error) {
	t.Helper()
	var be *stages.BatchError
	if !stages.IsOutage(err) || errors.As(err, &be) {
		t.Errorf("got %v, want an outage of the whole batch", err)
	}
	t.Log(err)
}

// testSQLReadOnly turns the server read-only and back: writes fail with
// an outage meanwhile, and the same sink writes again after.
func testSQLReadOnly(t *testing.T, tg *sqlTarget) {
	tg.exec(t, fmt.Sprintf(sqlOrders, "ro"))
	sk := tg.sink(t, "ro", map[string]any{"upsert_key": "id"})
	setReadOnly := func(on bool) {
		if on {
			tg.exec(t, `ALTER SYSTEM SET default_transaction_read_only = on`)
		} else {
			tg.exec(t, `ALTER SYSTEM RESET default_transaction_read_only`)
		}
		tg.exec(t, `SELECT pg_reload_conf()`)
	}
	t.Cleanup(func() { setReadOnly(false) })
	setReadOnly(true)
	var err error
	// The sessions take the setting in when they next run a statement.
	natstest.WaitFor(t, 10*time.Second, "a write to fail", func() bool {
		err = sk.Write(context.Background(), stagetest.Msgs(`{"id": 1, "name": "a"}`))
		return err != nil
	})
	checkOutage(t, err)
	setReadOnly(false)
	natstest.WaitFor(t, 10*time.Second, "a write to succeed again", func() bool {
		err = sk.Write(context.Background(), stagetest.Msgs(`{"id": 2, "name": "b"}`))
		if err != nil && !stages.IsOutage(err) {
			t.Fatalf("write after read-only: %v, want success or an outage", err)
		}
		return err == nil
	})
}

// testSQLTableDropped drops the table under a running sink: the
// statement cannot work, and the batch fails as a whole, permanently.
func testSQLTableDropped(t *testing.T, tg *sqlTarget) {
	tg.exec(t, fmt.Sprintf(sqlOrders, "dropped"))
	sk := tg.sink(t, "dropped", nil)
	tg.exec(t, `DROP TABLE dropped`)
	err := sk.Write(context.Background(), stagetest.Msgs(`{"id": 1, "name": "a"}`, `{"id": 2, "name": "b"}`))
	var be *stages.BatchError
	if !stages.IsPermanent(err) || stages.IsOutage(err) || errors.As(err, &be) {
		t.Errorf("got %v, want a permanent error of the whole batch", err)
	}
	t.Log(err)
}

// testSQLiteLocked holds SQLite's write lock in another connection: the
// sink's writes fail with an outage once its busy timeout passes, and
// write again once the lock is released. A read-only database is an
// outage too.
func testSQLiteLocked(t *testing.T, tg *sqlTarget) {
	tg.exec(t, fmt.Sprintf(sqlOrders, "locked"))
	params := map[string]any{"driver": tg.driver, "dsn": tg.dsn + "?_busy_timeout=50", "table": "locked"}
	sk := stagetest.NewSink(t, "sql", params, stages.Info{})
	ctx := context.Background()
	conn, err := tg.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN EXCLUSIVE`); err != nil {
		t.Fatal(err)
	}
	checkOutage(t, sk.Write(ctx, stagetest.Msgs(`{"id": 1, "name": "a"}`)))
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := sk.Write(ctx, stagetest.Msgs(`{"id": 1, "name": "a"}`)); err != nil {
		t.Fatalf("write once the lock is released: %v", err)
	}

	params["dsn"] = "file:" + tg.dsn + "?mode=ro"
	ro := stagetest.NewSink(t, "sql", params, stages.Info{})
	checkOutage(t, ro.Write(ctx, stagetest.Msgs(`{"id": 2, "name": "b"}`)))
}

func TestSQLSinkParams(t *testing.T) {
	sqliteDSN := filepath.Join(t.TempDir(), "x.db")
	for _, tt := range []struct {
		name  string
		raw   map[string]any
		param string // the parameter the error is located on; "" for none
		not   string // what the error must not show
	}{
		{name: "sqlite", raw: map[string]any{"columns": map[string]any{"id": "id", "v": "a + b"}, "upsert_key": "id"}},
		{name: "postgres", raw: map[string]any{"driver": "postgres", "dsn": "host=db user=u password=pw dbname=x", "table": "s.t"}},
		{name: "unknown driver", raw: map[string]any{"driver": "mysql"}, param: "driver"},
		{name: "no driver", raw: map[string]any{"driver": nil}, param: "driver"},
		{name: "no dsn", raw: map[string]any{"dsn": nil}, param: "dsn"},
		{name: "empty dsn", raw: map[string]any{"dsn": ""}, param: "dsn"},
		{name: "bad postgres dsn", raw: map[string]any{"driver": "postgres", "dsn": "postgres://u:hunter22@db:port/x"}, param: "dsn", not: "hunter22"},
		{name: "no table", raw: map[string]any{"table": nil}, param: "table"},
		{name: "empty table", raw: map[string]any{"table": ""}, param: "table"},
		{name: "injection in table", raw: map[string]any{"table": `t; DROP TABLE t`}, param: "table"},
		{name: "quote in table", raw: map[string]any{"table": `t"x`}, param: "table"},
		{name: "table with three parts", raw: map[string]any{"table": "a.b.c"}, param: "table"},
		{name: "table with an empty part", raw: map[string]any{"table": "a."}, param: "table"},
		{name: "table starting with a digit", raw: map[string]any{"table": "1t"}, param: "table"},
		{name: "table too long for postgres", raw: map[string]any{"driver": "postgres", "dsn": "host=db", "table": strings.Repeat("t", 64)}, param: "table"},
		{name: "bad column name", raw: map[string]any{"columns": map[string]any{"a b": "x"}}, param: "columns"},
		{name: "column expression does not compile", raw: map[string]any{"columns": map[string]any{"a": "x +"}}, param: "columns"},
		{name: "empty columns", raw: map[string]any{"columns": map[string]any{}}, param: "columns"},
		{name: "upsert_key not in columns", raw: map[string]any{"columns": map[string]any{"a": "x"}, "upsert_key": "b"}, param: "upsert_key"},
		{name: "upsert_key twice", raw: map[string]any{"upsert_key": []any{"a", "a"}}, param: "upsert_key"},
		{name: "bad upsert_key", raw: map[string]any{"upsert_key": "a-b"}, param: "upsert_key"},
		{name: "empty upsert_key", raw: map[string]any{"upsert_key": []any{}}, param: "upsert_key"},
		{name: "max_batch 0", raw: map[string]any{"max_batch": 0}, param: "max_batch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"driver": "sqlite", "dsn": sqliteDSN, "table": "t"}
			for k, v := range tt.raw {
				if v == nil {
					delete(raw, k)
				} else {
					raw[k] = v
				}
			}
			_, errs := stagetest.Lookup(t, stages.RoleSink, "sql").ParseParams(raw)
			if tt.param == "" {
				if len(errs) > 0 {
					t.Fatalf("errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("want one error on %s, got %v", tt.param, errs)
			}
			var pe *stages.ParamError
			if !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Errorf("error %v: want it located on %s", errs[0], tt.param)
			}
			if tt.not != "" && strings.Contains(errs[0].Error(), tt.not) {
				t.Errorf("error %v shows %q", errs[0], tt.not)
			}
			t.Log(errs[0])
		})
	}
}

func TestSQLiteDSN(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"x.db", "x.db?_busy_timeout=10000&_txlock=immediate"},
		{"file:x.db?mode=rwc", "file:x.db?mode=rwc&_busy_timeout=10000&_txlock=immediate"},
		{"x.db?_timeout=5", "x.db?_timeout=5&_txlock=immediate"},
		{"x.db?_pragma=busy_timeout(1)&_txlock=deferred", "x.db?_pragma=busy_timeout(1)&_txlock=deferred"},
	} {
		if got := sqliteDSN(tt.in); got != tt.want {
			t.Errorf("sqliteDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
