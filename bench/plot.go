// Package bench writes benchmark results: a JSON file with every sample and
// a PNG bar chart of the medians, side by side, under bench/results/; and
// reads them back to print the README's table (report.go).
package bench

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one measured variant: its samples in the unit of Result.
type Series struct {
	Name    string    `json:"name"`
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	P90     float64   `json:"p90"`
	P99     float64   `json:"p99"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

// Result is one benchmark run.
type Result struct {
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	When    time.Time `json:"when"`
	Command string    `json:"command"`
	Note    string    `json:"note,omitempty"`
	// Ratio says what the ratio column of Table divides by: "" for the
	// first series' median; "none" for no ratio column.
	Ratio  string   `json:"ratio,omitempty"`
	Series []Series `json:"series"`
	// Figures are single numbers measured beside the series (Consul
	// writes per endpoint, neighbour overflows...), by name.
	Figures map[string]float64 `json:"figures,omitempty"`
	// File is the base name the result was written under (not stored).
	File string `json:"-"`
}

// Summarize fills in the statistics of every series.
func (r *Result) Summarize() {
	for i := range r.Series {
		s := slices.Clone(r.Series[i].Samples)
		slices.Sort(s)
		if len(s) == 0 {
			continue
		}
		r.Series[i].Median = quantile(s, 0.5)
		r.Series[i].P90 = quantile(s, 0.9)
		r.Series[i].P99 = quantile(s, 0.99)
		r.Series[i].Min, r.Series[i].Max = s[0], s[len(s)-1]
	}
}

// Median is the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return quantile(s, 0.5)
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(pos)
	if lo+1 >= len(sorted) {
		return sorted[lo]
	}
	return sorted[lo] + (pos-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Table is the result as a markdown table (for the README): the ratio
// column divides each median by the first series' median.
func (r *Result) Table() string {
	out := fmt.Sprintf("| %s | n | median (%s) | p90 | p99 | min | max |", r.Name, r.Unit)
	sep := "|---|---|---|---|---|---|---|"
	if r.Ratio != "none" && len(r.Series) > 0 {
		out += " ratio to " + r.Series[0].Name + " |"
		sep += "---|"
	}
	out += "\n" + sep + "\n"
	for _, s := range r.Series {
		out += fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s |", s.Name, len(s.Samples), num(s.Median), num(s.P90), num(s.P99), num(s.Min), num(s.Max))
		if r.Ratio != "none" {
			out += fmt.Sprintf(" %.2f× |", s.Median/r.Series[0].Median)
		}
		out += "\n"
	}
	return out
}

// num prints a figure with three significant digits or more.
func num(v float64) string {
	switch {
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Write stores dir/<name>.json and dir/<name>.png.
func (r *Result) Write(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	r.File = name
	f, err := os.Create(filepath.Join(dir, name+".png"))
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, r.plot())
}

// plot draws one horizontal bar per series (median), with p90 as a tick;
// negative figures are drawn as 0.
func (r *Result) plot() image.Image {
	const rowH, top, charW = 40, 40, 7 // basicfont.Face7x13 is 7 px wide
	left := 210
	for _, s := range r.Series {
		left = max(left, 20+charW*len(asciiLabel.Replace(s.Name)))
	}
	w := left + 470
	h := top + rowH*len(r.Series) + 30
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	max := 0.0
	for _, s := range r.Series {
		max = maxf(max, s.P90)
	}
	scale := float64(w-left-80) / maxf(max, 1e-9)
	label(img, 10, 20, fmt.Sprintf("%s (median, p90 tick; %s)", r.Name, r.Unit))
	bar := color.RGBA{0x3b, 0x6e, 0xc4, 0xff}
	for i, s := range r.Series {
		y := top + i*rowH
		label(img, 10, y+18, s.Name)
		draw.Draw(img, image.Rect(left, y+4, left+int(maxf(s.Median, 0)*scale), y+rowH-12), &image.Uniform{bar}, image.Point{}, draw.Src)
		x := left + int(maxf(s.P90, 0)*scale)
		draw.Draw(img, image.Rect(x, y, x+2, y+rowH-8), image.Black, image.Point{}, draw.Src)
		label(img, x+6, y+18, fmt.Sprintf("%.1f", s.Median))
	}
	return img
}

// asciiLabel spells the non-ASCII characters of names in ASCII, the only
// ones basicfont draws.
var asciiLabel = strings.NewReplacer("–", "-", "↔", "<->", "→", "->", "×", "x", "≤", "<=", "≥", ">=")

func label(img draw.Image, x, y int, s string) {
	d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(asciiLabel.Replace(s))
}

func maxf(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
