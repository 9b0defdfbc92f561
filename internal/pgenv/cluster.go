package pgenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// ClusterOptions configures a throwaway cluster.
type ClusterOptions struct {
	Logger *slog.Logger
	// Port to listen on (127.0.0.1 only); 0 picks a free one.
	Port int
	// Settings are extra "-c name=value" server settings.
	Settings map[string]string
}

// Cluster is a PostgreSQL cluster in a temporary directory, owned by this
// process. It can be stopped and started again (outage tests do that) and
// is removed by Destroy.
type Cluster struct {
	dir      string
	port     int
	bin      string
	settings map[string]string
	log      *slog.Logger
	runAs    string // non-empty when we are root and must run as postgres
}

// startTimeout bounds pg_ctl start/stop; initdb of an empty cluster takes a
// few seconds on a slow disk.
const startTimeout = 60 * time.Second

// StartCluster creates and starts a new cluster.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("pick a port: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "aorta-pg-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, port: port, bin: bin, settings: o.Settings, log: log}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root, so the cluster belongs to postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs a postgres user for initdb: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("chown cluster directory: %w", err)
		}
		c.runAs = "postgres"
	}
	data := filepath.Join(dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log.Info("throwaway PostgreSQL cluster started", "dir", dir, "port", port)
	return c, nil
}

// URL returns a connection URL for database name.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Port returns the TCP port the cluster listens on.
func (c *Cluster) Port() int { return c.port }

// Start starts the (stopped) cluster and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.dir)
	keys := make([]string, 0, len(c.settings))
	for k := range c.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts += fmt.Sprintf(" -c %s=%s", k, c.settings[k])
	}
	return c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"),
		"-w", "-t", strconv.Itoa(int(startTimeout.Seconds())), "-o", opts, "start")
}

// Stop stops the cluster with the fast mode (active sessions are
// terminated, as in a real outage) and keeps its data.
func (c *Cluster) Stop(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w",
		"-t", strconv.Itoa(int(startTimeout.Seconds())), "stop")
}

// Destroy stops the cluster if it runs and removes its directory.
func (c *Cluster) Destroy(ctx context.Context) error {
	stopErr := c.Stop(ctx)
	if stopErr != nil && !c.stopped() {
		return stopErr
	}
	return os.RemoveAll(c.dir)
}

func (c *Cluster) stopped() bool {
	_, err := os.Stat(filepath.Join(c.dir, "data", "postmaster.pid"))
	return errors.Is(err, os.ErrNotExist)
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// findBinDir locates initdb and pg_ctl: Debian keeps them outside PATH in
// /usr/lib/postgresql/<version>/bin; elsewhere they are usually on PATH.
func findBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql package")
}

func versionOf(initdbPath string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdbPath))))
	return v
}
