package file

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// The compressions the file source reads, decided by the file's extension.
const (
	compressionNone = ""
	compressionGzip = "gzip"
	compressionZstd = "zstd"
)

// compressionOf returns the compression of file name, from its extension
// (.gz is gzip; .zst and .zstd are zstd), and the name without that
// extension, whose own extension then tells the record format.
func compressionOf(name string) (compression, plain string) {
	ext := filepath.Ext(name)
	switch strings.ToLower(ext) {
	case ".gz":
		return compressionGzip, strings.TrimSuffix(name, ext)
	case ".zst", ".zstd":
		return compressionZstd, strings.TrimSuffix(name, ext)
	}
	return compressionNone, name
}

// decompress returns the decompressed text of r, read as it is needed,
// and a function that releases what the decompressor holds (it does not
// close r). With compressionNone it returns r itself.
func decompress(r io.Reader, compression string) (io.Reader, func(), error) {
	switch compression {
	case compressionGzip:
		zr, err := gzip.NewReader(r)
		if errors.Is(err, io.EOF) {
			// Not the end of the source: a file without even a header.
			err = fmt.Errorf("%w: the file is empty", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { _ = zr.Close() }, nil
	case compressionZstd:
		// The decoder reads an empty file as no frames, no text.
		var first [1]byte
		if _, err := io.ReadFull(r, first[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: the file is empty", io.ErrUnexpectedEOF)
			}
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		r = io.MultiReader(bytes.NewReader(first[:]), r)
		// One block at a time, decoded as it is read: no goroutines.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return r, func() {}, nil
}
