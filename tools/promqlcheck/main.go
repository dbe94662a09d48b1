// Command promqlcheck parses PromQL expressions with the Prometheus parser, one per line on
// standard input, and reports each one that does not parse. The static chart tests feed it every
// query of the chart's alerts, autoscalers, dashboard and prometheus-adapter rules, so a syntax
// error fails a test instead of an alert that never loads.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	p := parser.NewParser(parser.Options{})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	bad, n := 0, 0
	for in.Scan() {
		expr := strings.TrimSpace(in.Text())
		if expr == "" {
			continue
		}
		n++
		if _, err := p.ParseExpr(expr); err != nil {
			bad++
			fmt.Printf("line %d: %s\n  %v\n", n, expr, err)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "promqlcheck:", err)
		os.Exit(2)
	}
	fmt.Printf("%d expressions, %d invalid\n", n, bad)
	if bad > 0 {
		os.Exit(1)
	}
}
