package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the web console's sessions (pkg/console,
// migrations/00007_console.sql). A session belongs to an API token: the
// token's name is the actor and its role the permissions, read afresh on
// every request, so that revoking the token ends its sessions at once.

// ErrSessionExpired is returned by ConsoleSession for a session past its
// absolute lifetime or idle for longer than the idle timeout.
var ErrSessionExpired = errors.New("store: console session expired")

// sessionTouchInterval bounds how often a session's last_seen_at is
// written: at most once a minute, so that browsing is not a write per
// page. The idle timeout is therefore exact to within a minute.
const sessionTouchInterval = time.Minute

// ConsoleSession is a console session and the token it belongs to.
type ConsoleSession struct {
	TokenID    int64
	TokenName  string
	Role       string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// CreateConsoleSession records a session, by the SHA-256 of its ID, for
// the token tokenID, opened at now and ending at now+lifetime at the
// latest, and audits the login (console.login, actor the token's name).
// It deletes the sessions that have expired (absolutely or idle), so the
// table holds only live ones and a few stale ones at most.
func (s *Store) CreateConsoleSession(ctx context.Context, idHash []byte, tokenID int64, now time.Time, lifetime, idle time.Duration) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2`,
			now, now.Add(-idle)); err != nil {
			return fmt.Errorf("create console session: delete expired: %w", err)
		}
		var name string
		err := tx.QueryRow(ctx, `INSERT INTO console_sessions (id_hash, token_id, created_at, last_seen_at, expires_at)
			SELECT $1, id, $3, $3, $4 FROM api_tokens WHERE id = $2 AND revoked_at IS NULL
			RETURNING (SELECT name FROM api_tokens WHERE id = $2)`,
			idHash, tokenID, now, now.Add(lifetime)).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrTokenRevoked // revoked between authentication and now
		}
		if err != nil {
			return fmt.Errorf("create console session: %w", err)
		}
		return audit(ctx, tx, name, "console.login", name, nil)
	})
}

// ConsoleSessionByHash finds the live session whose ID hashes to idHash
// at now: ErrNotFound when there is none (never made, or logged out),
// ErrSessionExpired when it is past expires_at or was last seen longer
// than idle ago, ErrTokenRevoked when its token was revoked. It records
// the use in last_seen_at when the last record is older than a minute, in
// the same statement.
func (s *Store) ConsoleSessionByHash(ctx context.Context, idHash []byte, now time.Time, idle time.Duration) (ConsoleSession, error) {
	var cs ConsoleSession
	var revoked *time.Time
	err := s.pool.QueryRow(ctx, `
		WITH c AS (
			SELECT c.token_id, t.name, t.role, t.revoked_at, c.created_at, c.last_seen_at, c.expires_at
			FROM console_sessions c JOIN api_tokens t ON t.id = c.token_id WHERE c.id_hash = $1),
		touched AS (
			UPDATE console_sessions cs SET last_seen_at = $2 FROM c
			WHERE cs.id_hash = $1 AND c.revoked_at IS NULL AND c.expires_at > $2 AND c.last_seen_at > $2 - $3::interval
			  AND c.last_seen_at < $2 - $4::interval
			RETURNING cs.last_seen_at)
		SELECT token_id, name, role, revoked_at, created_at, coalesce((SELECT last_seen_at FROM touched), last_seen_at), expires_at
		FROM c`, idHash, now, idle, sessionTouchInterval).
		Scan(&cs.TokenID, &cs.TokenName, &cs.Role, &revoked, &cs.CreatedAt, &cs.LastSeenAt, &cs.ExpiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return cs, ErrNotFound
	case err != nil:
		return cs, fmt.Errorf("read console session: %w", err)
	case revoked != nil:
		return cs, ErrTokenRevoked
	case !now.Before(cs.ExpiresAt) || !cs.LastSeenAt.After(now.Add(-idle)):
		return cs, ErrSessionExpired
	}
	return cs, nil
}

// EndConsoleSession deletes the session whose ID hashes to idHash and, if
// there was one, audits the logout (console.logout) under actor.
func (s *Store) EndConsoleSession(ctx context.Context, idHash []byte, actor string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash)
		if err != nil {
			return fmt.Errorf("end console session: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		return audit(ctx, tx, actor, "console.logout", actor, nil)
	})
}
