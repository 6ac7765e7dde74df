package pipetest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// TestFileSuffix ends the name of every test file that [Find] looks for
// in a directory.
const TestFileSuffix = "_test.yaml"

// Find returns the test files that args name, in order and each once: a
// file as it is; a directory, the files in it whose name ends in
// [TestFileSuffix]; DIR/... (as ./...), those in DIR and every directory
// under it, except hidden ones and testdata. An argument that names
// nothing is an error, and so is a directory pattern that finds no test
// file (wrapping [ErrNoTests]).
func Find(args []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	add := func(path string) {
		if !seen[path] {
			seen[path] = true
			out = append(out, path)
		}
	}
	for _, arg := range args {
		dir, recursive := strings.CutSuffix(arg, "/...")
		if arg == "..." {
			dir, recursive = ".", true
		}
		if dir == "" {
			dir = "/"
		}
		info, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("sluice: test: %w", err)
		}
		if !info.IsDir() {
			if recursive {
				return nil, fmt.Errorf("sluice: test: %s is not a directory", dir)
			}
			add(arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path == dir {
					return nil
				}
				if !recursive || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(d.Name(), TestFileSuffix) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sluice: test: %w", err)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%w in %s (want files named *%s)", ErrNoTests, arg, TestFileSuffix)
		}
		slices.Sort(found)
		for _, f := range found {
			add(f)
		}
	}
	return out, nil
}
