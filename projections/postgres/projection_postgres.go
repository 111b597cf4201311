package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rtstack/rtstack/projections"
)

// DefaultURL is where the projection lives when Config.URL is empty.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/rtstack?sslmode=disable"

// name is the projection's name in the control table, logs and metrics.
const name = "postgres"

// layout is the version of the table layout this binary writes. A version
// created by an older binary is replaced with a rebuild.
const layout = 1

// lockKey is the advisory lock guarding the active version: Apply holds it
// shared, Promote exclusively, migrations exclusively.
const lockKey int64 = 0x7274_7374_6163_6b01 // "rtstack" + 1

var versionName = regexp.MustCompile(`^rtstack_v[0-9]+$`)

// Config configures the projection.
type Config struct {
	// URL of the database; created (from the server's "postgres" database)
	// if missing. Default DefaultURL. The pool gets 16 connections unless
	// the URL sets pool_max_conns. Ignored when Pool is set.
	URL string
	// Pool, if set, is used instead of opening one from URL; the caller
	// closes it after Close.
	Pool *pgxpool.Pool
	// Logger receives the projection's logs; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every zero optional field set to its
// default; Open validates the result.
func (c Config) WithDefaults() Config {
	if c.URL == "" && c.Pool == nil {
		c.URL = DefaultURL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c at once; Open calls it on the
// effective values, after WithDefaults.
func (c Config) Validate() error {
	if c.Pool == nil && c.URL != "" {
		if _, err := pgxpool.ParseConfig(c.URL); err != nil {
			return fmt.Errorf("postgres projection: bad URL: %w", err)
		}
	}
	return nil
}

// Projection is the Postgres projection. It is safe for concurrent use: one
// Apply per partition at a time (the checkpoint row lock serialises any
// overlap), any number of reads.
type Projection struct {
	pool    *pgxpool.Pool
	ownPool bool
	log     *slog.Logger
	// logID is the log the last successful BindLog bound the active
	// version to ("" before): Apply through the projection refuses an
	// active version bound to another (a rebuild elsewhere adopted it).
	logID atomic.Pointer[string]
}

var _ projections.Versioned = (*Projection)(nil)

// Open connects (creating the database if missing), applies the control
// migrations, creates the first version if there is none, and drops
// versions left retired by an interrupted swap.
func Open(ctx context.Context, cfg Config) (*Projection, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Projection{pool: cfg.Pool, log: cfg.Logger.With("projection", name)}
	if p.pool == nil {
		pool, err := openPool(ctx, cfg.URL)
		if err != nil {
			return nil, err
		}
		p.pool, p.ownPool = pool, true
	}
	if err := p.migrate(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close closes the pool if Open opened it.
func (p *Projection) Close() {
	if p.ownPool {
		p.pool.Close()
	}
}

// Ping checks the database answers and the active version is readable
// (for /readyz).
func (p *Projection) Ping(ctx context.Context) error {
	_, err := p.Active(ctx)
	return err
}

// Pool is the connection pool (for tests and the digest command).
func (p *Projection) Pool() *pgxpool.Pool { return p.pool }

// Name is "postgres".
func (p *Projection) Name() string { return name }

func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres projection: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// One connection per partition applying, plus reads during a rebuild.
		cfg.MaxConns = max(cfg.MaxConns, 16)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres projection: %w", err)
	}
	err = pool.Ping(ctx)
	if err == nil {
		return pool, nil
	}
	pool.Close()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return nil, fmt.Errorf("postgres projection: connect %s@%s: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, err)
	}
	if err := createDatabase(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres projection: connect %s: %w", cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

func createDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("postgres projection: connect to create %s: %w", cc.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cc.Database}.Sanitize())
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created meanwhile
		return nil
	}
	return fmt.Errorf("postgres projection: create database %s: %w", cc.Database, err)
}

const controlDDL = `
CREATE SCHEMA IF NOT EXISTS rtstack_control;
CREATE TABLE IF NOT EXISTS rtstack_control.active (
	projection text PRIMARY KEY,
	version    text NOT NULL,
	layout     int  NOT NULL
);
CREATE TABLE IF NOT EXISTS rtstack_control.versions (
	version    text PRIMARY KEY,
	projection text NOT NULL,
	layout     int  NOT NULL,
	state      text NOT NULL CHECK (state IN ('building', 'active', 'retired', 'as-of')),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS rtstack_control.version_seq;
ALTER TABLE rtstack_control.versions ADD COLUMN IF NOT EXISTS as_of text NOT NULL DEFAULT '';
ALTER TABLE rtstack_control.versions DROP CONSTRAINT IF EXISTS versions_state_check;
ALTER TABLE rtstack_control.versions ADD CONSTRAINT versions_state_check
	CHECK (state IN ('building', 'active', 'retired', 'as-of'));
`

// versionDDL creates one version's tables in schema %[1]s. Every row keeps
// the log position it came from.
const versionDDL = `
CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.messages (
	room        text    NOT NULL,
	message_id  text    NOT NULL,
	"user"      text    NOT NULL,
	text        text    NOT NULL,
	ts          bigint  NOT NULL,
	"partition" int     NOT NULL,
	"offset"    bigint  NOT NULL,
	edited      boolean NOT NULL DEFAULT false,
	edited_ts   bigint  NOT NULL DEFAULT 0,
	deleted     boolean NOT NULL DEFAULT false,
	deleted_ts  bigint  NOT NULL DEFAULT 0,
	mentions    text[]  NOT NULL DEFAULT '{}',
	PRIMARY KEY (room, message_id)
);
CREATE TABLE %[1]s.reactions (
	room        text   NOT NULL,
	message_id  text   NOT NULL,
	emoji       text   NOT NULL,
	"user"      text   NOT NULL,
	ts          bigint NOT NULL,
	"partition" int    NOT NULL,
	"offset"    bigint NOT NULL,
	PRIMARY KEY (room, message_id, emoji, "user")
);
CREATE TABLE %[1]s.members (
	room        text   NOT NULL,
	"user"      text   NOT NULL,
	since       bigint NOT NULL,
	"partition" int    NOT NULL,
	"offset"    bigint NOT NULL,
	PRIMARY KEY (room, "user")
);
CREATE TABLE %[1]s.rooms (
	room        text   PRIMARY KEY,
	created     bigint NOT NULL,
	"partition" int    NOT NULL,
	"offset"    bigint NOT NULL
);
CREATE TABLE %[1]s.webhooks (
	room        text   NOT NULL,
	webhook_id  text   NOT NULL,
	url         text   NOT NULL,
	created     bigint NOT NULL,
	"user"      text   NOT NULL,
	"partition" int    NOT NULL,
	"offset"    bigint NOT NULL,
	PRIMARY KEY (room, webhook_id)
);
CREATE TABLE %[1]s.log (
	one         bool   PRIMARY KEY DEFAULT true CHECK (one),
	topic_id    text   NOT NULL
);
CREATE TABLE %[1]s.checkpoints (
	"partition" int    PRIMARY KEY,
	next_offset bigint NOT NULL
);
`

// readIndexDDL creates the index history reads page by, in schema %[1]s.
// A version being built gets it once its replay is done (Promote, Seal):
// one bulk build is cheaper than keeping it up to date row by row.
const readIndexDDL = `CREATE INDEX IF NOT EXISTS messages_room_offset_idx ON %[1]s.messages (room, "offset")`

// addReadIndex creates the read index of version v if it has none.
func addReadIndex(ctx context.Context, db execer, v string) error {
	if _, err := db.Exec(ctx, fmt.Sprintf(readIndexDDL, v)); err != nil {
		return fmt.Errorf("postgres projection: index version %s: %w", v, err)
	}
	return nil
}

func (p *Projection) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("postgres projection: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, controlDDL); err != nil {
			return fmt.Errorf("postgres projection: control schema: %w", err)
		}
		var active string
		var lay int
		err := tx.QueryRow(ctx, "SELECT version, layout FROM rtstack_control.active WHERE projection = $1", name).Scan(&active, &lay)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			v, err := createVersion(ctx, tx, "active", "")
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO rtstack_control.active (projection, version, layout) VALUES ($1, $2, $3)", name, v, layout); err != nil {
				return fmt.Errorf("postgres projection: activate %s: %w", v, err)
			}
			p.log.Info("created first version", "version", v)
		case err != nil:
			return fmt.Errorf("postgres projection: read active version: %w", err)
		case lay != layout:
			p.log.Warn("active version has another table layout; run a rebuild", "version", active, "layout", lay, "want_layout", layout)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM rtstack_control.versions WHERE projection = $1 AND state = 'retired'", name)
		if err != nil {
			return fmt.Errorf("postgres projection: list retired versions: %w", err)
		}
		retired, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("postgres projection: list retired versions: %w", err)
		}
		for _, v := range retired {
			if err := dropVersion(ctx, tx, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// createVersion makes an empty version in tx and returns its name; asOf
// is the cut of an as-of version, else "".
func createVersion(ctx context.Context, tx pgx.Tx, state, asOf string) (string, error) {
	var n int64
	if err := tx.QueryRow(ctx, "SELECT nextval('rtstack_control.version_seq')").Scan(&n); err != nil {
		return "", fmt.Errorf("postgres projection: next version: %w", err)
	}
	v := "rtstack_v" + strconv.FormatInt(n, 10)
	if _, err := tx.Exec(ctx, fmt.Sprintf(versionDDL, v)); err != nil {
		return "", fmt.Errorf("postgres projection: create version %s: %w", v, err)
	}
	if state == "active" {
		if err := addReadIndex(ctx, tx, v); err != nil {
			return "", err
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO rtstack_control.versions (version, projection, layout, state, as_of) VALUES ($1, $2, $3, $4, $5)", v, name, layout, state, asOf); err != nil {
		return "", fmt.Errorf("postgres projection: record version %s: %w", v, err)
	}
	return v, nil
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func dropVersion(ctx context.Context, db execer, v string) error {
	if !versionName.MatchString(v) {
		return fmt.Errorf("postgres projection: bad version name %q", v)
	}
	if _, err := db.Exec(ctx, "DROP SCHEMA IF EXISTS "+v+" CASCADE"); err != nil {
		return fmt.Errorf("postgres projection: drop version %s: %w", v, err)
	}
	if _, err := db.Exec(ctx, "DELETE FROM rtstack_control.versions WHERE version = $1", v); err != nil {
		return fmt.Errorf("postgres projection: forget version %s: %w", v, err)
	}
	return nil
}

// Active returns the name of the active version.
func (p *Projection) Active(ctx context.Context) (string, error) {
	var v string
	if err := p.pool.QueryRow(ctx, "SELECT version FROM rtstack_control.active WHERE projection = $1", name).Scan(&v); err != nil {
		return "", fmt.Errorf("postgres projection: active version: %w", err)
	}
	if !versionName.MatchString(v) {
		return "", fmt.Errorf("postgres projection: bad active version name %q", v)
	}
	return v, nil
}

// Begin creates a new, empty version; the returned Store writes only into
// it.
func (p *Projection) Begin(ctx context.Context) (projections.Store, string, error) {
	return p.begin(ctx, "")
}

func (p *Projection) begin(ctx context.Context, asOf string) (projections.Store, string, error) {
	var v string
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		v, err = createVersion(ctx, tx, "building", asOf)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	p.log.Info("began version", "version", v)
	return &versionStore{p: p, schema: v}, v, nil
}

// Promote makes version active if its checkpoints have reached the active
// version's on every partition, then drops the old version.
func (p *Projection) Promote(ctx context.Context, version string) (bool, error) {
	return p.promote(ctx, version, false)
}

var _ projections.Replacer = (*Projection)(nil)

// Replace makes version active without comparing checkpoints (the active
// version's are beyond the log's end), then drops the old version.
func (p *Projection) Replace(ctx context.Context, version string) error {
	_, err := p.promote(ctx, version, true)
	return err
}

// promote is Promote; with force the checkpoints are not compared.
func (p *Projection) promote(ctx context.Context, version string, force bool) (bool, error) {
	if !versionName.MatchString(version) {
		return false, fmt.Errorf("postgres projection: bad version name %q", version)
	}
	// Before the swap's lock: the build holds only this version's table.
	if err := addReadIndex(ctx, p.pool, version); err != nil {
		return false, err
	}
	var old string
	var promoted bool
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Exclusive: waits for in-flight Applies, holds new ones until commit.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("promote lock: %w", err)
		}
		if err := tx.QueryRow(ctx, "SELECT version FROM rtstack_control.active WHERE projection = $1", name).Scan(&old); err != nil {
			return fmt.Errorf("promote: active version: %w", err)
		}
		if old == version {
			promoted = true
			return nil
		}
		var state, asOf string
		if err := tx.QueryRow(ctx, "SELECT state, as_of FROM rtstack_control.versions WHERE version = $1", version).Scan(&state, &asOf); err != nil {
			return fmt.Errorf("promote %s: %w", version, err)
		}
		if state != "building" || asOf != "" {
			return fmt.Errorf("promote %s: version is %s (as of %q): only a whole rebuild is promoted", version, state, asOf)
		}
		var behind bool
		q := fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s.checkpoints a LEFT JOIN %s.checkpoints b USING ("partition")
			WHERE coalesce(b.next_offset, 0) < a.next_offset)`, old, version)
		if err := tx.QueryRow(ctx, q).Scan(&behind); err != nil {
			return fmt.Errorf("promote %s: compare checkpoints: %w", version, err)
		}
		if behind && !force {
			// Checkpoints of a recreated log's predecessor say nothing:
			// the new version is then never "behind" the active one.
			var bothBound, otherLog bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", old+".log", version+".log").Scan(&bothBound); err != nil {
				return fmt.Errorf("promote %s: compare logs: %w", version, err)
			}
			if bothBound {
				q := fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s.log a, %s.log b WHERE a.topic_id <> b.topic_id)`, old, version)
				if err := tx.QueryRow(ctx, q).Scan(&otherLog); err != nil {
					return fmt.Errorf("promote %s: compare logs: %w", version, err)
				}
			}
			behind = !otherLog
		}
		if behind && !force {
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE rtstack_control.active SET version = $2, layout = $3 WHERE projection = $1", name, version, layout); err != nil {
			return fmt.Errorf("promote %s: %w", version, err)
		}
		if _, err := tx.Exec(ctx, "UPDATE rtstack_control.versions SET state = CASE WHEN version = $1 THEN 'active' ELSE 'retired' END WHERE version IN ($1, $2)", version, old); err != nil {
			return fmt.Errorf("promote %s: %w", version, err)
		}
		promoted = true
		return nil
	})
	if err != nil || !promoted || old == version {
		if err != nil {
			err = fmt.Errorf("postgres projection: %w", err)
		}
		return promoted, err
	}
	p.log.Info("promoted version", "version", version, "old_version", old)
	// Outside the swap: DROP waits for readers still on the old version. If
	// it fails, the next Open drops the retired version.
	if err := dropVersion(ctx, p.pool, old); err != nil {
		p.log.Warn("old version not dropped yet", "version", old, "err", err)
	}
	return true, nil
}

// Abandon drops a version that will not be promoted. The active version
// cannot be abandoned.
func (p *Projection) Abandon(ctx context.Context, version string) error {
	active, err := p.Active(ctx)
	if err != nil {
		return err
	}
	if active == version {
		return fmt.Errorf("postgres projection: %s is active, not abandoned", version)
	}
	return dropVersion(ctx, p.pool, version)
}
