-- 0009_rollup_boundary_steps: a late reading on the materialized point adds its step to
-- the stored buckets instead of re-aggregating the hour (docs/decisions.md, "Rollups",
-- "Late readings on the materialized point").
--
-- A reading at exactly the materialized point M closes the hour [M - 1 h, M): its step
-- from the reading before it is that hour's last consumption step, and it changes nothing
-- else that is materialized (its value belongs to the hour after M). Readings taken on
-- the hour that arrive after the job materialized up to that hour (a collector a little
-- behind the rollup delay, a fleet's quarter-hour retried) therefore only need that step
-- added, if the job knows whether the hour was computed with the reading or without it.
--
-- rollup_marks.xid: the transaction that wrote the mark (and its readings);
-- rollup_marks.deleted: the mark is for readings deleted, not inserted;
-- rollup_state.boundary_snapshot: the snapshot from which the buckets of the hour that
-- ends at the materialized point were last computed for every device and series (the
-- slice that moved the point there, or a re-aggregation of every pair up to it); NULL
-- when a recomputation of some pairs rewrote that hour since (then every mark goes the
-- full way). A mark at M whose transaction that snapshot saw needs nothing; one it did
-- not see, of an inserted reading, with no other mark for its device and series, needs
-- the step.
ALTER TABLE rollup_marks
    ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN deleted boolean NOT NULL DEFAULT false;

ALTER TABLE rollup_state ADD COLUMN boundary_snapshot pg_snapshot;

-- rollup_state.version counts the transactions that wrote rollup buckets (a slice, a
-- recomputation, late steps, hourly retention). The job keeps the sums of the local days
-- still open at the end of a slice in memory for the next slice, instead of reading their
-- hours back from rollup_hourly, only while the version is the one it left (see
-- store/rollupdays.go, "Open days").
ALTER TABLE rollup_state ADD COLUMN version bigint NOT NULL DEFAULT 0;
