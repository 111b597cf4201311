package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// A RabbitMQ that answers but refuses the password stops every process
// that needs it at start, naming the service, its address and the setting,
// never the password: a port that answers is not a service that lets us in.
func TestStartRefusesWrongCredentials(t *testing.T) {
	testsvc.Rabbit(t)
	const password = "not-the-password"
	for _, cmd := range []string{"work", "react", "dev"} {
		t.Run(cmd, func(t *testing.T) {
			r := runCLI(t, []string{
				"RABBIT_URL=amqp://guest:" + password + "@127.0.0.1:5672/",
				"BROKER_ADDR=" + testsvc.FreeAddr(t), "HTTP_ADDR=" + testsvc.FreeAddr(t), "JWT_SECRET=dev",
			}, cmd)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			for _, want := range []string{"RabbitMQ at 127.0.0.1:5672 answers but rtstack cannot log in as guest", "username or password not allowed", "RABBIT_URL"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, password) {
				t.Errorf("the password is printed:\n%s", r.stderr)
			}
		})
	}
}

// /readyz logs in to RabbitMQ as the worker does: with a wrong password it
// answers 503 naming RabbitMQ, and an unauthenticated caller sees no
// internal error text.
func TestReadyzLogsIn(t *testing.T) {
	p := testParts(t, "-rabbit-url", "amqp://guest:not-the-password@127.0.0.1:5672/")
	h, err := opsHandler(p, []string{"rabbitmq", "postgres"})
	if err != nil {
		t.Fatal(err)
	}
	code, body := readyz(t, h)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"down":["RabbitMQ"]`) {
		t.Fatalf("readyz with a wrong RabbitMQ password: HTTP %d %s", code, body)
	}
	for _, leak := range []string{"403", "password", "username", "5672"} {
		if strings.Contains(body, leak) {
			t.Errorf("readyz shows %q to an unauthenticated caller: %s", leak, body)
		}
	}
}

// The gateway's /readyz covers every service its process uses: under dev
// that includes RabbitMQ, for the reactor and the workers beside it.
func TestGatewayReadyzCoversEveryDependency(t *testing.T) {
	testsvc.Rabbit(t)
	rabbit := testsvc.Proxy(t, "127.0.0.1:5672")
	p := testParts(t, "-rabbit-url", "amqp://guest:guest@"+rabbit.Addr()+"/")
	p.need = []string{"postgres", "redis", "rabbitmq"} // as `rtstack dev` opens its parts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw, err := buildGateway(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.ln.Close()
	if code, body := readyz(t, gw.srv.Handler); code != http.StatusOK {
		t.Fatalf("readyz with every service up: HTTP %d %s", code, body)
	}
	rabbit.Cut()
	code, body := readyz(t, gw.srv.Handler)
	var got struct{ Down []string }
	_ = json.Unmarshal([]byte(body), &got)
	if code != http.StatusServiceUnavailable || strings.Join(got.Down, ",") != "rabbitmq" {
		t.Fatalf("readyz with RabbitMQ away: HTTP %d %s, want 503 with rabbitmq down", code, body)
	}
	if strings.Contains(body, rabbit.Addr()) || strings.Contains(body, "reachable") {
		t.Errorf("readyz shows internal error text: %s", body)
	}
}

func readyz(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, rec.Body.String()
}
