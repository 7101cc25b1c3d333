package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Readings arrive in time order, so inside a day's chunk the 96 readings of one meter's
// series lie on 96 different heap pages, and a month's chart of it reads ~2,900 pages.
// ClusterReadingChunks rewrites a chunk once in the order of its key index (device,
// series, time): the same chart then reads a page or two per day. TimescaleDB's
// reorder_chunk, which does this without blocking writers, is not in its Apache build;
// CLUSTER is, and it holds an ACCESS EXCLUSIVE lock on the one chunk while it copies it.
// So it is only done to chunks whose time range ended long enough ago that writes into
// them are rare (late data, imports), and its wait for the lock is bounded.

// ChunkReorder is one chunk ClusterReadingChunks rewrote.
type ChunkReorder struct {
	Chunk    string
	RangeEnd time.Time
	Took     time.Duration
}

// clusterLockWait bounds how long CLUSTER waits for its lock on a chunk: a reader or
// writer in the chunk makes it give up for this run instead of queueing every later
// reader and writer of the chunk behind it for longer.
const clusterLockWait = 500 * time.Millisecond

// ClusterReadingChunks clusters, oldest first, up to max readings chunks whose range
// ended at or before `before`, whose key index is not clustered yet and that are quiet,
// stopping early when ctx ends. It returns the chunks it rewrote.
//
// Quiet: a chunk's range says nothing of when it is written (a collector catching up or
// `amrd import` write old days), and CLUSTER locks out its writers while it runs. So a
// chunk is rewritten only when its count of written rows (pg_stat_all_tables) is what
// the previous call saw in seen, which the caller keeps between calls: no row came in
// between. seen is updated with the counts of every candidate; a nil seen clusters every
// candidate at once (tests, the benchmark's database that nothing writes). A chunk whose
// lock it cannot get within clusterLockWait is left for the next call (no error).
func (s *Store) ClusterReadingChunks(ctx context.Context, before time.Time, max int, seen map[string]int64) ([]ChunkReorder, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT format('%I.%I', c.chunk_schema, c.chunk_name), c.range_end, quote_ident(ic.relname),
			quote_ident(c.chunk_name || '_created_at_idx'), coalesce(st.n_tup_ins + st.n_tup_upd + st.n_tup_del, 0)
		FROM timescaledb_information.chunks c
		JOIN pg_index i ON i.indrelid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass AND i.indisunique
		JOIN pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_stat_all_tables st ON st.relid = i.indrelid
		WHERE c.hypertable_schema = 'public' AND c.hypertable_name = 'meter_readings'
			AND c.range_end <= $1 AND NOT i.indisclustered
		ORDER BY c.range_end`, before)
	if err != nil {
		return nil, mapErr("listing chunks to cluster", err)
	}
	type todo struct {
		chunk, index, created string
		end                   time.Time
		writes                int64
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (todo, error) {
		var t todo
		return t, r.Scan(&t.chunk, &t.end, &t.index, &t.created, &t.writes)
	})
	if err != nil {
		return nil, mapErr("listing chunks to cluster", err)
	}
	var done []ChunkReorder
	candidates := map[string]bool{}
	for _, t := range list {
		candidates[t.chunk] = true
		last, known := seen[t.chunk]
		if seen != nil {
			seen[t.chunk] = t.writes
			if !known || last != t.writes {
				continue
			}
		}
		if ctx.Err() != nil || len(done) >= max {
			continue
		}
		t0 := time.Now()
		ok, err := s.clusterChunk(ctx, t.chunk, t.index, t.created)
		if err != nil {
			return done, err
		}
		if ok {
			done = append(done, ChunkReorder{Chunk: t.chunk, RangeEnd: t.end, Took: time.Since(t0)})
			delete(seen, t.chunk)
		}
	}
	for c := range seen {
		if !candidates[c] {
			delete(seen, c) // clustered, or dropped by retention
		}
	}
	return done, nil
}

// clusterChunk runs CLUSTER on one chunk (not allowed inside a transaction, so on a
// connection of its own with a session lock timeout that it resets). false: the chunk
// was busy or was dropped meanwhile.
//
// First it gives the chunk a B-tree on created_at (named created). In key order a page
// range of the chunk holds a whole day of created_at, so its BRIN index on created_at,
// which prunes well in arrival order, no longer convinces the planner: "readings taken
// in over the last hours" would scan every rewritten day. The B-tree is small (rows
// written in one transaction share created_at, and B-trees store a repeated key once)
// and costs nothing on ingestion: settled days are hardly written. It is made before
// CLUSTER, so that a chunk is never clustered without it.
func (s *Store) clusterChunk(ctx context.Context, chunk, index, created string) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, mapErr("clustering "+chunk, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", clusterLockWait.Milliseconds())); err != nil {
		return false, mapErr("clustering "+chunk, err)
	}
	_, err = conn.Exec(ctx, "CREATE INDEX IF NOT EXISTS "+created+" ON "+chunk+" (created_at)")
	if err == nil {
		_, err = conn.Exec(ctx, "CLUSTER "+chunk+" USING "+index)
	}
	if _, rerr := conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout"); rerr != nil {
		// A connection in an unknown state must not go back to the pool.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	if err == nil {
		return true, nil
	}
	if isBusy(err) {
		return false, nil
	}
	return false, mapErr("clustering "+chunk, err)
}

// isBusy reports a lock that could not be had in time, or a table that went away (a
// chunk dropped by retention between listing and clustering).
func isBusy(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "55P03", // lock_not_available
		"42P01", // undefined_table
		"40P01": // deadlock_detected (with a retention drop)
		return true
	}
	return false
}
