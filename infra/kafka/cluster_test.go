package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func scramBroker(t *testing.T, dir, user, pass string) *kafka.Broker {
	t.Helper()
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir,
		SASL: kafka.SASL{User: user, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// roundTrip creates the topic through cfg, appends one event and reads it
// back; the first error is returned.
func roundTrip(ctx context.Context, t *testing.T, cfg kafka.ClientConfig) error {
	cl, err := kafka.NewClient(cfg, kgo.ConsumeTopics(kafka.DefaultTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kafka.EnsureTopic(ctx, cl, kafka.DefaultTopic, 3); err != nil {
		return err
	}
	ev := &events.MessageSent{Envelope: events.Envelope{ID: "e1", Room: "r", User: "u", Time: 1}, MessageID: "m1", Text: "hi"}
	if _, err := kafka.NewLog(cl, kafkatest.Codec(t), kafka.DefaultTopic).Append(ctx, ev); err != nil {
		return err
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return errs[0].Err
		}
		if fs.NumRecords() > 0 {
			return nil
		}
	}
}

func TestEmbeddedBrokerRequiresSCRAM(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	b := scramBroker(t, dir, "rtstack", "s3cret")
	addr := []string{b.Addr()}

	for _, mech := range []string{kafka.SASLScramSHA256, kafka.SASLScramSHA512} {
		cfg := kafka.ClientConfig{Brokers: addr, SASL: kafka.SASL{Mechanism: mech, User: "rtstack", Password: "s3cret"}}
		if err := roundTrip(ctx, t, cfg); err != nil {
			t.Fatalf("%s with the right credentials: %v", mech, err)
		}
	}
	refused := map[string]kafka.ClientConfig{
		"no credentials": {Brokers: addr},
		"wrong password": {Brokers: addr, SASL: kafka.SASL{User: "rtstack", Password: "guess"}},
		"PLAIN":          {Brokers: addr, SASL: kafka.SASL{Mechanism: kafka.SASLPlain, User: "rtstack", Password: "s3cret"}},
	}
	for name, cfg := range refused {
		if err := refusedQuickly(ctx, cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// The credentials are the configuration's, not what the broker kept on
	// disk: a new password replaces the old one across a restart.
	b.Close()
	b = scramBroker(t, dir, "rtstack", "rotated")
	addr = []string{b.Addr()}
	if err := refusedQuickly(ctx, kafka.ClientConfig{Brokers: addr, SASL: kafka.SASL{User: "rtstack", Password: "s3cret"}}); err != nil {
		t.Errorf("old password after rotation: %v", err)
	}
	if err := roundTrip(ctx, t, kafka.ClientConfig{Brokers: addr, SASL: kafka.SASL{User: "rtstack", Password: "rotated"}}); err != nil {
		t.Fatalf("new password after rotation: %v", err)
	}
}

// refusedQuickly returns nil if a client of cfg cannot read the topic's
// metadata.
func refusedQuickly(ctx context.Context, cfg kafka.ClientConfig) error {
	cl, err := kafka.NewClient(cfg, kgo.RetryTimeout(2*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl.Ping(dctx); err == nil {
		return errors.New("the broker answered a client it should refuse")
	}
	return nil
}

func TestKcatNeedsCredentialsOfTheEmbeddedBroker(t *testing.T) {
	testsvc.Integration(t)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	b := scramBroker(t, t.TempDir(), "ops", "pa55")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := roundTrip(ctx, t, kafka.ClientConfig{Brokers: []string{b.Addr()}, SASL: kafka.SASL{User: "ops", Password: "pa55"}}); err != nil {
		t.Fatal(err)
	}
	withSASL := []string{"-b", b.Addr(), "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-256",
		"-X", "sasl.username=ops", "-X", "sasl.password=pa55", "-m", "10", "-L"}
	out, err := exec.Command(kcat, withSASL...).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat with SASL: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), kafka.DefaultTopic) {
		t.Errorf("kcat -L with SASL does not list %s:\n%s", kafka.DefaultTopic, out)
	}
	out, err = exec.Command(kcat, "-b", b.Addr(), "-m", "2", "-L").CombinedOutput()
	if err == nil {
		t.Fatalf("kcat without credentials read the metadata:\n%s", out)
	}
}

func TestBrokerRefusesOpenNonLoopbackAddr(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:9092", ":9092", "10.1.2.3:9092", "broker.example.com:9092"} {
		err := kafka.BrokerConfig{Addr: addr, DataDir: dir}.Validate()
		if !errors.Is(err, kafka.ErrOpenBroker) {
			t.Errorf("%s without credentials: %v, want ErrOpenBroker", addr, err)
		}
		if err := (kafka.BrokerConfig{Addr: addr, DataDir: dir, SASL: kafka.SASL{User: "u", Password: "p"}}).Validate(); err != nil {
			t.Errorf("%s with credentials: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:9092", "localhost:9092", "[::1]:9092"} {
		if err := (kafka.BrokerConfig{Addr: addr, DataDir: dir}).Validate(); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	err := kafka.BrokerConfig{Addr: "0.0.0.0:9092", DataDir: dir, SASL: kafka.SASL{Mechanism: "PLAIN", User: "u", Password: "p"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "PLAIN") {
		t.Errorf("PLAIN on the embedded broker: %v, want a refusal naming PLAIN", err)
	}
}

func TestClientSettingsAreValidated(t *testing.T) {
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(pemFile, []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := map[string]kafka.ClientConfig{
		"user without password": {SASL: kafka.SASL{User: "u"}},
		"unknown mechanism":     {SASL: kafka.SASL{Mechanism: "GSSAPI", User: "u", Password: "p"}},
		"unknown compression":   {Compression: "brotli"},
		"CA without TLS":        {TLS: kafka.TLS{CAFile: pemFile}},
		"CA not PEM":            {TLS: kafka.TLS{Enabled: true, CAFile: pemFile}},
		"CA missing":            {TLS: kafka.TLS{Enabled: true, CAFile: filepath.Join(dir, "absent.pem")}},
		"cert without key":      {TLS: kafka.TLS{Enabled: true, CertFile: pemFile}},
	}
	for name, cfg := range bad {
		cfg.Brokers = []string{"127.0.0.1:1"}
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, c := range []string{"", "none", "gzip", "snappy", "lz4", "zstd", "ZSTD"} {
		if err := (kafka.ClientConfig{Brokers: []string{"b"}, Compression: c}).Validate(); err != nil {
			t.Errorf("compression %q: %v", c, err)
		}
	}
}

func TestProducerCompression(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := kafkatest.Broker(t, "")
	codecs := map[string]uint8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4, "": 2}
	for name, want := range codecs {
		topic := "compressed-" + name
		kafkatest.Topic(t, b.Addr(), topic, 1)
		cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{b.Addr()}, Compression: name},
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// A body that compresses well: kgo sends a batch uncompressed when
		// compressing would make it bigger.
		value := []byte(strings.Repeat("compress me ", 100))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", name, err)
		}
		fs := cl.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatalf("%s: fetch: %v", name, err)
		}
		recs := fs.Records()
		if len(recs) != 1 || string(recs[0].Value) != string(value) {
			t.Fatalf("%s: read back %d records", name, len(recs))
		}
		if got := recs[0].Attrs.CompressionType(); got != want {
			t.Errorf("KAFKA_COMPRESSION=%q: batch compressed with codec %d, want %d", name, got, want)
		}
	}
}

// TestMutualTLS serves the Kafka protocol over TLS with a CA made here,
// requiring a client certificate it signed: the client's CA, certificate
// and key settings are what gets it in.
func TestMutualTLS(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	ca, caKey := newCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)
	serverPair := issue(t, ca, caKey, "broker", []net.IP{net.IPv4(127, 0, 0, 1)})
	clientPair := issue(t, ca, caKey, "rtstack", nil)
	certFile := writePEM(t, dir, "client.pem", "CERTIFICATE", clientPair.Certificate[0])
	keyDER, err := x509.MarshalECPrivateKey(clientPair.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writePEM(t, dir, "client.key", "EC PRIVATE KEY", keyDER)

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()

	good := kafka.ClientConfig{Brokers: addr, TLS: kafka.TLS{Enabled: true, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}
	if err := roundTrip(ctx, t, good); err != nil {
		t.Fatalf("mutual TLS with CA, certificate and key: %v", err)
	}
	for name, cfg := range map[string]kafka.ClientConfig{
		"plaintext":         {Brokers: addr},
		"no client cert":    {Brokers: addr, TLS: kafka.TLS{Enabled: true, CAFile: caFile}},
		"system roots only": {Brokers: addr, TLS: kafka.TLS{Enabled: true, CertFile: certFile, KeyFile: keyFile}},
	} {
		if err := refusedQuickly(ctx, cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rtstack test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
