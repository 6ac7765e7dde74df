// Command floor is the floor of bench's peers group: the ETL job as a
// plain Go program, with no broker and no framework. It reads JSON lines
// with bufio, decodes each into map[string]any with encoding/json,
// upper-cases "customer", doubles "amount", keeps the records whose
// amount is at least 100, and writes them as JSON lines through a bufio
// writer, on one goroutine.
//
//	floor IN OUT
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: floor IN OUT")
		os.Exit(2)
	}
	n, err := run(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "floor: wrote %d records\n", n)
}

// run does the job from the file in to the file out and returns how many
// records it wrote.
func run(in, out string) (n int, err error) {
	src, err := os.Open(in)
	if err != nil {
		return 0, fmt.Errorf("open input: %w", err)
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return 0, fmt.Errorf("create output: %w", err)
	}
	defer func() { err = errors.Join(err, dst.Close()) }()
	w := bufio.NewWriterSize(dst, 64<<10)
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return n, fmt.Errorf("line %d: %w", line, err)
		}
		if c, ok := rec["customer"].(string); ok {
			rec["customer"] = strings.ToUpper(c)
		}
		amount, ok := rec["amount"].(float64)
		if !ok {
			return n, fmt.Errorf("line %d: amount is not a number", line)
		}
		amount *= 2
		rec["amount"] = amount
		if amount < 100 {
			continue
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return n, fmt.Errorf("line %d: %w", line, err)
		}
		w.Write(b)
		w.WriteByte('\n')
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("read input: %w", err)
	}
	if err := w.Flush(); err != nil {
		return n, fmt.Errorf("write output: %w", err)
	}
	return n, nil
}
