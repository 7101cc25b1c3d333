-- 0010_rollup_mark_values: a mark of one inserted reading carries that reading's raw
-- value and factor (docs/decisions.md, "Rollups", "Late readings on the materialized
-- point"). A late reading on the materialized point M adds its step, (value - the value
-- of the reading before M) x factor, to the hour before M; with the value in its mark and
-- the reading before M kept by the job from the slice that materialized up to M, the job
-- computes the step without looking either reading up in meter_readings (two index
-- descents a reading, most of the cost of a late quarter-hour of a fleet).
--
-- NULL for a mark of deleted readings or of several readings (ts_min < ts_max), and in
-- marks written before this migration: those take the look-up.
ALTER TABLE rollup_marks
    ADD COLUMN value numeric,
    ADD COLUMN factor bigint;
