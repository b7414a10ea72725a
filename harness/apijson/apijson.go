// Package apijson is how the tests read the REST API: replies decoded with
// protojson into the generated types, exactly as the gateway wrote them, so
// no test declares the API's JSON shape again by hand.
package apijson

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxBody bounds a reply the tests read.
const maxBody = 16 << 20

// Get fetches url with c (http.DefaultClient when nil) and decodes a 200
// reply into msg; any other status is an error carrying the body.
func Get(ctx context.Context, c *http.Client, url string, msg proto.Message) error {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return Decode(body, msg)
}

// Decode decodes one JSON reply into msg. Unknown fields are an error: a
// test must notice when the API grows a field it does not know.
func Decode(body []byte, msg proto.Message) error {
	if err := (protojson.UnmarshalOptions{}).Unmarshal(body, msg); err != nil {
		return fmt.Errorf("decode %T: %w\n%s", msg, err, body)
	}
	return nil
}
