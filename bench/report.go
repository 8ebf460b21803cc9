package bench

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Target is one goal of issue #13 against the figure one run measured.
type Target struct {
	What   string `json:"what"`
	Goal   string `json:"goal"`
	Figure string `json:"figure"`
	Met    bool   `json:"met"`
}

// Summary is what one `make bench` run was on, its targets and the names
// of its results (dir/<name>.json).
type Summary struct {
	When    time.Time `json:"when"`
	Machine string    `json:"machine"`
	Docker  string    `json:"docker"`
	Note    string    `json:"note,omitempty"`
	Results []string  `json:"results"`
	Targets []Target  `json:"targets"`
}

// summaryFile is the summary's base name under the results directory.
const summaryFile = "summary"

// WriteSummary stores dir/summary.json.
func WriteSummary(dir string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, summaryFile+".json"), append(b, '\n'), 0o644)
}

// Load reads dir/summary.json and the results it names.
func Load(dir string) (*Summary, []*Result, error) {
	var s Summary
	if err := readJSON(filepath.Join(dir, summaryFile+".json"), &s); err != nil {
		return nil, nil, err
	}
	var rs []*Result
	for _, name := range s.Results {
		r := &Result{File: name}
		if err := readJSON(filepath.Join(dir, name+".json"), r); err != nil {
			return nil, nil, err
		}
		rs = append(rs, r)
	}
	return &s, rs, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read bench result: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read bench result %s: %w", path, err)
	}
	return nil
}

// Markdown is the README section of a run: where it ran, the targets,
// then every result's table with its figures and a link to its plot.
func Markdown(s *Summary, rs []*Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on %s, %s.\n\n", s.When.Format("2006-01-02 15:04 MST"), s.Machine, s.Docker)
	if s.Note != "" {
		fmt.Fprintf(&b, "%s\n\n", s.Note)
	}
	b.WriteString("| target (issue #13) | goal | this run | met |\n|---|---|---|---|\n")
	for _, t := range s.Targets {
		met := "no"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.What, t.Goal, t.Figure, met)
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "\n%s", r.Table())
		if r.Note != "" {
			fmt.Fprintf(&b, "\n%s\n", r.Note)
		}
		for _, k := range slices.Sorted(maps.Keys(r.Figures)) {
			fmt.Fprintf(&b, "- %s: %s\n", k, num(r.Figures[k]))
		}
		fmt.Fprintf(&b, "\n![%s](bench/results/%s.png)\n", r.Name, r.File)
	}
	return b.String()
}
