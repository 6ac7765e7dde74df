package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultAllowEnvPrefix is the prefix of the variables that ${VAR} may
// read in a pipeline validated under a [Policy] that names none.
const DefaultAllowEnvPrefix = "SLUICE_VAR_"

// Policy restricts what a pipeline written by someone else may do on the
// host that runs it: a worker validates every deployed pipeline under
// one, and `sluice deploy` validates under the same settings before it
// stores the pipeline, so that the deployer learns at once what the
// workers will refuse. A pipeline file run by its own user (`sluice run`)
// has no policy. Each refusal is a [Problem] at the line of the key or
// value it is about.
//
// What a policy checks:
//   - ${VAR} and ${VAR:-default} may name only a variable whose name
//     begins with one of AllowEnv, whether it is set or not: no value of
//     another variable is read, and a default does not hide the mistake;
//   - stage types that run programs of the host ([stages.Spec.RunsCommands],
//     the exec transform) only with AllowExec;
//   - plugins: only with AllowPlugins, each file under DataDir;
//   - every parameter that is a file-system path ([stages.Param.Path],
//     [stages.Spec.Paths]) resolves under DataDir: a relative path is
//     taken as relative to it (the stage gets the absolute path), an
//     absolute one must lie in it, a path that leaves it by ".." is
//     refused, and so is a file: URI. Unless Lexical, the part of the
//     path that exists when the pipeline is validated is resolved through
//     its symbolic links, which must not lead out of DataDir either;
//     links made later, and files a glob matches later, are not checked.
type Policy struct {
	// AllowEnv lists the prefixes of the names of the variables that
	// ${VAR} may read; empty means [DefaultAllowEnvPrefix] alone.
	AllowEnv []string
	// AllowExec allows stage types that run programs of the host.
	AllowExec bool
	// AllowPlugins allows plugins:, Go code loaded into the process.
	AllowPlugins bool
	// DataDir is the directory that file-system paths must stay in;
	// empty means the working directory.
	DataDir string
	// Lexical checks paths by their text only, not against the file
	// system: for `sluice deploy`, whose file system is not the worker's.
	Lexical bool
}

// Validate checks the policy: each prefix of AllowEnv is the beginning of
// a variable name, and DataDir, unless Lexical, is a directory. Errors
// wrap [ErrInvalidPolicy].
func (pol *Policy) Validate() error {
	var problems []string
	for _, p := range pol.AllowEnv {
		if p == "" || !varName.MatchString(p) {
			problems = append(problems, fmt.Sprintf("allow_env: prefix %q must be the beginning of a variable name: letters, digits and '_', not a digit first", p))
		}
	}
	if !pol.Lexical {
		root, err := pol.root()
		if err == nil {
			var fi os.FileInfo
			if fi, err = os.Stat(root); err == nil && !fi.IsDir() {
				err = errors.New("not a directory")
			}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("data_dir %q: %v", pol.DataDir, err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidPolicy, strings.Join(problems, "; "))
	}
	return nil
}

// prefixes returns the allowed prefixes of variable names.
func (pol *Policy) prefixes() []string {
	if len(pol.AllowEnv) == 0 {
		return []string{DefaultAllowEnvPrefix}
	}
	return pol.AllowEnv
}

// allowsVar reports whether ${name} may be read.
func (pol *Policy) allowsVar(name string) bool {
	for _, p := range pol.prefixes() {
		if p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// deniedVar is the message for a variable the policy does not allow.
func (pol *Policy) deniedVar(name string) string {
	return fmt.Sprintf("variable %q may not be read by a deployed pipeline: only names beginning with %s (the worker's allow_env, --allow-env)",
		name, strings.Join(pol.prefixes(), ", "))
}

// root returns the data directory, absolute and clean.
func (pol *Policy) root() (string, error) {
	dir := pol.DataDir
	if dir == "" {
		dir = "."
	}
	return filepath.Abs(dir)
}

// confine returns the absolute path that path, a parameter or plugin of a
// pipeline, stands for under the data directory, or why it is refused.
func (pol *Policy) confine(path string) (string, error) {
	if strings.HasPrefix(path, "file:") {
		return "", errors.New("a file: URI is not allowed in a deployed pipeline: give a path")
	}
	if path == "" {
		return "", errors.New("empty path")
	}
	root, err := pol.root()
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	abs := filepath.Clean(path)
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(root, abs)
	}
	if !within(root, abs) {
		return "", fmt.Errorf("path %q is outside the data directory %s (the worker's data_dir, --data-dir)", path, root)
	}
	if pol.Lexical {
		return abs, nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	// The part of the path that exists, up to the first glob character.
	exists := abs
	if i := strings.IndexAny(exists, `*?[\`); i >= 0 {
		exists = filepath.Dir(exists[:i+1])
	}
	for {
		if _, err := os.Lstat(exists); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("path %q: %w", path, err)
		}
		exists = filepath.Dir(exists)
	}
	real, err := filepath.EvalSymlinks(exists)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", path, err)
	}
	if !within(realRoot, real) {
		return "", fmt.Errorf("path %q leads by a symbolic link out of the data directory %s (the worker's data_dir, --data-dir)", path, root)
	}
	return abs, nil
}

// within reports whether the clean absolute path p is dir or under it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
