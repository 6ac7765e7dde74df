package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestFileSourceJSONArray(t *testing.T) {
	tests := []struct {
		name    string
		file    string // name in a temp dir
		content string
		format  string // "" infers
		want    []string
	}{
		{"objects", "in.json", `[{"a":1},{"b":2}]`, "", []string{`{"a":1}`, `{"b":2}`}},
		{"nested and pretty-printed", "in.json", "[\n  {\n    \"a\": [1, [2, {\"b\": {}}]],\n    \"c\": {\"d\": [ ]}\n  },\n  [ {\"e\" : null} ]\n]\n",
			"", []string{`{"a":[1,[2,{"b":{}}]],"c":{"d":[]}}`, `[{"e":null}]`}},
		{"white space everywhere", "in.json", " \r\n\t[ \n{ \"a\" :\t1 }\r\n ,\n\n { } ] \n\n", "", []string{`{"a":1}`, `{}`}},
		{"byte order mark", "in.json", "\ufeff[{\"a\":1}]", "", []string{`{"a":1}`}},
		{"empty array", "in.json", "[]", "", nil},
		{"empty array with white space", "in.json", "\n [ \n ] \n", "", nil},
		{"elements that are not objects", "in.json", `[1, -2.5e3, "s", "a \"]\" ,", null, true, false, [], [1,"x"]]`,
			"", []string{"1", "-2.5e3", `"s"`, `"a \"]\" ,"`, "null", "true", "false", "[]", `[1,"x"]`}},
		{"strings are kept as written", "in.json", `[{"s":"caf\u00e9 \n é 😀 \\ \/"}]`, "", []string{`{"s":"caf\u00e9 \n é 😀 \\ \/"}`}},
		{"big numbers are kept as written", "in.json", `[12345678901234567890123, 1.000000000000000000001]`, "", []string{"12345678901234567890123", "1.000000000000000000001"}},
		{"blank json file is jsonl", "in.json", " \n \n", "", nil},
		{"json file of lines is jsonl", "in.json", "{\"a\": 1}\n{\"b\": 2}\n", "", []string{`{"a": 1}`, `{"b": 2}`}},
		{"upper-case extension", "IN.JSON", `[1]`, "", []string{"1"}},
		{"format json on another extension", "in.txt", `[{"a": 1}]`, "json", []string{`{"a":1}`}},
		{"format json on a blank file", "in.txt", "\n", "json", nil},
		{"format jsonl on an array", "in.json", "[1,\n2]", "jsonl", []string{"[1,", "2]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"path": stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)}
			if tt.format != "" {
				raw["format"] = tt.format
			}
			src := stagetest.NewSource(t, "file", raw, stages.Info{})
			if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if _, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
				t.Fatalf("read after the end: %v", err)
			}
		})
	}
}

// TestFileSourceJSONArrayMalformed checks that an array that is not
// well-formed gives the elements before the fault, then an error naming
// the file, the line and the byte that stops the source.
func TestFileSourceJSONArrayMalformed(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
		err           string // after "file PATH: "
	}{
		{"truncated in an element", "[{\"a\":1},\n{\"b\":", []string{`{"a":1}`},
			"line 2, byte 15: unexpected EOF: the file ends inside an element"},
		{"truncated after an element", "[1,\n2", []string{"1", "2"},
			"line 2, byte 5: unexpected EOF: unexpected end of the file, the array is not closed"},
		{"truncated after a comma", "[1,", []string{"1"},
			"line 1, byte 3: unexpected EOF: the file ends inside an element"},
		{"only the bracket", "  [", nil,
			"line 1, byte 3: unexpected EOF: unexpected end of the file, the array is not closed"},
		{"bad element", "[{\"a\":1},\n {\"b\": }, {\"c\":3}]", []string{`{"a":1}`},
			"line 2, byte 17: invalid character '}' looking for beginning of value"},
		{"bad literal", "[1, tru, 3]", []string{"1"},
			"line 1, byte 7: invalid character ',' in literal true (expecting 'e')"},
		{"missing comma", "[1\n\n 2]", []string{"1"},
			"line 3, byte 5: expected comma after array element"},
		{"trailing comma", "[1, 2,\n]", []string{"1", "2"},
			"line 2, byte 7: invalid character ']' looking for beginning of value"},
		{"content after the array", "[1]\n[2]", []string{"1"},
			"line 2, byte 4: '[' after the end of the array"},
		{"garbage after the array", "[1] x", []string{"1"},
			"line 1, byte 4: invalid character 'x' looking for beginning of value"},
		{"an object", "\n{\"a\": [1]}", nil,
			"line 2, byte 1: not a JSON array: it starts with '{'"},
		{"a number", "42", nil,
			"line 1, byte 0: not a JSON array: it starts with a number"},
		{"not json", "hello", nil,
			"line 1, byte 0: invalid character 'h' looking for beginning of value"},
		{"closing brace in the array", "[1}", []string{"1"},
			"line 1, byte 2: invalid character '}' after array element"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), "in.txt", tt.content)
			src := stagetest.NewSource(t, "file", map[string]any{"path": path, "format": "json"}, stages.Info{})
			var got []string
			var err error
			for {
				var m *stages.Message
				if m, err = src.Read(context.Background()); err != nil {
					break
				}
				got = append(got, stagetest.PayloadOf(t, m))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
			if want := "file " + path + ": " + tt.err; err.Error() != want || stages.IsPermanent(err) || errors.Is(err, io.EOF) {
				t.Fatalf("error %v\nwant  %s (not permanent)", err, want)
			}
			if _, again := src.Read(context.Background()); !errors.Is(again, io.EOF) {
				t.Fatalf("read after the error: %v, want io.EOF", again)
			}
		})
	}
}

func TestFileSourceJSONArrayInvalidUTF8(t *testing.T) {
	content := "[{\"a\": 1},\n  {\"b\": \"x\xe9\"},\n  {\"c\": \"\\n\"}, [\"\xff\"], 3]"
	tests := []struct {
		encoding string
		want     []stagetest.Read // Err holds the wanted text after "file PATH", nil for none
	}{
		{"", []stagetest.Read{
			{Payload: `{"a":1}`},
			{Payload: "{\"b\": \"x\xe9\"}", Err: errors.New(" line 2, byte 21: not valid UTF-8 (0xe9)" + latin1Hint)},
			{Payload: `{"c":"\n"}`},
			{Payload: "[\"\xff\"]", Err: errors.New(" line 3, byte 43: not valid UTF-8 (0xff)" + latin1Hint)},
			{Payload: "3"},
		}},
		{"latin1", []stagetest.Read{{Payload: `{"a":1}`}, {Payload: `{"b":"xé"}`}, {Payload: `{"c":"\n"}`}, {Payload: `["ÿ"]`}, {Payload: "3"}}},
	}
	for _, tt := range tests {
		t.Run("encoding "+tt.encoding, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), "in.json", content)
			raw := map[string]any{"path": path}
			if tt.encoding != "" {
				raw["encoding"] = tt.encoding
			}
			got := stagetest.ReadAll(t, stagetest.NewSource(t, "file", raw, stages.Info{}))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records %q, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Payload != w.Payload {
					t.Errorf("record %d: payload %q, want %q", i, g.Payload, w.Payload)
				}
				switch {
				case w.Err == nil && g.Err != nil:
					t.Errorf("record %d: unexpected error %v", i, g.Err)
				case w.Err != nil:
					want := "file " + path + w.Err.Error()
					var ae *arrayUTF8Error
					if g.Err == nil || g.Err.Error() != want || !stages.IsPermanent(g.Err) || !errors.As(g.Err, &ae) {
						t.Errorf("record %d: error %v\nwant permanent %s", i, g.Err, want)
					}
				}
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// writeBigArray writes a JSON array of n objects of about 1 KiB to w and
// returns the bytes written.
func writeBigArray(w io.Writer, n int) (int64, error) {
	bw := bufio.NewWriter(w)
	pad := strings.Repeat("x", 1000)
	size, _ := bw.WriteString("[\n")
	for i := range n {
		if i > 0 {
			k, _ := bw.WriteString(",\n")
			size += k
		}
		k, err := fmt.Fprintf(bw, `  {"i": %d, "pad": "%s"}`, i, pad)
		if err != nil {
			return 0, err
		}
		size += k
	}
	k, _ := bw.WriteString("\n]\n")
	return int64(size + k), bw.Flush()
}

// TestFileSourceJSONArrayStreams checks that an element is delivered as
// soon as it is read, long before the end of a large array: the array is
// never held whole.
func TestFileSourceJSONArrayStreams(t *testing.T) {
	const elements = 50_000 // about 50 MB
	const bound = 1 << 20   // read before the first record, at most
	t.Run("reader", func(t *testing.T) {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, err := writeBigArray(pw, elements)
			pw.CloseWithError(err)
		}()
		t.Cleanup(func() {
			pr.CloseWithError(errors.New("test over")) // the writer stops
			<-done
		})
		cr := &countingReader{r: pr}
		jr := newJSONArrayReader(cr, "in.json", records.Position{})
		for i := range 3 {
			m, err := jr.Read()
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"i":%d,"pad":"`, i); !strings.HasPrefix(stagetest.PayloadOf(t, m), want) {
				t.Fatalf("record %d: %.40q, want it to start with %q", i, stagetest.PayloadOf(t, m), want)
			}
		}
		if cr.n > bound {
			t.Fatalf("%d bytes read for the first 3 records, want at most %d", cr.n, bound)
		}
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "big.json")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		size, err := writeBigArray(f, elements)
		if err := errors.Join(err, f.Close()); err != nil {
			t.Fatal(err)
		}
		src := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{})
		if _, err := src.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
		if done, total := progressOf(t, src); total != size || done > bound {
			t.Fatalf("after the first record: %d of %d bytes read, want at most %d", done, total, bound)
		}
	})
}

// FuzzJSONArrayReader checks the json array reader against
// encoding/json: a valid array gives its elements, compacted, then io.EOF,
// and reading again from the position after any element gives the rest;
// anything else ends in an error that is not io.EOF.
func FuzzJSONArrayReader(f *testing.F) {
	for _, seed := range []string{
		`[]`, `[1,2,3]`, "\ufeff[{\"a\": [1, {\"b\": null}]},\n \"s\"]", "[\n]", `[1,`, `[1 2]`, `[1,]`,
		`{"a":1}`, `null`, ``, " \n", `[1][2]`, `["\xff"]`, `[tru]`, `[{"a":"]"}]`, `[[[[]]]]`, `["\u00e9\n"]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type read struct {
			payload string
			at      records.Position
		}
		readAll := func(input []byte, at records.Position) ([]read, error) {
			jr := newJSONArrayReader(bytes.NewReader(input), "in", at)
			var out []read
			for i := 0; ; i++ {
				if i > len(input)+1 {
					t.Fatalf("no end after %d records", i)
				}
				m, err := jr.Read()
				if err != nil && !stages.IsPermanent(err) {
					return out, err
				}
				p, perr := m.Payload()
				if perr != nil {
					t.Fatal(perr)
				}
				out = append(out, read{string(p), jr.Pos()})
			}
		}
		got, err := readAll(data, records.Position{})

		body := bytes.TrimPrefix(data, []byte(utf8BOM))
		var want []json.RawMessage
		valid := json.Valid(body) && body[nonBlank(body)] == '['
		switch {
		case nonBlank(body) == len(body): // blank: no records
			if len(got) != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("blank input: %d records, %v", len(got), err)
			}
			return
		case !valid:
			if errors.Is(err, io.EOF) {
				t.Fatalf("invalid input %q read to io.EOF: %+v", data, got)
			}
			return
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("valid array %q: %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("valid array %q: %d records, want %d", data, len(got), len(want))
		}
		for i, w := range want {
			var c bytes.Buffer
			if err := json.Compact(&c, w); err != nil {
				t.Fatal(err)
			}
			if got[i].payload != c.String() && got[i].payload != string(w) {
				t.Fatalf("record %d: %q, want %q", i, got[i].payload, c.String())
			}
		}
		for k, r := range got {
			rest, err := readAll(data[r.at.Offset:], r.at)
			if !errors.Is(err, io.EOF) || len(rest) != len(got)-k-1 {
				t.Fatalf("resumed after record %d at %+v: %d records, %v; want %d", k, r.at, len(rest), err, len(got)-k-1)
			}
			for i := range rest {
				if rest[i] != got[k+1+i] {
					t.Fatalf("resumed after record %d: record %d is %+v, want %+v", k, i, rest[i], got[k+1+i])
				}
			}
		}
	})
}
