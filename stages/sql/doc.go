// Package sql holds the sql sink, which inserts or upserts records into a
// PostgreSQL (pgx) or SQLite (modernc.org/sqlite) table.
//
// Sink: sql.
//
// [Register] adds it to a registry; package stages/builtin adds every
// family. docs/stages.md is its reference.
package sql
