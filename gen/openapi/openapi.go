// Package openapi embeds the OpenAPI document generated from proto/ (written
// by hand; `make generate` rewrites only the JSON beside it).
package openapi

import _ "embed"

// JSON is the OpenAPI v2 document of the HTTP gateway.
//
//go:embed knowingnode.swagger.json
var JSON []byte
