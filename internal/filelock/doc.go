// Package filelock takes exclusive advisory locks on open files (flock
// where the platform has it), which the kernel drops when the process
// holding them dies: the file sink's one writer per file, the embedded
// server's one process per store.
package filelock
