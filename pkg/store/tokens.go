package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// APIToken is an API token's record (the api_tokens table); the token
// itself is never stored, only its SHA-256.
type APIToken struct {
	ID         int64
	Name       string
	Role       string
	CreatedAt  time.Time
	CreatedBy  string
	LastUsedAt time.Time // zero when never used
	RevokedAt  time.Time // zero while valid
}

// ErrTokenExists is returned when a token of that name exists, revoked or
// not: names are never reused, so the audit trail names one holder.
var ErrTokenExists = errors.New("store: an API token with that name exists")

// ErrTokenRevoked is returned by Authenticate for a revoked token.
var ErrTokenRevoked = errors.New("store: API token revoked")

// tokenTouchInterval bounds how often a token's last_used_at is written:
// at most once a minute per token, so a busy client does not turn every
// read into a write.
const tokenTouchInterval = time.Minute

const tokenColumns = `id, name, role, created_at, created_by, last_used_at, revoked_at`

func scanToken(row pgx.Row) (APIToken, error) {
	var t APIToken
	var used, revoked *time.Time
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.CreatedAt, &t.CreatedBy, &used, &revoked); err != nil {
		return t, err
	}
	if used != nil {
		t.LastUsedAt = *used
	}
	if revoked != nil {
		t.RevokedAt = *revoked
	}
	return t, nil
}

// CreateAPIToken records a new token by the SHA-256 of its text and audits
// the creation (actor by).
func (s *Store) CreateAPIToken(ctx context.Context, name, role string, hash []byte, by string) (APIToken, error) {
	var t APIToken
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `INSERT INTO api_tokens (name, role, token_hash, created_by) VALUES ($1, $2, $3, $4)
			RETURNING `+tokenColumns, name, role, hash, clean(by)))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "api_tokens_name_key" {
			return ErrTokenExists
		}
		if err != nil {
			return fmt.Errorf("create API token: %w", err)
		}
		return audit(ctx, tx, by, "token.create", name, fmt.Appendf(nil, `{"role": %q}`, role))
	})
	return t, err
}

// APITokens lists every token, revoked ones included, by name.
func (s *Store) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	defer rows.Close()
	var ts []APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list API tokens: %w", err)
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// RevokeAPIToken revokes the token of that name and audits it. Revoking a
// revoked token changes nothing and reports already; an unknown name is
// ErrNotFound.
func (s *Store) RevokeAPIToken(ctx context.Context, name, by string) (t APIToken, already bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke API token: %w", err)
		}
		if !t.RevokedAt.IsZero() {
			already = true
			return nil
		}
		t, err = scanToken(tx.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 RETURNING `+tokenColumns, t.ID))
		if err != nil {
			return fmt.Errorf("revoke API token: %w", err)
		}
		return audit(ctx, tx, by, "token.revoke", name, nil)
	})
	return t, already, err
}

// Authenticate finds the token whose SHA-256 is hash: ErrNotFound when
// there is none, ErrTokenRevoked when it was revoked. It records the use
// in last_used_at when the last record is older than a minute, in the
// same statement.
func (s *Store) Authenticate(ctx context.Context, hash []byte) (APIToken, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `
		WITH t AS (SELECT `+tokenColumns+` FROM api_tokens WHERE token_hash = $1),
		touched AS (
			UPDATE api_tokens a SET last_used_at = now() FROM t
			WHERE a.id = t.id AND t.revoked_at IS NULL
			  AND (t.last_used_at IS NULL OR t.last_used_at < now() - $2::interval)
			RETURNING a.last_used_at)
		SELECT t.id, t.name, t.role, t.created_at, t.created_by,
		       coalesce((SELECT last_used_at FROM touched), t.last_used_at), t.revoked_at
		FROM t`, hash, tokenTouchInterval))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("authenticate: %w", err)
	}
	if !t.RevokedAt.IsZero() {
		return t, ErrTokenRevoked
	}
	return t, nil
}

// Audit records that actor did action to target, with details marshalled
// as JSON (nil for none). Actions that change data audit in their own
// transaction; this is for those that only read or that happen outside
// the database (a routes reload).
func (s *Store) Audit(ctx context.Context, actor, action, target string, details []byte) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return audit(ctx, tx, actor, action, target, details)
	})
}
