// Package descriptor embeds the FileDescriptorSet of proto/ WITH source info
// (the comments), which the generated Go code leaves out (written by hand;
// `make generate` rewrites only the .binpb beside it, with buf build).
package descriptor

import _ "embed"

// FileDescriptorSet is a google.protobuf.FileDescriptorSet of every file in
// proto/ and its imports, with SourceCodeInfo.
//
//go:embed knowingnode.binpb
var FileDescriptorSet []byte
