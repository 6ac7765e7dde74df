package file

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
)

// The names the encoding parameter of the file source takes.
const (
	encodingUTF8        = "utf-8"
	encodingLatin1      = "latin1"
	encodingISO88591    = "iso-8859-1"
	encodingWindows1252 = "windows-1252"
	encodingUTF16       = "utf-16"
	encodingUTF16LE     = "utf-16le"
	encodingUTF16BE     = "utf-16be"
)

// encodingNames lists the names the encoding parameter takes, utf-8 (the
// default) first.
var encodingNames = []string{
	encodingUTF8, encodingLatin1, encodingISO88591, encodingWindows1252,
	encodingUTF16, encodingUTF16LE, encodingUTF16BE,
}

// encodingDoc documents the encoding parameter.
const encodingDoc = "The character encoding of the files, decoded to UTF-8 as they are read: " +
	"utf-8 (the default: the bytes are read as they are, and a jsonl or csv record that is " +
	"not valid UTF-8 goes to the dead-letter stream, its reason naming the line and the byte), " +
	"latin1 (or iso-8859-1), windows-1252 (its five undefined bytes decode as the C1 controls " +
	"of the same numbers, as in browsers, not as U+FFFD), utf-16 (a byte order mark decides the byte order; " +
	"without one, big-endian), utf-16le or utf-16be (a byte order mark, if any, still decides). " +
	"A byte order mark is dropped. Ill-formed UTF-16 (a lone surrogate, an odd byte at the end) " +
	"stops the file with an error naming the byte, rather than becoming U+FFFD. With an encoding " +
	"other than utf-8, the checkpointed offset counts bytes of the decoded text, and a resumed run " +
	"decodes the file again up to it."

// canonicalEncoding returns the name an encoding is checkpointed under:
// "" for utf-8, one name for the aliases of Latin-1.
func canonicalEncoding(name string) string {
	switch name {
	case "", encodingUTF8:
		return ""
	case encodingLatin1:
		return encodingISO88591
	}
	return name
}

// decoder returns a transformer decoding the canonical encoding name to
// UTF-8, or nil for utf-8, which is read as it is.
func decoder(name string) transform.Transformer {
	switch name {
	case encodingISO88591:
		return charmap.ISO8859_1.NewDecoder()
	case encodingWindows1252:
		return windows1252{}
	case encodingUTF16, encodingUTF16BE:
		return &utf16Decoder{}
	case encodingUTF16LE:
		return &utf16Decoder{defaultLE: true}
	}
	return nil
}

// decode returns r read through a fresh decoder of the canonical encoding
// name, or r itself for utf-8.
func decode(r io.Reader, name string) io.Reader {
	if t := decoder(name); t != nil {
		return transform.NewReader(r, t)
	}
	return r
}

// windows1252 decodes Windows-1252 to UTF-8 without losing a byte: the
// bytes Windows-1252 leaves undefined (0x81, 0x8d, 0x8f, 0x90 and 0x9d),
// which charmap.Windows1252 decodes as U+FFFD, decode as the C1 controls
// of the same numbers, as the WHATWG encoding standard has it.
type windows1252 struct{ transform.NopResetter }

func (windows1252) Transform(dst, src []byte, _ bool) (nDst, nSrc int, err error) {
	for ; nSrc < len(src); nSrc++ {
		b := src[nSrc]
		r := rune(b)
		if b >= utf8.RuneSelf {
			if d := charmap.Windows1252.DecodeByte(b); d != utf8.RuneError {
				r = d
			}
		}
		if nDst+utf8.RuneLen(r) > len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += utf8.EncodeRune(dst[nDst:], r)
	}
	return nDst, nSrc, nil
}

// errBadUTF16 is the error of input that is not well-formed UTF-16.
var errBadUTF16 = errors.New("not valid UTF-16")

// utf16Decoder decodes UTF-16 to UTF-8, refusing what is not well-formed
// (golang.org/x/text's decoder mends it into U+FFFD). A byte order mark at
// the start decides the byte order and is dropped; without one the order
// is little-endian if defaultLE, else big-endian.
type utf16Decoder struct {
	defaultLE bool
	started   bool  // the byte order mark is looked for
	le        bool  // the byte order
	off       int64 // input bytes consumed before this call
}

func (d *utf16Decoder) Reset() { d.started, d.off = false, 0 }

func (d *utf16Decoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	defer func() { d.off += int64(nSrc) }()
	if !d.started {
		if len(src) < 2 && !atEOF {
			return 0, 0, transform.ErrShortSrc
		}
		d.started, d.le = true, d.defaultLE
		if len(src) >= 2 {
			switch {
			case src[0] == 0xff && src[1] == 0xfe:
				d.le, nSrc = true, 2
			case src[0] == 0xfe && src[1] == 0xff:
				d.le, nSrc = false, 2
			}
		}
	}
	unit := func(i int) rune {
		if d.le {
			return rune(src[i]) | rune(src[i+1])<<8
		}
		return rune(src[i])<<8 | rune(src[i+1])
	}
	for nSrc < len(src) {
		if len(src)-nSrc < 2 {
			if !atEOF {
				return nDst, nSrc, transform.ErrShortSrc
			}
			return nDst, nSrc, fmt.Errorf("%w at byte %d: an odd byte at the end", errBadUTF16, d.off+int64(nSrc))
		}
		r, n := unit(nSrc), 2
		if utf16.IsSurrogate(r) {
			if r >= 0xdc00 || len(src)-nSrc >= 4 && !isLowSurrogate(unit(nSrc+2)) || len(src)-nSrc < 4 && atEOF {
				return nDst, nSrc, fmt.Errorf("%w at byte %d: a lone surrogate (%#04x)", errBadUTF16, d.off+int64(nSrc), r)
			}
			if len(src)-nSrc < 4 {
				return nDst, nSrc, transform.ErrShortSrc
			}
			r, n = utf16.DecodeRune(r, unit(nSrc+2)), 4
		}
		if nDst+utf8.RuneLen(r) > len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += utf8.EncodeRune(dst[nDst:], r)
		nSrc += n
	}
	return nDst, nSrc, nil
}

// isLowSurrogate reports whether r is the second half of a surrogate pair.
func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r < 0xe000 }
