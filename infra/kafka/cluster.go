package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms a client may authenticate with.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultCompression is the producer's batch compression: snappy is cheap
// on CPU, understood by every broker, and what kgo and most clients pick.
const DefaultCompression = "snappy"

// SASL holds the credentials of a client. The zero value authenticates
// nothing.
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512 (case
	// does not matter). Default SASLScramSHA256 when User is set.
	Mechanism string
	User      string
	Password  string
}

// Enabled reports whether the client authenticates.
func (s SASL) Enabled() bool { return s.User != "" || s.Password != "" || s.Mechanism != "" }

// MechanismName is the effective mechanism, upper-cased: Mechanism, or
// SASLScramSHA256 when it is empty.
func (s SASL) MechanismName() string {
	if s.Mechanism == "" {
		return SASLScramSHA256
	}
	return strings.ToUpper(s.Mechanism)
}

// Validate reports every problem of s, joined.
func (s SASL) Validate() error {
	if !s.Enabled() {
		return nil
	}
	var errs []error
	if s.User == "" || s.Password == "" {
		errs = append(errs, errors.New("SASL needs both a user and a password"))
	}
	switch s.MechanismName() {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		errs = append(errs, fmt.Errorf("SASL mechanism %q: want %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	return errors.Join(errs...)
}

func (s SASL) saslMechanism() sasl.Mechanism {
	switch s.MechanismName() {
	case SASLPlain:
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	default:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
	}
}

// TLS configures encryption to the brokers. Files are PEM.
type TLS struct {
	// Enabled turns TLS on; the other fields need it.
	Enabled bool
	// CAFile verifies the brokers' certificates; empty trusts the system's
	// roots (what a managed cluster's public certificate needs).
	CAFile string
	// CertFile and KeyFile are the client's certificate (mutual TLS); both
	// or neither.
	CertFile string
	KeyFile  string
}

// Config loads the files and returns the client's tls.Config, nil when TLS
// is off.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			return nil, errors.New("TLS files are set but TLS is off")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("TLS client certificate and key go together: set both or neither")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// compressionCodec maps a KAFKA_COMPRESSION name to kgo's codec; "" is
// DefaultCompression.
func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "", "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// clusterOpts are the options that reach a secured cluster: TLS, SASL and
// the producer's compression.
func (c ClientConfig) clusterOpts() ([]kgo.Opt, error) {
	codec, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.ProducerBatchCompression(codec)}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if err := c.SASL.Validate(); err != nil {
		return nil, err
	}
	if c.SASL.Enabled() {
		opts = append(opts, kgo.SASL(c.SASL.saslMechanism()))
	}
	return opts, nil
}
