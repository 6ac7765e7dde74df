package runner_test

import (
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// The conformance case of the sql sink, on SQLite (its tests in stages
// run it on PostgreSQL too).
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleSink, "sql", func(t *testing.T, e *conformanceEnv) conformanceStage {
			path := filepath.Join(e.dir, "out.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Exec(`CREATE TABLE orders (id integer PRIMARY KEY, total double precision NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			return conformanceStage{
				with: `{driver: sqlite, dsn: '` + path + `', table: orders, upsert_key: id, columns: {id: id, total: 'amount * 2'}}`,
				good: []string{`{"id": 1, "amount": 1.25}`, `{"id": 2, "amount": 5}`},
				bad: []string{
					`{"id": 3, "amount": "x"}`,  // the column's expression fails
					`{"id": 4, "amount": null}`, // and here too
					`not json`,
				},
				check: func(t *testing.T, _ []string) {
					rows, err := db.Query(`SELECT id || ':' || total FROM orders ORDER BY id`)
					if err != nil {
						t.Fatal(err)
					}
					defer rows.Close()
					var got []string
					for rows.Next() {
						var s string
						if err := rows.Scan(&s); err != nil {
							t.Fatal(err)
						}
						got = append(got, s)
					}
					if want := []string{"1:2.5", "2:10.0"}; !slices.Equal(got, want) {
						t.Errorf("rows: got %q, want %q", got, want)
					}
				},
			}
		}},
	)
}

// TestSQLSinkValidation checks that a bad table name is a validation
// error located at its line in the pipeline file.
func TestSQLSinkValidation(t *testing.T) {
	src := `name: bad-table
stages:
  - {name: in, source: generate, with: {count: 1}}
  - name: store
    sink: sql
    with:
      driver: sqlite
      dsn: out.db
      table: "orders; DROP TABLE orders"
`
	_, err := pipeline.Parse("bad.yaml", []byte(src), pipeline.Options{Registry: builtin.NewRegistry()})
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "bad.yaml:9:") || !strings.Contains(msg, "table") {
		t.Errorf("error %q: want it at bad.yaml:9 naming table", msg)
	}
}
