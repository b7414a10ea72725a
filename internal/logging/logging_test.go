package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		wantJSON      bool
		wantDebug     bool // whether a debug record is written
		wantErr       string
	}{
		{format: "auto", level: "info", wantJSON: true}, // a buffer is no terminal
		{format: "", level: "info", wantJSON: true},
		{format: "json", level: "debug", wantJSON: true, wantDebug: true},
		{format: "JSON", level: "warn", wantJSON: true},
		{format: "text", level: "info"},
		{format: "xml", level: "info", wantErr: `log format "xml"`},
		{format: "json", level: "loud", wantErr: `log level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, tt.format, tt.level)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d")
			log.Error("e", "k", "v")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if want := map[bool]int{true: 2, false: 1}[tt.wantDebug]; len(lines) != want {
				t.Fatalf("%d lines, want %d: %q", len(lines), want, lines)
			}
			last := lines[len(lines)-1]
			var m map[string]any
			isJSON := json.Unmarshal([]byte(last), &m) == nil
			if isJSON != tt.wantJSON {
				t.Errorf("JSON %v, want %v: %s", isJSON, tt.wantJSON, last)
			}
			if !isJSON && !strings.Contains(last, "k=v") {
				t.Errorf("text line lacks k=v: %s", last)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is not a terminal")
		}
	}
}
