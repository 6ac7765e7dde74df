package stages

// ProgressReporter is a Source that can tell how far it has read, for the
// progress display of a run. The runner calls Progress from another
// goroutine than Read, so it must be safe to call concurrently with Read
// and Close, and after Close (it then reports where reading stopped).
type ProgressReporter interface {
	Source
	// Progress returns how many bytes of its input the source has read,
	// counting from the start of the input (a resumed source counts what
	// it skipped as read), and how many there are in all. total is -1
	// when the source cannot know it (a pipe, a stream, a decompressed
	// input); done never exceeds a known total.
	Progress() (done, total int64)
}
