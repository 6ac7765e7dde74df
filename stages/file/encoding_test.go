package file

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

const latin1Hint = "; set encoding: latin1 if the file is Latin-1 (or windows-1252, utf-16)"

// TestFileSourceInvalidUTF8 checks that a record that is not valid UTF-8
// is dead-lettered as it is, its reason naming the file, the line and the
// byte, and that the other records flow.
func TestFileSourceInvalidUTF8(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []stagetest.Read // Err holds the wanted text after the path, nil for none
		wantErr             []string
	}{
		{
			name: "csv with a Latin-1 byte", file: "in.csv",
			content: "id,name\n1,a\n2,caf\xe9\n3,c\n",
			want:    []stagetest.Read{{Payload: `{"id":"1","name":"a"}`}, {Payload: "2,caf\xe9"}, {Payload: `{"id":"3","name":"c"}`}},
			wantErr: []string{"", " line 3: not valid UTF-8 at byte 5 of the line (0xe9)" + latin1Hint, ""},
		},
		{
			name: "csv bad byte on the second line of a quoted field", file: "in.csv",
			content: "id,name\r\n\r\n1,\"two\r\nli\xffnes\"\r\n",
			want:    []stagetest.Read{{Payload: "1,\"two\r\nli\xffnes\""}},
			wantErr: []string{" line 4: not valid UTF-8 at byte 2 of the line (0xff)" + latin1Hint},
		},
		{
			name: "csv truncated UTF-8 sequence", file: "in.csv",
			content: "a\n\xc3\n",
			want:    []stagetest.Read{{Payload: "\xc3"}},
			wantErr: []string{" line 2: not valid UTF-8 at byte 0 of the line (0xc3)" + latin1Hint},
		},
		{
			name: "jsonl", file: "in.jsonl",
			content: "{\"id\": 1}\n\n{\"id\": 2, \"bad\": \"\xff\xfe\"}\n{\"id\": 3}\n",
			want:    []stagetest.Read{{Payload: `{"id": 1}`}, {Payload: "{\"id\": 2, \"bad\": \"\xff\xfe\"}"}, {Payload: `{"id": 3}`}},
			wantErr: []string{"", " line 3: not valid UTF-8 at byte 18 of the line (0xff)" + latin1Hint, ""},
		},
		{
			name: "lines pass any bytes on", file: "in.txt",
			content: "caf\xe9\n\xff\n",
			want:    []stagetest.Read{{Payload: "caf\xe9"}, {Payload: "\xff"}},
			wantErr: []string{"", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)
			got := stagetest.ReadAll(t, stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{}))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records %q, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Payload != w.Payload {
					t.Errorf("record %d: payload %q, want %q", i, g.Payload, w.Payload)
				}
				if strings.Contains(g.Payload, "\ufffd") {
					t.Errorf("record %d: payload %q holds U+FFFD", i, g.Payload)
				}
				switch want := tt.wantErr[i]; {
				case want == "" && g.Err != nil:
					t.Errorf("record %d: unexpected error %v", i, g.Err)
				case want != "":
					var ue *records.InvalidUTF8Error
					if g.Err == nil || g.Err.Error() != "file "+path+want || !stages.IsPermanent(g.Err) || !errors.As(g.Err, &ue) {
						t.Errorf("record %d: error %v, want permanent %q", i, g.Err, "file "+path+want)
					}
				}
			}
		})
	}
}

// TestFileSourceCSVHeaderInvalidUTF8 checks that a csv header that is not
// valid UTF-8 ends the file with an error naming it, the line and the byte.
func TestFileSourceCSVHeaderInvalidUTF8(t *testing.T) {
	path := stagetest.WriteFile(t, t.TempDir(), "in.csv", "id,caf\xe9\n1,2\n")
	_, err := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{}).Read(context.Background())
	want := "file " + path + ": line 1: header: not valid UTF-8 at byte 6 of the line (0xe9)" + latin1Hint
	if err == nil || err.Error() != want || stages.IsPermanent(err) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// encodeUTF16 returns s encoded as UTF-16 in byte order le or big-endian, with a
// byte order mark if bom.
func encodeUTF16(s string, le, bom bool) string {
	var b []byte
	put := func(u uint16) {
		if le {
			b = append(b, byte(u), byte(u>>8))
		} else {
			b = append(b, byte(u>>8), byte(u))
		}
	}
	if bom {
		put(0xfeff)
	}
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			put(uint16(0xd800 + r>>10))
			put(uint16(0xdc00 + r&0x3ff))
			continue
		}
		put(uint16(r))
	}
	return string(b)
}

// TestFileSourceEncoding checks that the encoding parameter decodes files
// to UTF-8.
func TestFileSourceEncoding(t *testing.T) {
	const text = "id,name\n1,café 😀\n"
	want := []string{`{"id":"1","name":"café 😀"}`}
	tests := []struct {
		name, file, content, encoding string
		want                          []string
	}{
		{"latin1 csv", "in.csv", "id,name\n1,caf\xe9\n2,na\xefve\n", "latin1", []string{`{"id":"1","name":"café"}`, `{"id":"2","name":"naïve"}`}},
		{"iso-8859-1 lines", "in.txt", "caf\xe9\n\xbfqu\xe9?\n", "iso-8859-1", []string{"café", "¿qué?"}},
		{"windows-1252 keeps undefined bytes", "in.txt", "\x80 \x93x\x94 \x81\x9d", "windows-1252", []string{"€ “x” \u0081\u009d"}},
		{"utf-16 little-endian with a byte order mark", "in.csv", encodeUTF16(text, true, true), "utf-16", want},
		{"utf-16 big-endian with a byte order mark", "in.csv", encodeUTF16(text, false, true), "utf-16", want},
		{"utf-16 without a byte order mark is big-endian", "in.csv", encodeUTF16(text, false, false), "utf-16", want},
		{"utf-16le without a byte order mark", "in.csv", encodeUTF16(text, true, false), "utf-16le", want},
		{"utf-16be without a byte order mark", "in.csv", encodeUTF16(text, false, false), "utf-16be", want},
		{"utf-16le with a big-endian byte order mark", "in.csv", encodeUTF16(text, false, true), "utf-16le", want},
		{"utf-16 jsonl", "in.jsonl", encodeUTF16("{\"s\":\"ü\"}\r\n{\"s\":\"2\"}", true, true), "utf-16", []string{`{"s":"ü"}`, `{"s":"2"}`}},
		{"utf-8 explicit", "in.csv", text, "utf-8", want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)
			src := stagetest.NewSource(t, "file", map[string]any{"path": path, "encoding": tt.encoding}, stages.Info{})
			if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFileSourceEncodingParam checks that an unknown encoding is refused
// with the names accepted.
func TestFileSourceEncodingParam(t *testing.T) {
	_, errs := stagetest.Lookup(t, stages.RoleSource, "file").ParseParams(map[string]any{"path": "in.csv", "encoding": "ebcdic"})
	var pe *stages.ParamError
	want := `must be one of utf-8, latin1, iso-8859-1, windows-1252, utf-16, utf-16le, utf-16be (got "ebcdic")`
	if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != "encoding" || !strings.Contains(errs[0].Error(), want) {
		t.Fatalf("got %v, want one error on encoding containing %q", errs, want)
	}
}

// TestFileSourceEncodingResume checks that a source reading with an
// encoding resumes at its checkpoint, and refuses a checkpoint taken with
// another encoding.
func TestFileSourceEncodingResume(t *testing.T) {
	tests := []struct {
		name, file, content, encoding string
		want                          []string
	}{
		{"latin1 csv", "in.csv", "id,name\n1,caf\xe9\n2,na\xefve\n3,\xe0\n", "latin1", []string{`{"id":"1","name":"café"}`, `{"id":"2","name":"naïve"}`, `{"id":"3","name":"à"}`}},
		{"utf-16 lines", "in.txt", encodeUTF16("é\nü\n😀\n", true, true), "utf-16", []string{"é", "ü", "😀"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)
			raw := map[string]any{"path": path, "encoding": tt.encoding}
			src := stagetest.NewSource(t, "file", raw, stages.Info{})
			m, err := src.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := stagetest.PayloadOf(t, m); got != tt.want[0] {
				t.Fatalf("first record %q, want %q", got, tt.want[0])
			}
			cp, err := src.(stages.Resumable).Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			resumed := stagetest.NewSource(t, "file", raw, stages.Info{})
			if err := resumed.(stages.Resumable).Resume(cp); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.Payloads(t, resumed); !reflect.DeepEqual(got, tt.want[1:]) {
				t.Fatalf("after resuming: got %q, want %q", got, tt.want[1:])
			}

			other := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{})
			if err := other.(stages.Resumable).Resume(cp); err != nil {
				t.Fatal(err)
			}
			_, err = other.Read(context.Background())
			if err == nil || !strings.Contains(err.Error(), "the checkpoint was taken reading the file as ") || !strings.Contains(err.Error(), "the encoding is now utf-8") {
				t.Fatalf("resuming with another encoding: got %v", err)
			}
		})
	}
}

// TestFileSourceBadUTF16 checks that ill-formed UTF-16 stops the file with
// an error naming the byte, after the records before it, rather than
// becoming U+FFFD.
func TestFileSourceBadUTF16(t *testing.T) {
	le := func(units ...uint16) string {
		var b []byte
		for _, u := range units {
			b = append(b, byte(u), byte(u>>8))
		}
		return string(b)
	}
	tests := []struct {
		name, content string
		want          []string
		err           string
	}{
		{"lone high surrogate", encodeUTF16("a\n", true, true) + le(0xd800, 'b', '\n'), []string{"a"}, "not valid UTF-16 at byte 6: a lone surrogate (0xd800)"},
		{"lone low surrogate", encodeUTF16("a\n", true, true) + le(0xdc00, '\n'), []string{"a"}, "not valid UTF-16 at byte 6: a lone surrogate (0xdc00)"},
		{"high surrogate at the end", encodeUTF16("a\nb", true, true) + le(0xd83d), []string{"a"}, "not valid UTF-16 at byte 8: a lone surrogate (0xd83d)"},
		{"odd byte at the end", encodeUTF16("a\nb", true, true) + "x", []string{"a"}, "not valid UTF-16 at byte 8: an odd byte at the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := stagetest.WriteFile(t, t.TempDir(), "in.txt", tt.content)
			src := stagetest.NewSource(t, "file", map[string]any{"path": path, "encoding": "utf-16"}, stages.Info{})
			var got []string
			var err error
			for {
				var m *stages.Message
				if m, err = src.Read(context.Background()); err != nil {
					break
				}
				got = append(got, stagetest.PayloadOf(t, m))
			}
			if want := "file " + path + ": " + tt.err; err == nil || err.Error() != want || stages.IsPermanent(err) || !errors.Is(err, errBadUTF16) {
				t.Fatalf("got error %v, want %q", err, want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q before the error, want %q", got, tt.want)
			}
		})
	}
}

// TestFileSourceUTF16Long checks decoding across the read buffers, with
// surrogate pairs and multi-byte runes at every alignment.
func TestFileSourceUTF16Long(t *testing.T) {
	var text strings.Builder
	var want []string
	for i := 0; text.Len() < 300<<10; i++ {
		line := strings.Repeat("é😀x", i%7) + strings.Repeat("y", i%3)
		want = append(want, line)
		text.WriteString(line + "\n")
	}
	for _, le := range []bool{true, false} {
		path := stagetest.WriteFile(t, t.TempDir(), "in.txt", encodeUTF16(text.String(), le, true))
		src := stagetest.NewSource(t, "file", map[string]any{"path": path, "encoding": "utf-16"}, stages.Info{})
		if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, want) {
			t.Fatalf("little-endian %v: got %d lines, want %d (or they differ)", le, len(got), len(want))
		}
	}
}
