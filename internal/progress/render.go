package progress

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// barWidth is the number of cells of a source's progress bar.
const barWidth = 24

// Lines renders frames as the block drawn on a terminal: a heading line
// per pipeline and a line per stage, each cut to width columns (no limit
// when width <= 0).
func Lines(frames []Frame, width int) []string {
	var lines []string
	for _, f := range frames {
		lines = append(lines, fmt.Sprintf("%s  run %d  %s", f.Pipeline, f.Run, hms(f.Elapsed)))
		nameW := 0
		for _, r := range f.Rows {
			nameW = max(nameW, len(r.Stage))
		}
		for _, r := range f.Rows {
			lines = append(lines, stageLine(r, nameW))
		}
	}
	if width > 0 {
		for i, l := range lines {
			if len(l) >= width {
				lines[i] = l[:width-1] // the last column stays free: no wrap
			}
		}
	}
	return lines
}

// stageLine renders one stage.
func stageLine(r Row, nameW int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-*s  in %9s  out %9s  %10s", nameW, r.Stage, count(r.In), count(r.Out), rate(r.Rate))
	switch {
	case r.HasBytes && r.Total >= 0:
		fmt.Fprintf(&b, "  %s %5.1f%%", bar(r.Done, r.Total), percent(r.Done, r.Total))
		if r.Done < r.Total {
			b.WriteString("  ETA ")
			if r.HasETA {
				b.WriteString(hms(r.ETA))
			} else {
				b.WriteString("?")
			}
		}
	case r.HasBytes:
		fmt.Fprintf(&b, "  read %s", byteSize(r.Done))
	case r.HasPending:
		fmt.Fprintf(&b, "  pending %s", count(r.Pending))
	case r.Role != stages.RoleSource:
		b.WriteString("  pending ?")
	}
	if r.Held > 0 {
		fmt.Fprintf(&b, "  HELD %s", hms(r.Held))
	}
	return b.String()
}

// LogAttrs returns the attributes of the "progress" log line of f: the
// pipeline and run, and a group per stage under "stages".
func LogAttrs(f Frame) []any {
	groups := make([]any, 0, len(f.Rows))
	for _, r := range f.Rows {
		attrs := []any{slog.Uint64("in", r.In), slog.Uint64("out", r.Out)}
		if r.Rate >= 0 {
			attrs = append(attrs, slog.Float64("rate", round1(r.Rate)))
		}
		if r.HasPending {
			attrs = append(attrs, slog.Uint64("pending", r.Pending))
		}
		if r.HasBytes {
			attrs = append(attrs, slog.Int64("bytes_read", r.Done))
			if r.Total >= 0 {
				attrs = append(attrs, slog.Int64("bytes_total", r.Total), slog.Float64("percent", round1(percent(r.Done, r.Total))))
				if r.HasETA && r.Done < r.Total {
					attrs = append(attrs, slog.String("eta", r.ETA.Round(time.Second).String()))
				}
			}
		}
		if r.Held > 0 {
			attrs = append(attrs, slog.String("held", r.Held.Round(time.Second).String()))
		}
		groups = append(groups, slog.Group(r.Stage, attrs...))
	}
	return []any{slog.String("pipeline", f.Pipeline), slog.Uint64("run", f.Run), slog.Group("stages", groups...)}
}

// count formats n with a comma every three digits.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// rate formats records per second, "-/s" when not known yet.
func rate(r float64) string {
	if r < 0 {
		return "-/s"
	}
	return count(uint64(r+0.5)) + "/s"
}

// percent is done of total in percent; 100 for an empty total.
func percent(done, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return float64(done) / float64(total) * 100
}

// bar draws done of total as [####----].
func bar(done, total int64) string {
	fill := barWidth
	if total > 0 {
		fill = int(done * barWidth / total)
	}
	fill = min(max(fill, 0), barWidth)
	return "[" + strings.Repeat("#", fill) + strings.Repeat("-", barWidth-fill) + "]"
}

// hms formats d as m:ss or h:mm:ss.
func hms(d time.Duration) string {
	secs := int64(d.Round(time.Second) / time.Second)
	h, m, s := secs/3600, secs/60%60, secs%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// byteSize formats n bytes in the largest binary unit under it.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + []string{"", "KiB", "MiB", "GiB", "TiB"}[exp]
}

// round1 rounds x to one decimal.
func round1(x float64) float64 {
	return float64(int64(x*10+0.5)) / 10
}
