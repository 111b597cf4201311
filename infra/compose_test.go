package infra_test

import (
	"context"
	"encoding/base64"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// No Docker engine runs these tests: the compose file is loaded the way
// `docker compose` loads it (compose-spec schema validation, interpolation,
// profiles, merge keys) and its meaning is checked here.

func load(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"},
		cli.WithWorkingDirectory("."),
		cli.WithProfiles(profiles),
		cli.WithEnv([]string{"JWT_SECRET=test-secret"}),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose file does not load (profiles %v): %v", profiles, err)
	}
	return p
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// The simple use stays: without a profile, only what `make run` and
// `make test` need on the host.
func TestComposeDefaultIsTheServicesOnly(t *testing.T) {
	p := load(t)
	if got := p.ServiceNames(); !slices.Equal(sorted(got), []string{"postgres", "rabbitmq", "redis"}) {
		t.Fatalf("default services %v, want postgres, rabbitmq, redis", got)
	}
	for _, s := range p.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no health check", s.Name)
		}
	}
	want := map[string]uint32{"postgres": 5432, "redis": 6379, "rabbitmq": 5672}
	for name, port := range want {
		if !publishes(p.Services[name], port) {
			t.Errorf("%s does not publish %d to the host (the defaults rtstack dials)", name, port)
		}
	}
	if !publishes(p.Services["rabbitmq"], 15672) || !strings.Contains(p.Services["rabbitmq"].Image, "management") {
		t.Error("RabbitMQ has no management UI on 15672")
	}
	if !strings.Contains(strings.Join(p.Services["redis"].Command, " "), "--maxmemory-policy noeviction") {
		t.Errorf("redis command %v: a projection must never be evicted", p.Services["redis"].Command)
	}
}

func publishes(s types.ServiceConfig, target uint32) bool {
	for _, pc := range s.Ports {
		if pc.Target == target && pc.Published != "" {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

var voterRE = regexp.MustCompile(`^(\d+)@([\w.-]+):(\d+)$`)

// Three KRaft brokers that form one quorum, and topic defaults that keep
// chat.events safe: RF 3, min ISR 2, unlimited retention.
func TestComposeKafkaCluster(t *testing.T) {
	p := load(t, "kafka")
	var brokers []types.ServiceConfig
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, "apache/kafka:") {
			brokers = append(brokers, s)
		}
	}
	if len(brokers) != 3 {
		t.Fatalf("%d Kafka brokers, want 3", len(brokers))
	}
	ids, clusters, internal := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, b := range brokers {
		for key, want := range map[string]string{
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
			"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
			"KAFKA_LOG_RETENTION_MS":                         "-1",
			"KAFKA_LOG_RETENTION_BYTES":                      "-1",
			"KAFKA_LOG_CLEANUP_POLICY":                       "delete",
			"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":           "false",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
		} {
			if got := env(b, key); got != want {
				t.Errorf("%s: %s=%q, want %q", b.Name, key, got, want)
			}
		}
		if roles := strings.Split(env(b, "KAFKA_PROCESS_ROLES"), ","); !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
			t.Errorf("%s: KAFKA_PROCESS_ROLES %v, want broker and controller (KRaft)", b.Name, roles)
		}
		if env(b, "KAFKA_ZOOKEEPER_CONNECT") != "" {
			t.Errorf("%s uses ZooKeeper", b.Name)
		}
		// Every voter is one of the brokers, on its controller port.
		voters := strings.Split(env(b, "KAFKA_CONTROLLER_QUORUM_VOTERS"), ",")
		if len(voters) != 3 {
			t.Errorf("%s: voters %v, want the 3 brokers", b.Name, voters)
		}
		for _, v := range voters {
			m := voterRE.FindStringSubmatch(v)
			if m == nil || p.Services[m[2]].Image != b.Image || !strings.Contains(env(p.Services[m[2]], "KAFKA_LISTENERS"), "CONTROLLER://:"+m[3]) {
				t.Errorf("%s: voter %q is not a broker's controller listener", b.Name, v)
			} else if env(p.Services[m[2]], "KAFKA_NODE_ID") != m[1] {
				t.Errorf("%s: voter %q has the wrong node id", b.Name, v)
			}
		}
		ids[env(b, "KAFKA_NODE_ID")] = true
		cid := env(b, "CLUSTER_ID")
		if raw, err := base64.RawURLEncoding.DecodeString(cid); err != nil || len(raw) != 16 {
			t.Errorf("%s: CLUSTER_ID %q is not a base64url UUID", b.Name, cid)
		}
		clusters[cid] = true
		adv := env(b, "KAFKA_ADVERTISED_LISTENERS")
		if !strings.Contains(adv, "INTERNAL://"+b.Name+":9092") {
			t.Errorf("%s advertises %q, not INTERNAL://%s:9092", b.Name, adv, b.Name)
		}
		internal[b.Name+":9092"] = true
		if b.HealthCheck == nil {
			t.Errorf("%s has no health check", b.Name)
		}
	}
	if len(ids) != 3 || len(clusters) != 1 {
		t.Errorf("node ids %v and cluster ids %v: want 3 distinct ids in one cluster", ids, clusters)
	}
	sr := p.Services["schema-registry"]
	if !strings.HasPrefix(sr.Image, "confluentinc/cp-schema-registry:") || !sameSet(env(sr, "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"), internal) {
		t.Errorf("schema registry %s on %q, want cp-schema-registry on every broker", sr.Image, env(sr, "SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"))
	}
	ui, ok := p.Services["kafka-ui"]
	if !ok || !sameSet(env(ui, "KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"), internal) {
		t.Error("no Kafka UI on the cluster")
	}
	checkPorts(t, p)
}

func sameSet(list string, want map[string]bool) bool {
	got := strings.Split(list, ",")
	if len(got) != len(want) {
		return false
	}
	for _, g := range got {
		if !want[g] {
			return false
		}
	}
	return true
}

// checkPorts fails t if two services publish the same host port.
func checkPorts(t *testing.T, p *types.Project) {
	t.Helper()
	seen := map[string]string{}
	for _, s := range p.Services {
		for _, pc := range s.Ports {
			key := pc.HostIP + ":" + pc.Published
			if other, dup := seen[key]; dup {
				t.Errorf("%s and %s both publish %s", s.Name, other, key)
			}
			seen[key] = s.Name
		}
	}
}

// rtstack runs broker-less as separate processes, each with the cluster,
// the registry, a health check on /readyz where it serves HTTP, and
// dependencies that wait for health.
func TestComposeRtstackServices(t *testing.T) {
	p := load(t, "app", "monitoring")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		if s.Build.Context != root || s.Build.Dockerfile != "infra/Dockerfile" {
			t.Errorf("%s builds %s in %s, want infra/Dockerfile in the repository root", s.Name, s.Build.Dockerfile, s.Build.Context)
		}
		if len(s.Command) == 0 {
			t.Errorf("%s has no command", s.Name)
			continue
		}
		part := s.Command[0]
		parts[part]++
		for _, b := range strings.Split(env(s, "KAFKA_BROKERS"), ",") {
			if host, _, err := net.SplitHostPort(b); err != nil || !strings.HasPrefix(p.Services[host].Image, "apache/kafka:") {
				t.Errorf("%s: KAFKA_BROKERS entry %q is not a broker of the compose cluster", s.Name, b)
			}
		}
		if n := len(strings.Split(env(s, "KAFKA_BROKERS"), ",")); n != 3 {
			t.Errorf("%s has %d seed brokers, want 3", s.Name, n)
		}
		if u, err := url.Parse(env(s, "SCHEMA_REGISTRY_URL")); err != nil || p.Services[u.Hostname()].Name != "schema-registry" {
			t.Errorf("%s: SCHEMA_REGISTRY_URL %q is not the compose registry", s.Name, env(s, "SCHEMA_REGISTRY_URL"))
		}
		if env(s, "BROKER_ADDR") != "" {
			t.Errorf("%s sets BROKER_ADDR: the compose deployment has no embedded broker", s.Name)
		}
		addr := env(s, "METRICS_ADDR")
		if part == "gateway" {
			addr = env(s, "HTTP_ADDR")
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s serves HTTP nowhere (HTTP_ADDR/METRICS_ADDR %q)", s.Name, addr)
			continue
		}
		if s.HealthCheck == nil || !strings.Contains(strings.Join(s.HealthCheck.Test, " "), "127.0.0.1:"+port+"/readyz") {
			t.Errorf("%s: health check %v does not ask /readyz on %s", s.Name, s.HealthCheck, port)
		}
		checkDependsOn(t, p, s)
	}
	for part, want := range map[string]int{"gateway": 2, "project": 1, "react": 1, "work": 1} {
		if parts[part] != want {
			t.Errorf("%d %s services, want %d (all: %v)", parts[part], part, want, parts)
		}
	}
	// Bind mounts (Prometheus, Grafana) point at files of the repository.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", s.Name, v.Source, err)
			}
		}
	}
	checkPorts(t, p)
}

func checkDependsOn(t *testing.T, p *types.Project, s types.ServiceConfig) {
	t.Helper()
	if len(s.DependsOn) == 0 {
		t.Errorf("%s depends on nothing", s.Name)
	}
	for name, dep := range s.DependsOn {
		target, ok := p.Services[name]
		switch {
		case !ok:
			t.Errorf("%s depends on %s, which the profile does not start", s.Name, name)
		case dep.Condition != types.ServiceConditionHealthy:
			t.Errorf("%s depends on %s with condition %q, want service_healthy", s.Name, name, dep.Condition)
		case target.HealthCheck == nil:
			t.Errorf("%s waits for the health of %s, which has no health check", s.Name, name)
		}
	}
}

// The image builds the binary the Makefile builds.
func TestDockerfileBuildsTheBinary(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	build := regexp.MustCompile(`(?m)go build .*-o (\S+) (\S+)\s*$`).FindStringSubmatch(string(b))
	if build == nil {
		t.Fatal("no go build command in the Dockerfile")
	}
	if build[2] != "./cmd/rtstack" {
		t.Errorf("the Dockerfile builds %s, want ./cmd/rtstack", build[2])
	}
	if _, err := os.Stat(filepath.Join("..", build[2], "main.go")); err != nil {
		t.Errorf("the Dockerfile's build path: %v", err)
	}
	if !regexp.MustCompile(`(?m)^COPY --from=build ` + regexp.QuoteMeta(build[1]) + ` `).Match(b) {
		t.Errorf("the final stage does not copy %s", build[1])
	}
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil || !strings.Contains(string(b), "FROM golang:"+string(goVersion[1])) {
		t.Errorf("the build stage is not golang:%s, the version of go.mod", goVersion[1])
	}
}

// Prometheus scrapes every rtstack process of the compose file where it
// serves /metrics, and probes /readyz there.
func TestPrometheusScrapesTheComposeServices(t *testing.T) {
	p := load(t, "app", "monitoring")
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	scraped, probed := map[string]bool{}, map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if sc.MetricsPath == "/probe" {
					u, err := url.Parse(target)
					if err != nil {
						t.Fatal(err)
					}
					probed[u.Host+u.Path] = true
					continue
				}
				scraped[target] = true
			}
		}
	}
	n := 0
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		n++
		addr := env(s, "METRICS_ADDR")
		if s.Command[0] == "gateway" {
			addr = env(s, "HTTP_ADDR")
		}
		_, port, _ := net.SplitHostPort(addr)
		if !scraped[s.Name+":"+port] {
			t.Errorf("%s:%s is not scraped", s.Name, port)
		}
		if !probed[s.Name+":"+port+"/readyz"] {
			t.Errorf("%s:%s/readyz is not probed", s.Name, port)
		}
		delete(scraped, s.Name+":"+port)
	}
	if n == 0 || len(scraped) != 0 {
		t.Errorf("%d rtstack services; scrape targets that are none of them: %v", n, scraped)
	}
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join("prometheus", f)); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
	if _, ok := p.Services["blackbox"]; !ok {
		t.Error("the /readyz probes need the blackbox service")
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
