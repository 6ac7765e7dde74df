package records

import "github.com/sluicehq/sluice/stages"

// Doc describes the record formats, for the format parameter of the
// sources that read them.
var Doc = "jsonl (one JSON record per non-blank line, passed on undecoded), " +
	"csv (a header row, then one object of strings per row; a column without a name is column_N, N its position from 1, and a name the header repeats gets _2, _3... on its later columns) or lines (each line, blank ones included, as raw bytes); " +
	"a jsonl or csv record that is not valid UTF-8 is not mended but dead-lettered, its reason naming the line and the byte"

// ColumnsParam declares the columns parameter of the sinks that write
// records in a format; [CheckColumns] validates it.
var ColumnsParam = stages.Param{
	Name: "columns", Type: stages.TypeStringList,
	Doc: "CSV column order, with format csv; default the sorted keys of the first record written.",
}

// CheckColumns validates the columns parameter of a sink writing format.
func CheckColumns(p stages.Params, format string) error {
	if !p.Has("columns") {
		return nil
	}
	cols := p.Strings("columns")
	if format != CSV {
		return stages.ParamErrorf("columns", "only applies to format csv (format is %s)", format)
	}
	if len(cols) == 0 {
		return stages.ParamErrorf("columns", "must name at least one column")
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if seen[c] {
			return stages.ParamErrorf("columns", "repeats %q", c)
		}
		seen[c] = true
	}
	return nil
}
