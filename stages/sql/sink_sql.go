package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// The databases of the sql sink.
const (
	sqlPostgres = "postgres"
	sqlSQLite   = "sqlite"
)

const (
	// defaultSQLMaxBatch is the default of the sql sink's max_batch: rows
	// in one INSERT statement.
	defaultSQLMaxBatch = 500
	// sqlOpenTimeout bounds the checks against the database that the sql
	// sink makes when it opens.
	sqlOpenTimeout = 30 * time.Second
	// sqlBusyTimeout is how long a SQLite connection waits for a lock
	// another connection holds, unless the dsn says otherwise.
	sqlBusyTimeout = 10 * time.Second
	// sqlSavepoint is the savepoint each row gets when a batch is
	// written row by row.
	sqlSavepoint = "sluice_row"
)

// maxSQLParams is how many bind parameters one statement may have:
// PostgreSQL's protocol counts them in 16 bits, and SQLite's default
// SQLITE_MAX_VARIABLE_NUMBER is 32766.
var maxSQLParams = map[string]int{sqlPostgres: 65535, sqlSQLite: 32766}

func sqlSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "sql",
		Summary: "Insert or upsert records into a PostgreSQL or SQLite table",
		Doc: `Writes each record as one row of table, through database/sql: ` +
			`driver postgres uses pgx, driver sqlite the pure Go modernc.org/sqlite ` +
			`(no C compiler needed). dsn is the connection string: a URL such as ` +
			`postgres://user:password@host:5432/db?sslmode=disable or key=value ` +
			`pairs for PostgreSQL, a file path or file: URI for SQLite. It may hold ` +
			`a password: write it as ${VAR} to take it from the environment. The ` +
			`sink never logs the dsn, and takes its password out of error messages.

With columns, each column is set to the result of its expression over the ` +
			`record (fields are top-level names, msg holds the metadata, as in map); ` +
			`every record sets every column listed. Without columns, each top-level ` +
			`field of a record goes to the column of the same name, and a record ` +
			`sets only the columns it has fields for (the others take their ` +
			`defaults, and an upsert leaves them alone). The sink reads the table's ` +
			`columns when it opens, and again when a record has a field it does not ` +
			`know: a field with no column of that name is an error for that record, ` +
			`not silently dropped (map the record, or list columns, to leave fields ` +
			`out). Names are matched and quoted exactly as written, so they are ` +
			`case-sensitive: a PostgreSQL table created without quotes has ` +
			`lower-case names. Values go in as they are: numbers, strings, true and ` +
			`false, null as NULL, objects and arrays as JSON text (for a json or ` +
			`jsonb column, or text); PostgreSQL converts each to the column's type ` +
			`(the string "42" fits an integer column), SQLite stores it with the ` +
			`column's affinity.

Each Write runs its batch in one transaction, in INSERT statements of up to ` +
			`max_batch rows, and commits before it returns: a record is ` +
			`acknowledged only once it is committed. Without upsert_key delivery is ` +
			`at-least-once: a batch redelivered after a crash is inserted again. ` +
			`With upsert_key, every INSERT is an upsert (INSERT ... ON CONFLICT ` +
			`(upsert_key) DO UPDATE SET the other columns, on both databases), so a ` +
			`replay rewrites the same rows and the table ends up as if each record ` +
			`was written once: effectively once. upsert_key must name a primary key ` +
			`or unique constraint of the table (checked when the sink opens), and ` +
			`every record must give it a non-null value. Records of one batch that ` +
			`share a key are applied in order: the last one wins. Across batches ` +
			`the last write wins too, so a record redelivered late overwrites a ` +
			`newer record of its key written meanwhile.

Failures: a record that is not a JSON object, whose expression fails, whose ` +
			`value cannot be stored, or with a field the table lacks, goes to the ` +
			`dead-letter stream and the rest of its batch is committed. When the ` +
			`database refuses a statement because of the data of a row (a ` +
			`constraint such as NOT NULL, UNIQUE, CHECK or a foreign key; a value ` +
			`the column's type does not accept; too long a string), the sink ` +
			`rolls back and writes the batch again row by row, each row under a ` +
			`savepoint, so that only the rows the database refuses go to the ` +
			`dead-letter stream (a column dropped since the sink read the table ` +
			`fails only the records that set it). Other errors fail the batch ` +
			`as a whole. When the database cannot take writes for now (the ` +
			`connection refused, reset or timed out; the server shutting down, ` +
			`starting up, read-only or out of resources, such as a full disk or ` +
			`too many connections; a deadlock, serialization failure or lock ` +
			`conflict; for SQLite, a database locked by another process past the ` +
			`busy timeout, read-only, full or that cannot be opened) the error is ` +
			`an outage: the runner holds the stage, keeping its records and ` +
			`trying again until the database is back, and dead-letters none of ` +
			`them. When PostgreSQL refuses the statement itself (SQLSTATE class ` +
			`42: the table dropped or a permission revoked since the sink ` +
			`opened) the batch goes to the dead-letter stream at once, as no ` +
			`retry fixes it, and can be replayed once the table is fixed. Any ` +
			`other error is retried with the pipeline's backoff. ` +
			`Write is safe for concurrent use; SQLite connections are limited to ` +
			`one, as SQLite writes one transaction at a time, wait up to 10s for a ` +
			`lock held by another process (_busy_timeout in the dsn changes it) and ` +
			`take the write lock when a transaction begins (_txlock=immediate). ` +
			`The sink does not create the table.

Example:

    - name: store
      sink: sql
      with:
        driver: postgres
        dsn: ${ORDERS_DSN}
        table: public.orders
        columns: {id: id, customer: upper(customer), amount: amount, seen: msg.event_time}
        upsert_key: [id]`,
		Params: []stages.Param{
			{Name: "driver", Type: stages.TypeString, Required: true, Enum: []string{sqlPostgres, sqlSQLite}, Doc: "The database: postgres (PostgreSQL, through pgx) or sqlite (through modernc.org/sqlite)."},
			{Name: "dsn", Type: stages.TypeString, Required: true, Doc: "Connection string: a postgres:// URL or key=value pairs, or a SQLite file path or file: URI (in a deployed pipeline, a SQLite path resolves under the worker's data directory, and a file: URI is refused). Never logged; use ${VAR} for a password."},
			{Name: "table", Type: stages.TypeString, Required: true, Doc: "The table to write: a name, or schema.name; letters, digits and _, not starting with a digit; case-sensitive."},
			{Name: "columns", Type: stages.TypeStringMap, Doc: "Column name to expression over the record; without it, each top-level field goes to the column of its name."},
			{Name: "upsert_key", Type: stages.TypeStringList, Doc: "Columns of a primary key or unique constraint: rows with the same key are updated instead of inserted again, so replays are idempotent."},
			{Name: "max_batch", Type: stages.TypeInt, Default: defaultSQLMaxBatch, Doc: "Most rows in one INSERT statement; a larger batch runs several statements in its one transaction."},
		},
		Check:   checkSQLSink,
		Paths:   sqlPaths,
		NewSink: newSQLSink,
	}
}

// sqlIdent is a name the sql sink accepts for a table, schema or column.
var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxPostgresIdent is the longest identifier PostgreSQL keeps, in bytes.
const maxPostgresIdent = 63

func checkSQLSink(p stages.Params) error {
	driver := p.String("driver")
	if p.String("dsn") == "" {
		return stages.ParamErrorf("dsn", "must not be empty")
	}
	if driver == sqlPostgres {
		if _, err := pgx.ParseConfig(p.String("dsn")); err != nil {
			// The parser's message may quote the dsn: leave it out.
			return stages.ParamErrorf("dsn", "not a valid PostgreSQL connection string (want a URL such as postgres://user@host:5432/db or key=value pairs such as host=h dbname=db)")
		}
	}
	if _, _, err := splitSQLTable(p.String("table"), driver); err != nil {
		return stages.ParamErrorf("table", "%v", err)
	}
	cols := p.StringMap("columns")
	if p.Has("columns") && len(cols) == 0 {
		return stages.ParamErrorf("columns", "must name at least one column")
	}
	for _, name := range slices.Sorted(maps.Keys(cols)) {
		if err := checkSQLIdent(name, driver); err != nil {
			return stages.ParamErrorf("columns", "column %v", err)
		}
		if _, err := stages.CompileExpr(cols[name]); err != nil {
			return stages.ParamErrorf("columns", "%s: expression does not compile: %s", name, errtext.OneLine(err.Error()))
		}
	}
	key := p.Strings("upsert_key")
	if p.Has("upsert_key") && len(key) == 0 {
		return stages.ParamErrorf("upsert_key", "must name at least one column")
	}
	for i, name := range key {
		if err := checkSQLIdent(name, driver); err != nil {
			return stages.ParamErrorf("upsert_key", "column %v", err)
		}
		if slices.Contains(key[:i], name) {
			return stages.ParamErrorf("upsert_key", "column %q is listed twice", name)
		}
		if cols != nil {
			if _, ok := cols[name]; !ok {
				return stages.ParamErrorf("upsert_key", "column %q is not one of columns", name)
			}
		}
	}
	if n := p.Int("max_batch"); n < 1 {
		return stages.ParamErrorf("max_batch", "must be >= 1 (got %d)", n)
	}
	return nil
}

// checkSQLIdent checks a table, schema or column name.
func checkSQLIdent(name, driver string) error {
	if !sqlIdent.MatchString(name) {
		return fmt.Errorf("%q is not a valid name: use letters, digits and _, not starting with a digit", name)
	}
	if driver == sqlPostgres && len(name) > maxPostgresIdent {
		return fmt.Errorf("%q is longer than PostgreSQL's %d bytes", name, maxPostgresIdent)
	}
	return nil
}

// splitSQLTable splits a table parameter into its schema (maybe empty) and
// name.
func splitSQLTable(table, driver string) (schema, name string, err error) {
	if table == "" {
		return "", "", errors.New("must not be empty")
	}
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return "", "", fmt.Errorf("%q: want a name or schema.name", table)
	}
	for _, part := range parts {
		if err := checkSQLIdent(part, driver); err != nil {
			return "", "", err
		}
	}
	if len(parts) == 2 {
		return parts[0], parts[1], nil
	}
	return "", parts[0], nil
}

// quoteIdent quotes a name for SQL. PostgreSQL and SQLite both take
// standard SQL's double quotes, a quote inside doubled.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// sqlSink writes records as rows of one table. It is safe for concurrent
// use: database/sql pools the connections, and each Write evaluates its
// expressions on a set of its own from exprs.
type sqlSink struct {
	driver string
	db     *sql.DB
	table  string // as given, for messages
	schema string // "" for the search path or main database
	name   string
	qtable string // quoted for SQL
	// cols and srcs are the columns parameter, sorted by column; exprs
	// pools compiled copies of srcs. cols is nil without columns.
	cols  []string
	srcs  []string
	exprs sync.Pool
	// key is upsert_key; nil for plain inserts.
	key     []string
	maxRows int
	// known is the table's columns that a record's field may set, read
	// when the sink opens and again when a record has a field it lacks.
	// Only without columns.
	known     atomic.Pointer[map[string]bool]
	refreshMu sync.Mutex
	// secret is what error messages must not show: the password.
	secret string
	closed atomic.Bool
}

var _ stages.Sink = (*sqlSink)(nil)

func newSQLSink(p stages.Params, _ stages.Info) (stages.Sink, error) {
	if err := checkSQLSink(p); err != nil {
		return nil, err
	}
	s := &sqlSink{
		driver:  p.String("driver"),
		table:   p.String("table"),
		key:     p.Strings("upsert_key"),
		maxRows: p.Int("max_batch"),
	}
	s.schema, s.name, _ = splitSQLTable(s.table, s.driver)
	s.qtable = quoteIdent(s.name)
	if s.schema != "" {
		s.qtable = quoteIdent(s.schema) + "." + s.qtable
	}
	if cols := p.StringMap("columns"); cols != nil {
		s.cols = slices.Sorted(maps.Keys(cols))
		s.srcs = make([]string, len(s.cols))
		for i, c := range s.cols {
			s.srcs[i] = cols[c]
		}
	}
	s.exprs.New = func() any {
		es := make([]*stages.Expr, len(s.srcs))
		for i, src := range s.srcs {
			es[i], _ = stages.CompileExpr(src) // compiled once by Check already
		}
		return &es
	}

	dsn := p.String("dsn")
	var err error
	switch s.driver {
	case sqlPostgres:
		cfg, _ := pgx.ParseConfig(dsn) // parsed by Check already
		s.secret = cfg.Password
		s.db, err = sql.Open("pgx", dsn)
	case sqlSQLite:
		s.db, err = sql.Open("sqlite", sqliteDSN(dsn))
	}
	if err != nil {
		return nil, s.fail("open", err)
	}
	switch s.driver {
	case sqlSQLite:
		// SQLite writes one transaction at a time: one connection
		// queues the sink's own writers instead of making them fail
		// with "database is locked".
		s.db.SetMaxOpenConns(1)
	case sqlPostgres:
		s.db.SetMaxIdleConns(8)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sqlOpenTimeout)
	defer cancel()
	if err := s.check(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// sqlPaths returns the parameters that are file-system paths: the dsn of
// a SQLite database in a file (not one in memory).
func sqlPaths(p stages.Params) []string {
	dsn := p.String("dsn")
	if p.String("driver") != sqlSQLite || dsn == ":memory:" || strings.HasPrefix(dsn, "file::memory:") {
		return nil
	}
	return []string{"dsn"}
}

// sqliteDSN adds to a SQLite dsn a busy timeout and immediate
// transactions, unless it sets them.
func sqliteDSN(dsn string) string {
	_, query, _ := strings.Cut(dsn, "?")
	q, _ := url.ParseQuery(query)
	var add []string
	busy := q.Has("_busy_timeout") || q.Has("_timeout")
	for _, p := range q["_pragma"] {
		busy = busy || strings.Contains(strings.ToLower(p), "busy_timeout")
	}
	if !busy {
		add = append(add, "_busy_timeout="+strconv.FormatInt(sqlBusyTimeout.Milliseconds(), 10))
	}
	if !q.Has("_txlock") {
		add = append(add, "_txlock=immediate")
	}
	if len(add) == 0 {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(add, "&")
}

// check makes sure, when the sink opens, that the database answers and
// that the table has the columns and the unique key the parameters name:
// a mistake there is a start-up error rather than every record failing.
func (s *sqlSink) check(ctx context.Context) error {
	if s.cols == nil {
		known, err := s.tableColumns(ctx)
		if err != nil {
			return err
		}
		for _, k := range s.key {
			if !known[k] {
				return stages.ParamErrorf("upsert_key", "table %s has no column %q that a record may set", s.table, k)
			}
		}
		s.known.Store(&known)
		if s.key == nil {
			return nil
		}
	}
	// Planning an INSERT of NULLs checks the table, the columns and the
	// conflict target without writing anything.
	cols := s.cols
	if cols == nil {
		cols = s.key
	}
	q := "EXPLAIN " + s.insertSQL(cols, 1, func(int) string { return "NULL" })
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return s.fail("check the table", err)
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		return s.fail("check the table", err)
	}
	return nil
}

// tableColumns reads the columns of the table that an INSERT may set,
// leaving out generated ones.
func (s *sqlSink) tableColumns(ctx context.Context) (map[string]bool, error) {
	var rows *sql.Rows
	var err error
	switch s.driver {
	case sqlPostgres:
		rows, err = s.db.QueryContext(ctx, `SELECT attname FROM pg_catalog.pg_attribute
			WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''`, s.qtable)
	case sqlSQLite:
		if s.schema == "" {
			rows, err = s.db.QueryContext(ctx, `SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0`, s.name)
		} else {
			rows, err = s.db.QueryContext(ctx, `SELECT name FROM pragma_table_xinfo(?, ?) WHERE hidden = 0`, s.name, s.schema)
		}
	}
	if err != nil {
		return nil, s.fail("read the table's columns", err)
	}
	known := make(map[string]bool)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, s.fail("read the table's columns", err)
		}
		known[name] = true
	}
	if err := rows.Close(); err != nil {
		return nil, s.fail("read the table's columns", err)
	}
	if len(known) == 0 {
		return nil, stages.ParamErrorf("table", "table %s does not exist (or has no columns a record may set); the sql sink does not create it", s.table)
	}
	return known, nil
}

// refresh reads the table's columns again, once for concurrent callers.
func (s *sqlSink) refresh(ctx context.Context, seen *map[string]bool) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if s.known.Load() != seen {
		return nil // another Write refreshed meanwhile
	}
	known, err := s.tableColumns(ctx)
	if err != nil {
		return err
	}
	s.known.Store(&known)
	return nil
}

// fail wraps an error of the database with what was attempted, the table,
// and the password taken out.
func (s *sqlSink) fail(doing string, err error) error {
	err = fmt.Errorf("sql %s table %s: %s: %w", s.driver, s.table, doing, err)
	if s.secret == "" || !strings.Contains(err.Error(), s.secret) {
		return err
	}
	return &redactedError{err: err, secret: s.secret}
}

// redactedError is err with every occurrence of secret in its message
// replaced.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx")
}

func (e *redactedError) Unwrap() error { return e.err }

// sqlRow is one record of a batch, ready to insert.
type sqlRow struct {
	i    int      // its index in the batch
	cols []string // the columns it sets, sorted
	vals []any
	key  string // its upsert_key values, encoded; "" without upsert_key
}

// Write inserts the batch in one transaction. A record that cannot become
// a row, or that the database refuses, fails alone in a *BatchError with a
// permanent error. Any other error fails the whole batch: marked as an
// outage (see [stages.ErrOutage]) when the database is down, unreachable,
// read-only, out of resources or in a lock conflict, as permanent when it
// refuses the statement (the table or a column dropped, a permission
// revoked), else left for the per-record retries.
func (s *sqlSink) Write(ctx context.Context, batch []*stages.Message) error {
	if s.closed.Load() {
		return fmt.Errorf("sql %s table %s: %w", s.driver, s.table, stages.ErrSinkClosed)
	}
	errs := make([]error, len(batch))
	rows, err := s.rows(ctx, batch, errs)
	if err != nil {
		return classify(err)
	}
	if len(rows) > 0 {
		retry, err := s.insert(ctx, rows)
		if retry {
			err = s.insertEach(ctx, rows, errs)
		}
		if err != nil {
			return classify(err)
		}
	}
	for _, err := range errs {
		if err != nil {
			return &stages.BatchError{Errs: errs}
		}
	}
	return nil
}

// rows turns the records of batch into rows, setting errs for the ones
// that cannot be.
func (s *sqlSink) rows(ctx context.Context, batch []*stages.Message, errs []error) ([]sqlRow, error) {
	rows := make([]sqlRow, 0, len(batch))
	if s.cols != nil {
		ep := s.exprs.Get().(*[]*stages.Expr)
		defer s.exprs.Put(ep)
		for i, m := range batch {
			r, err := s.exprRow(*ep, m)
			if err != nil {
				errs[i] = stages.Permanent(err)
				continue
			}
			r.i = i
			rows = append(rows, r)
		}
		return rows, nil
	}
	refreshed := false
	for i, m := range batch {
		known := s.known.Load()
		r, err := s.fieldRow(*known, m)
		if errors.Is(err, errUnknownColumn) && !refreshed {
			// The table may have gained the column since the sink
			// read it.
			refreshed = true
			if err := s.refresh(ctx, known); err != nil {
				return nil, err
			}
			r, err = s.fieldRow(*s.known.Load(), m)
		}
		if err != nil {
			errs[i] = stages.Permanent(err)
			continue
		}
		r.i = i
		rows = append(rows, r)
	}
	return rows, nil
}

// exprRow makes the row of a record from the columns' expressions.
func (s *sqlSink) exprRow(exprs []*stages.Expr, m *stages.Message) (sqlRow, error) {
	r := sqlRow{cols: s.cols, vals: make([]any, len(s.cols))}
	for j, e := range exprs {
		v, err := e.Eval(m)
		if err != nil {
			if _, rerr := m.Record(); rerr != nil {
				return r, rerr
			}
			return r, fmt.Errorf("column %s: %w", s.cols[j], err)
		}
		if r.vals[j], err = s.value(v); err != nil {
			return r, fmt.Errorf("column %s: %w", s.cols[j], err)
		}
	}
	return r, s.setKey(&r)
}

// errUnknownColumn is the error of a record field the table has no column
// for.
var errUnknownColumn = errors.New("the table has no column of that name (list columns to choose the fields written)")

// fieldRow makes the row of a record from its top-level fields.
func (s *sqlSink) fieldRow(known map[string]bool, m *stages.Message) (sqlRow, error) {
	rec, err := m.Record()
	if err != nil {
		return sqlRow{}, err
	}
	if len(rec) == 0 {
		return sqlRow{}, errors.New("record has no fields to write")
	}
	cols := slices.Sorted(maps.Keys(rec))
	r := sqlRow{cols: cols, vals: make([]any, len(cols))}
	for j, c := range cols {
		if !known[c] {
			return r, fmt.Errorf("field %q: %w", c, errUnknownColumn)
		}
		if r.vals[j], err = s.value(rec[c]); err != nil {
			return r, fmt.Errorf("field %q: %w", c, err)
		}
	}
	return r, s.setKey(&r)
}

// setKey encodes the row's upsert_key values, each of which must be set.
func (s *sqlSink) setKey(r *sqlRow) error {
	if s.key == nil {
		return nil
	}
	var b strings.Builder
	for _, k := range s.key {
		j, ok := slices.BinarySearch(r.cols, k)
		if !ok || r.vals[j] == nil {
			return fmt.Errorf("upsert_key column %s is missing or null: the row could not be upserted", k)
		}
		fmt.Fprintf(&b, "%T:%v\x00", r.vals[j], r.vals[j])
	}
	r.key = b.String()
	return nil
}

// value converts a value of a record or an expression to an argument of
// the driver. For PostgreSQL every value but NULL goes as text, which the
// server converts to the column's type (so a JSON number fits a text
// column and a numeric string an integer one), and a value the type
// refuses is an error of the database about that row. SQLite takes
// numbers, strings and booleans as they are.
func (s *sqlSink) value(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	case bool:
		if s.driver == sqlPostgres {
			return strconv.FormatBool(x), nil
		}
		return x, nil
	case int:
		return s.integer(int64(x)), nil
	case int64:
		return s.integer(x), nil
	case int32:
		return s.integer(int64(x)), nil
	case uint64:
		if x <= math.MaxInt64 {
			return s.integer(int64(x)), nil
		}
		if s.driver == sqlPostgres {
			return strconv.FormatUint(x, 10), nil
		}
		return float64(x), nil // as SQLite keeps an integer this large
	case float64:
		if s.driver == sqlPostgres {
			return strconv.FormatFloat(x, 'g', -1, 64), nil
		}
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case map[string]any, []any:
		b, err := stages.EncodeJSON(x)
		if err != nil {
			return nil, fmt.Errorf("encode as JSON: %w", err)
		}
		return string(b), nil
	case time.Duration:
		return nil, errors.New("a duration cannot be stored: convert it in the expression, e.g. with .Seconds()")
	}
	return nil, fmt.Errorf("a value of Go type %T cannot be stored: convert it in the expression", v)
}

// integer converts an integer for the driver.
func (s *sqlSink) integer(n int64) any {
	if s.driver == sqlPostgres {
		return strconv.FormatInt(n, 10)
	}
	return n
}

// insert writes rows in one transaction of multi-row statements.
// rowLevel tells that the database refused the data of some row, and the
// batch is worth writing again row by row; err is then nil. Any other
// error fails the batch.
func (s *sqlSink) insert(ctx context.Context, rows []sqlRow) (rowLevel bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, s.fail("begin", err)
	}
	defer tx.Rollback() // after Commit, does nothing
	var args []any
	for len(rows) > 0 {
		n := s.chunk(rows)
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.vals...)
		}
		if _, err := tx.ExecContext(ctx, s.insertSQL(rows[0].cols, n, s.placeholder), args...); err != nil {
			if rowError(err) {
				return true, nil
			}
			return false, s.fail("insert", err)
		}
		rows = rows[n:]
	}
	if err := tx.Commit(); err != nil {
		return false, s.fail("commit", err)
	}
	return false, nil
}

// chunk returns how many rows from the start of rows one statement takes:
// rows that set the same columns, within max_batch and the driver's limit
// of parameters, and no two with the same key (PostgreSQL refuses to
// update a row twice in one statement; apart, the later one wins).
func (s *sqlSink) chunk(rows []sqlRow) int {
	cols := rows[0].cols
	limit := min(s.maxRows, max(1, maxSQLParams[s.driver]/len(cols)))
	var keys map[string]bool
	if s.key != nil {
		keys = make(map[string]bool)
	}
	n := 0
	for n < len(rows) && n < limit {
		r := rows[n]
		if n > 0 && !slices.Equal(r.cols, cols) {
			break
		}
		if keys != nil {
			if keys[r.key] {
				break
			}
			keys[r.key] = true
		}
		n++
	}
	return n
}

// insertEach writes rows in one transaction, one statement and savepoint
// a row, and sets errs for the rows the database refuses.
func (s *sqlSink) insertEach(ctx context.Context, rows []sqlRow, errs []error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("begin", err)
	}
	defer tx.Rollback() // after Commit, does nothing
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	for _, r := range rows {
		if err := exec("SAVEPOINT " + sqlSavepoint); err != nil {
			return s.fail("savepoint", err)
		}
		err := exec(s.insertSQL(r.cols, 1, s.placeholder), r.vals...)
		if err != nil && !rowError(err) {
			return s.fail("insert", err)
		}
		if err != nil {
			errs[r.i] = stages.Permanent(s.fail("insert", err))
			if err := exec("ROLLBACK TO SAVEPOINT " + sqlSavepoint); err != nil {
				return s.fail("roll back to savepoint", err)
			}
		}
		if err := exec("RELEASE SAVEPOINT " + sqlSavepoint); err != nil {
			return s.fail("release savepoint", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail("commit", err)
	}
	return nil
}

// placeholder returns the i-th (0-based) bind parameter of the driver.
func (s *sqlSink) placeholder(i int) string {
	if s.driver == sqlPostgres {
		return "$" + strconv.Itoa(i+1)
	}
	return "?"
}

// insertSQL returns the INSERT of n rows into cols, an upsert with
// upsert_key; param gives the i-th value.
func (s *sqlSink) insertSQL(cols []string, n int, param func(int) string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(s.qtable)
	b.WriteString(" (")
	for j, c := range cols {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c))
	}
	b.WriteString(") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(param(i*len(cols) + j))
		}
		b.WriteByte(')')
	}
	if s.key == nil {
		return b.String()
	}
	b.WriteString(" ON CONFLICT (")
	for j, k := range s.key {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(k))
	}
	b.WriteString(") DO ")
	set := 0
	for _, c := range cols {
		if slices.Contains(s.key, c) {
			continue
		}
		if set == 0 {
			b.WriteString("UPDATE SET ")
		} else {
			b.WriteString(", ")
		}
		set++
		b.WriteString(quoteIdent(c))
		b.WriteString(" = excluded.")
		b.WriteString(quoteIdent(c))
	}
	if set == 0 {
		b.WriteString("NOTHING")
	}
	return b.String()
}

// Close closes the database. Writes after Close fail.
func (s *sqlSink) Close(context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return s.fail("close", err)
	}
	return nil
}
