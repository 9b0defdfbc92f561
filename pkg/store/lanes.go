package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lanes is the number of outbox lanes (outbox.lane = partition_key % Lanes).
// It is fixed by migration 00002; a router leases lanes, never patients.
const Lanes = 64

// Lease is a router's hold on one lane. Fence changes at every acquisition,
// so work committed under a lease that was lost and re-acquired by someone
// else is refused.
type Lease struct {
	Lane  int16
	Fence int64
}

// RegisterRouter records a running router (or refreshes its heartbeat) and
// returns how many routers have beaten within liveness, itself included.
func (s *Store) RegisterRouter(ctx context.Context, id, hostname string, liveness time.Duration) (int, error) {
	var live int
	err := s.pool.QueryRow(ctx, `
		WITH me AS (
			INSERT INTO routers (id, hostname, started_at, heartbeat_at) VALUES ($1, $2, now(), now())
			ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
		)
		SELECT count(*) + 1 FROM routers WHERE id <> $1 AND heartbeat_at > now() - $3::interval`,
		id, clean(hostname), liveness).Scan(&live)
	if err != nil {
		return 0, fmt.Errorf("router heartbeat: %w", err)
	}
	return live, nil
}

// UnregisterRouter releases every lane the router holds and forgets it, so
// the others take its lanes at once instead of after the lease expires.
func (s *Store) UnregisterRouter(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE router_lanes SET owner = NULL, lease_expires_at = NULL WHERE owner = $1`, id); err != nil {
			return fmt.Errorf("release lanes: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM routers WHERE id = $1`, id); err != nil {
			return fmt.Errorf("unregister router: %w", err)
		}
		// Routers that stopped without unregistering (kill -9) linger until
		// here; their lanes have expired long since.
		_, err := tx.Exec(ctx, `DELETE FROM routers WHERE heartbeat_at < now() - interval '1 hour'`)
		return err
	})
}

// BalanceLanes renews the router's leases, takes free or expired lanes up
// to want, and gives up lanes beyond want (lanes in busy are never given
// up, since work on them is in flight; they are shed on a later call). It
// returns the leases held afterwards.
func (s *Store) BalanceLanes(ctx context.Context, owner string, want int, ttl time.Duration, busy map[int16]bool) ([]Lease, error) {
	var held []Lease
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE router_lanes SET lease_expires_at = now() + $2::interval
			WHERE owner = $1 AND lease_expires_at > now()
			RETURNING lane, fence`, owner, ttl)
		if err != nil {
			return fmt.Errorf("renew leases: %w", err)
		}
		held, err = scanLeases(rows)
		if err != nil {
			return err
		}
		if extra := len(held) - want; extra > 0 {
			var drop []int16
			keep := held[:0]
			for _, l := range held {
				if extra > 0 && !busy[l.Lane] {
					drop = append(drop, l.Lane)
					extra--
					continue
				}
				keep = append(keep, l)
			}
			held = keep
			if len(drop) > 0 {
				if _, err := tx.Exec(ctx, `UPDATE router_lanes SET owner = NULL, lease_expires_at = NULL WHERE owner = $1 AND lane = ANY($2)`, owner, drop); err != nil {
					return fmt.Errorf("release lanes: %w", err)
				}
			}
			return nil
		}
		if need := want - len(held); need > 0 {
			rows, err := tx.Query(ctx, `
				UPDATE router_lanes SET owner = $1, fence = fence + 1, lease_expires_at = now() + $3::interval
				WHERE lane IN (
					SELECT lane FROM router_lanes
					WHERE owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= now()
					ORDER BY random() LIMIT $2
					FOR UPDATE SKIP LOCKED)
				RETURNING lane, fence`, owner, need, ttl)
			if err != nil {
				return fmt.Errorf("acquire lanes: %w", err)
			}
			got, err := scanLeases(rows)
			if err != nil {
				return err
			}
			held = append(held, got...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return held, nil
}

func scanLeases(rows pgx.Rows) ([]Lease, error) {
	defer rows.Close()
	var ls []Lease
	for rows.Next() {
		var l Lease
		if err := rows.Scan(&l.Lane, &l.Fence); err != nil {
			return nil, fmt.Errorf("scan lease: %w", err)
		}
		ls = append(ls, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	return ls, nil
}
