package report

import (
	_ "embed"
	"strings"
)

//go:embed assets/uplot.pin
var uplotPin string

// uplotVersion is the embedded uPlot's version, from assets/uplot.pin.
var uplotVersion = pinField("version")

func pinField(name string) string {
	for line := range strings.SplitSeq(uplotPin, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}
