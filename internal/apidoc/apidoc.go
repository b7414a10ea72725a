// Package apidoc serves the API's documentation over gRPC server reflection:
// the descriptors of knowingnode's own files come from the set embedded by
// gen/descriptor, which keeps the proto comments, so `grpcurl describe`
// shows them; every other file (health, reflection, well-known types) comes
// from the program's registry as before.
package apidoc

import (
	"fmt"

	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/knowingnode/knowingnode/gen/descriptor"
)

// Files parses the embedded descriptor set.
func Files() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptor.FileDescriptorSet, &set); err != nil {
		return nil, fmt.Errorf("apidoc: decode the embedded descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("apidoc: the embedded descriptor set: %w", err)
	}
	return files, nil
}

// Resolver finds a file or descriptor in the documented files first, then in
// the global registry.
func Resolver() (protodesc.Resolver, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	return chain{files, protoregistry.GlobalFiles}, nil
}

// Register registers the reflection services, v1 and the v1alpha that older
// clients still ask for, answering from Resolver.
func Register(s reflection.GRPCServer) error {
	r, err := Resolver()
	if err != nil {
		return err
	}
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: r}
	v1reflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	v1alphareflectiongrpc.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	return nil
}

// chain is a protodesc.Resolver that asks each registry in turn.
type chain []*protoregistry.Files

func (c chain) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, f := range c {
		if fd, err := f.FindFileByPath(path); err == nil {
			return fd, nil
		}
	}
	return nil, fmt.Errorf("file %q: %w", path, protoregistry.NotFound)
}

func (c chain) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, f := range c {
		if d, err := f.FindDescriptorByName(name); err == nil {
			return d, nil
		}
	}
	return nil, fmt.Errorf("descriptor %q: %w", name, protoregistry.NotFound)
}
