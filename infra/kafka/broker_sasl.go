package kafka

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// saslOpts make the embedded broker require SCRAM with s's credentials;
// none when s is empty.
func saslOpts(s SASL) []kfake.Opt {
	if !s.Enabled() {
		return nil
	}
	return []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser(SASLScramSHA256, s.User, s.Password),
		kfake.Superuser(SASLScramSHA512, s.User, s.Password),
	}
}

// forgetUsers deletes the users kfake persisted in dir: it would restore
// them over the ones it is given, and the configuration alone must say who
// may connect, so a changed password or removed credentials take effect on
// restart.
func forgetUsers(dir string) error {
	if err := os.Remove(filepath.Join(dir, "sasl.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("embedded broker: forget persisted users: %w", err)
	}
	return nil
}

// advertiseHandshakeV0 makes the broker's ApiVersions answer list
// SaslHandshake from version 0, as every Kafka release does. librdkafka
// (kcat, confluent-kafka-python/-go, node-rdkafka) refuses SCRAM with a
// broker that does not, although it then sends version 1, the only one
// kfake serves. Requests of version 5 and up (which name the cluster) are
// left to kfake.
func advertiseHandshakeV0(c *kfake.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// ApiVersions is answered before authentication, so a client without
	// credentials can read what kfake advertises.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	base, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("read the broker's api versions: %w", err)
	}
	keys := slices.Clone(base.ApiKeys)
	for i := range keys {
		if keys[i].ApiKey == int16(kmsg.SASLHandshake) {
			keys[i].MinVersion = 0
		}
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ApiVersionsRequest)
		if req.Version >= 5 {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = slices.Clone(keys)
		resp.SupportedFeatures = base.SupportedFeatures
		resp.FinalizedFeatures = base.FinalizedFeatures
		resp.FinalizedFeaturesEpoch = base.FinalizedFeaturesEpoch
		return resp, nil, true
	})
	return nil
}
