package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteLoadMarkdown: results written as JSON (and PNG) read back with
// their summary give the README section: targets, each table with its
// statistics and ratios, figures and plot links.
func TestWriteLoadMarkdown(t *testing.T) {
	dir := t.TempDir()
	r := &Result{Name: "tp", Unit: "Gbit/s", Series: []Series{
		{Name: "raw", Samples: []float64{10, 12, 11}},
		{Name: "vxnet", Samples: []float64{9, 8, 8.8, 9.4}},
	}, Figures: map[string]float64{"writes per endpoint": 5}}
	r.Summarize()
	if s := r.Series[1]; s.Median != 8.9 || s.Min != 8 || s.Max != 9.4 {
		t.Errorf("vxnet: median %v min %v max %v, want 8.9 8 9.4", s.Median, s.Min, s.Max)
	}
	if err := r.Write(dir, "throughput-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "throughput-1.png")); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	err := WriteSummary(dir, &Summary{When: when, Machine: "m", Docker: "d", Results: []string{"throughput-1"},
		Targets: []Target{{What: "throughput", Goal: "≥0.95×", Figure: "0.81×", Met: false}}})
	if err != nil {
		t.Fatal(err)
	}
	s, rs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	md := Markdown(s, rs)
	for _, want := range []string{
		"Run of 2026-11-30 10:00 UTC on m, d.",
		"| throughput | ≥0.95× | 0.81× | no |",
		"| raw | 3 | 11.0 | 11.8 | 12.0 | 10.0 | 12.0 | 1.00× |",
		"| vxnet | 4 | 8.90 |",
		" 0.81× |",
		"- writes per endpoint: 5.00",
		"![tp](bench/results/throughput-1.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if _, _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "summary.json") {
		t.Errorf("Load of an empty dir: %v, want an error naming summary.json", err)
	}
}
