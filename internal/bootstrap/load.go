// Package bootstrap loads an Envoy v3 Bootstrap from YAML or JSON, the way
// Envoy's -c/--config-path and --config-yaml do, and rejects everything Legate
// does not implement with an error naming its path (see allowlist.go).
package bootstrap

//go:generate go test -run TestCompatibilityDoc -update .

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"sigs.k8s.io/yaml"
)

// Options names the configuration sources, as Envoy's flags do.
type Options struct {
	// ConfigPath is a bootstrap file (-c/--config-path): JSON if it ends in
	// .json, YAML otherwise.
	ConfigPath string
	// ConfigYAML (--config-yaml) is merged over the file with proto merge
	// semantics: scalars overwrite, repeated fields append.
	ConfigYAML string
}

// configYAMLSource names --config-yaml in error messages.
const configYAMLSource = "--config-yaml"

// Load parses, merges, unwraps, validates and support-checks a bootstrap.
// On failure the error is an Errors holding every problem found.
func Load(opts Options) (*bootstrapv3.Bootstrap, error) {
	bs, err := LoadWithProblems(opts)
	if err != nil {
		return nil, err
	}
	return bs, nil
}

// LoadWithProblems is Load that, when the configuration has problems, also
// returns the bootstrap as far as it parsed (nil when nothing could be), so
// that --mode validate can build it and report the problems of that stage
// in the same run. Such a bootstrap must never be served.
func LoadWithProblems(opts Options) (*bootstrapv3.Bootstrap, error) {
	if opts.ConfigPath == "" && opts.ConfigYAML == "" {
		return nil, Errors{errors.New("no configuration: set -c/--config-path or --config-yaml")}
	}
	bs := &bootstrapv3.Bootstrap{}
	var errs Errors
	if opts.ConfigPath != "" {
		data, err := os.ReadFile(opts.ConfigPath)
		if err != nil {
			return nil, Errors{fmt.Errorf("read config: %w", err)}
		}
		isJSON := strings.EqualFold(filepath.Ext(opts.ConfigPath), ".json")
		problems, fatal := decode(data, isJSON, opts.ConfigPath, bs)
		if fatal {
			return nil, problems
		}
		// A problem with a field path needs no file name: the path is from
		// the root of the bootstrap, as the support check's are. Those of
		// --config-yaml keep their prefix, to tell the two documents apart.
		for _, p := range problems {
			var fe *FieldError
			if errors.As(p, &fe) {
				p = fe
			}
			errs = append(errs, p)
		}
	}
	if opts.ConfigYAML != "" {
		overlay := &bootstrapv3.Bootstrap{}
		problems, fatal := decode([]byte(opts.ConfigYAML), false, configYAMLSource, overlay)
		if fatal {
			return nil, append(errs, problems...)
		}
		errs = append(errs, problems...)
		proto.Merge(bs, overlay)
	}
	// Parse problems do not stop here: the walker dropped what it could not
	// parse, so validation and the support check still report everything else.
	errs = append(errs, Check(bs, "")...)
	if len(errs) > 0 {
		return bs, errs
	}
	return bs, nil
}

// Covered reports whether problem p lies at or below the path of one of
// the problems in reported: a later stage's complaint about a part of the
// configuration already reported is a consequence, not news.
func Covered(p error, reported Errors) bool {
	var fe *FieldError
	if !errors.As(p, &fe) || fe.Path == "" {
		return false
	}
	for _, r := range reported {
		var re *FieldError
		if !errors.As(r, &re) || re.Path == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(fe.Path, re.Path); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return true
		}
	}
	return false
}

// decode turns one YAML or JSON document into m. The generic JSON tree is
// first walked against m's descriptors (see walker): that finds every unknown
// field and type mismatch with its path, unwraps TypedStructs and empties
// typed_configs of unsupported types, so protojson then has little left to
// reject and never needs types that are not linked. fatal means m could not
// be filled and nothing further can be checked.
func decode(data []byte, isJSON bool, source string, m proto.Message) (problems Errors, fatal bool) {
	return decodeWith(data, isJSON, source, m, nil)
}

// decodeWith is decode with extra types resolved in an Any besides the
// supported typed_config types (see walker.extra).
func decodeWith(data []byte, isJSON bool, source string, m proto.Message, extra map[protoreflect.FullName]bool) (problems Errors, fatal bool) {
	if !isJSON {
		j, err := yaml.YAMLToJSONStrict(data) // duplicate keys are errors, not silent overrides
		if err != nil {
			return Errors{fmt.Errorf("%s: %w", source, err)}, true
		}
		data = j
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keep 64-bit integers exact
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return Errors{fmt.Errorf("%s: invalid JSON: %w", source, err)}, true
	}
	if dec.More() {
		return Errors{fmt.Errorf("%s: invalid JSON: data after the top-level value", source)}, true
	}
	if isJSON {
		// encoding/json keeps the last of duplicate keys silently; a
		// YAML document with them is refused (YAMLToJSONStrict), so is
		// a JSON one.
		if path := duplicateKey(json.NewDecoder(bytes.NewReader(data)), ""); path != "" {
			return Errors{fmt.Errorf("%s: %w", source, &FieldError{Path: path, Msg: "key already set in this object"})}, true
		}
	}
	if tree == nil {
		return nil, false // an empty document is an empty bootstrap
	}
	w := walker{source: source, extra: extra}
	if !w.value(tree, m.ProtoReflect().Descriptor(), "") {
		return w.errs, true
	}
	data, err := json.Marshal(tree)
	if err != nil {
		return append(w.errs, fmt.Errorf("%s: %w", source, err)), true
	}
	opts := protojson.UnmarshalOptions{Resolver: resolver{extra: extra}}
	if err := opts.Unmarshal(data, m); err != nil {
		// The walker catches what it can with a path; this is what is left
		// (e.g. an out-of-range number). protojson's offsets refer to the
		// converted JSON, not the file, so only its message is useful.
		return append(w.errs, fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "proto: "))), true
	}
	return w.errs, false
}

// duplicateKey returns the path of the first key repeated within one
// object of the (valid) JSON value dec reads, or "".
func duplicateKey(dec *json.Decoder, path string) string {
	tok, err := dec.Token()
	if err != nil {
		return ""
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			k, ok := kt.(string)
			if err != nil || !ok {
				return ""
			}
			p := joinPath(path, k)
			if seen[k] {
				return p
			}
			seen[k] = true
			if d := duplicateKey(dec, p); d != "" {
				return d
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if d := duplicateKey(dec, fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	default:
		return ""
	}
	dec.Token() // the closing delimiter
	return ""
}

// resolver resolves the types Legate supports and maps every other type URL to
// an empty placeholder message, so an unsupported or unlinked typed_config
// parses (its body was removed by the walker) and the support check reports
// "<type> is not supported" with its path instead of protojson failing.
type resolver struct {
	extra map[protoreflect.FullName]bool // resolved too; see walker.extra
}

var placeholderType = func() protoreflect.MessageType {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("legate/internal/bootstrap/placeholder.proto"),
		Package:     proto.String("legate.internal.bootstrap"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Unsupported")}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		panic(err)
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0))
}()

func (r resolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if name := typeNameOf(url); !compiled().supportedTypes[name] && !r.extra[name] {
		return placeholderType, nil
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

func (resolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

func (resolver) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (resolver) FindExtensionByNumber(msg protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(msg, n)
}
