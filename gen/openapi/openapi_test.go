package openapi

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestInfo: the document served at /openapi.json introduces itself (from
// proto/knowingnode/v1/openapi.yaml), rather than protoc-gen-openapiv2's
// placeholders, and documents every operation.
func TestInfo(t *testing.T) {
	var doc struct {
		Swagger string `json:"swagger"`
		Info    struct {
			Title, Description, Version string
		} `json:"info"`
		Paths map[string]map[string]struct {
			Summary     string `json:"summary"`
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "knowingnode" {
		t.Errorf("info.title %q, want knowingnode", doc.Info.Title)
	}
	if doc.Info.Version != "v1" {
		t.Errorf("info.version %q, want v1 (the API version)", doc.Info.Version)
	}
	if !strings.Contains(doc.Info.Description, "FanOut") || len(doc.Info.Description) < 100 {
		t.Errorf("info.description %q says too little", doc.Info.Description)
	}
	for _, p := range []string{"/v1/identity", "/v1/fanout", "/v1/targets"} {
		op, ok := doc.Paths[p]["get"]
		if !ok || op.Summary == "" {
			t.Errorf("GET %s: missing or without a summary: %+v", p, op)
		}
	}
}
