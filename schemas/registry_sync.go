package schemas

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// Sync registers every embedded schema with the Confluent-compatible
// registry at url (idempotent: registering an existing schema returns its
// id) and returns a Registry that uses the ids the registry assigned. Both
// rtstack's own ids and the remote ones are unique per schema, so a log
// written with one must be read with the same setting.
func (r *Registry) Sync(ctx context.Context, url string) (*Registry, error) {
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", url, err)
	}
	remapped := make([]*Schema, 0, len(r.all))
	for _, s := range r.all { // oldest version first, so versions line up
		id, err := cl.RegisterSchema(ctx, s.Subject(), sr.Schema{Schema: s.Text, Type: sr.TypeAvro}, -1, -1)
		if err != nil {
			return nil, fmt.Errorf("register %s v%d at %s: %w", s.Type, s.Version, url, err)
		}
		c := *s
		c.ID = id
		remapped = append(remapped, &c)
	}
	return newRegistry(remapped)
}
