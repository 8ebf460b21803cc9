// Command readme prints the README's benchmark section from the JSON files
// `make bench` wrote: go run ./bench/readme [-plot] [bench/results]. With
// -plot it draws the PNGs again from the JSON first (after a change of
// the plot, without measuring again).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/vxnet/vxnet/bench"
)

func main() {
	replot := flag.Bool("plot", false, "draw the PNGs again from the JSON files")
	flag.Parse()
	dir := "bench/results"
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	s, rs, err := bench.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readme:", err)
		os.Exit(1)
	}
	for _, r := range rs {
		if !*replot {
			break
		}
		if err := r.Write(dir, r.File); err != nil {
			fmt.Fprintln(os.Stderr, "readme:", err)
			os.Exit(1)
		}
	}
	fmt.Print(bench.Markdown(s, rs))
}
