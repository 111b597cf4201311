package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/rtstack/rtstack/events"
)

//go:embed avro/*.avsc
var files embed.FS

// Namespace is the Avro namespace of every event record.
const Namespace = "rtstack.events"

var fileName = regexp.MustCompile(`^(\d+)-([A-Za-z]+)-v(\d+)\.avsc$`)

// Schema is one version of one event type's schema.
type Schema struct {
	ID      int         // writer schema id carried in each record
	Type    events.Type // the event type it describes
	Version int         // 1, 2, … per type
	Text    string      // the .avsc text, as committed
	Avro    avro.Schema // parsed
}

// Subject is the registry subject (RecordNameStrategy): the record's full
// name, independent of the topic.
func (s *Schema) Subject() string { return Namespace + "." + string(s.Type) }

// Registry is the set of known schemas. It is read-only after construction
// and safe for concurrent use.
type Registry struct {
	all    []*Schema // by type order, then version
	byID   map[int]*Schema
	latest map[events.Type]*Schema
}

// Embedded parses the schemas compiled into the binary. It fails if a file is
// misnamed, unparsable, names an unknown type, or reuses an id or version.
func Embedded() (*Registry, error) {
	entries, err := fs.ReadDir(files, "avro")
	if err != nil {
		return nil, fmt.Errorf("read embedded schemas: %w", err)
	}
	var list []*Schema
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("schema file %q: want NNN-Type-vV.avsc", e.Name())
		}
		text, err := files.ReadFile(path.Join("avro", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		id, _ := strconv.Atoi(m[1])
		version, _ := strconv.Atoi(m[3])
		s, err := parse(id, events.Type(m[2]), version, string(text))
		if err != nil {
			return nil, fmt.Errorf("schema file %s: %w", e.Name(), err)
		}
		list = append(list, s)
	}
	return newRegistry(list)
}

func parse(id int, t events.Type, version int, text string) (*Schema, error) {
	if _, err := events.New(t); err != nil {
		return nil, err
	}
	parsed, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("parse avro: %w", err)
	}
	rec, ok := parsed.(*avro.RecordSchema)
	if !ok || rec.FullName() != Namespace+"."+string(t) {
		return nil, fmt.Errorf("want a record named %s.%s", Namespace, t)
	}
	return &Schema{ID: id, Type: t, Version: version, Text: text, Avro: parsed}, nil
}

func newRegistry(list []*Schema) (*Registry, error) {
	r := &Registry{byID: map[int]*Schema{}, latest: map[events.Type]*Schema{}}
	var errs []error
	seen := map[events.Type]map[int]bool{}
	for _, s := range list {
		if _, dup := r.byID[s.ID]; dup {
			errs = append(errs, fmt.Errorf("schema id %d used twice", s.ID))
		}
		if seen[s.Type] == nil {
			seen[s.Type] = map[int]bool{}
		}
		if seen[s.Type][s.Version] {
			errs = append(errs, fmt.Errorf("%s v%d defined twice", s.Type, s.Version))
		}
		seen[s.Type][s.Version] = true
		r.byID[s.ID] = s
		if cur := r.latest[s.Type]; cur == nil || s.Version > cur.Version {
			r.latest[s.Type] = s
		}
	}
	for _, t := range events.Types {
		n := len(seen[t])
		if n == 0 {
			errs = append(errs, fmt.Errorf("no schema for event type %s", t))
		}
		for v := 1; v <= n; v++ {
			if !seen[t][v] {
				errs = append(errs, fmt.Errorf("%s: versions must be 1..%d, v%d missing", t, n, v))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	order := func(t events.Type) int { return slices.Index(events.Types, t) }
	r.all = slices.Clone(list)
	slices.SortFunc(r.all, func(a, b *Schema) int {
		if d := order(a.Type) - order(b.Type); d != 0 {
			return d
		}
		return a.Version - b.Version
	})
	return r, nil
}

// All returns every schema, grouped by event type in events.Types order,
// oldest version first.
func (r *Registry) All() []*Schema { return r.all }

// ByID returns the schema with the given id, or nil.
func (r *Registry) ByID(id int) *Schema { return r.byID[id] }

// Latest returns the newest version of t's schema, or nil.
func (r *Registry) Latest(t events.Type) *Schema { return r.latest[t] }

// Version returns version v of t's schema, or nil.
func (r *Registry) Version(t events.Type, v int) *Schema {
	for _, s := range r.all {
		if s.Type == t && s.Version == v {
			return s
		}
	}
	return nil
}

// Versions returns every version of t's schema, oldest first.
func (r *Registry) Versions(t events.Type) []*Schema {
	var out []*Schema
	for _, s := range r.all {
		if s.Type == t {
			out = append(out, s)
		}
	}
	return out
}
