package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
)

//go:generate sh assets/fetch-uplot.sh

// The chart library (see assets/uplot.pin) and the page's own code.
var (
	//go:embed assets/uPlot.iife.min.js
	uplotJS []byte
	//go:embed assets/uPlot.min.css
	uplotCSS []byte
	//go:embed assets/app.js
	appJS []byte
	//go:embed assets/app.css
	appCSS []byte
)

// CSP lets the page run only its own inline code and reach nothing: a
// report opened from disk makes no network request, and any attempt is a
// console error. The page carries it in a meta element; a server that
// serves a report sends it as its header too.
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

// Write writes d as one self-contained HTML page.
func Write(w io.Writer, d Data) error {
	// encoding/json escapes <, > and & in strings, so the data cannot end
	// its script element.
	js, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("report data: %w", err)
	}
	for _, part := range [][]byte{uplotJS, appJS} {
		if bytes.Contains(bytes.ToLower(part), []byte("</script")) {
			return fmt.Errorf("report: an embedded script contains </script")
		}
	}
	var b bytes.Buffer
	title := html.EscapeString(d.Title)
	fmt.Fprintf(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"+
		"<meta http-equiv=\"Content-Security-Policy\" content=\"%s\">\n"+
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n", CSP, title)
	b.WriteString("<!-- uPlot " + uplotVersion + " (MIT licence, (c) Leon Sorokin), embedded; see internal/load/report/assets -->\n<style>")
	b.Write(uplotCSS)
	b.WriteString("</style>\n<style>")
	b.Write(appCSS)
	fmt.Fprintf(&b, "</style>\n</head><body>\n<h1>%s</h1>\n<div id=\"app\"><noscript>This report draws its charts with JavaScript.</noscript></div>\n", title)
	b.WriteString(dataOpen)
	b.Write(js)
	b.WriteString("</script>\n<script>")
	b.Write(uplotJS)
	b.WriteString("</script>\n<script>")
	b.Write(appJS)
	b.WriteString("</script>\n</body></html>\n")
	_, err = w.Write(b.Bytes())
	return err
}

// WriteFile writes the report of r to path, through a temporary file, so a
// reader never sees half a report.
func WriteFile(path string, r Run) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.html")
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, Build(r)); err != nil {
		tmp.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}

// dataOpen is where a report's embedded data begins.
const dataOpen = `<script type="application/json" id="report-data">`

// ReadFile reads back the data of a report that Write wrote, for tests and
// tools that summarize reports.
func ReadFile(path string) (Data, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Data{}, err
	}
	_, rest, ok := bytes.Cut(b, []byte(dataOpen))
	js, _, ok2 := bytes.Cut(rest, []byte("</script>"))
	if !ok || !ok2 {
		return Data{}, fmt.Errorf("report %s: no embedded data", path)
	}
	var d Data
	if err := json.Unmarshal(js, &d); err != nil {
		return Data{}, fmt.Errorf("report %s: %w", path, err)
	}
	return d, nil
}
