// Command readme prints the README's benchmark section from the JSON files
// `make bench` wrote: go run ./bench/readme [bench/results].
package main

import (
	"fmt"
	"os"

	"github.com/vxnet/vxnet/bench"
)

func main() {
	dir := "bench/results"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	s, rs, err := bench.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readme:", err)
		os.Exit(1)
	}
	fmt.Print(bench.Markdown(s, rs))
}
