-- The time-only index of the readings is a BRIN index instead of the B-tree that
-- create_hypertable makes by default.
--
-- Readings arrive in time order, a whole quarter-hour of the fleet at a time: every row
-- of a batch has the same timestamp, so every writer of a B-tree on ts inserts into the
-- same leaf page. With two batches written at once (what ingestion does under load) that
-- page is the hot spot; with BRIN, PostgreSQL's CPU a reading falls by about a fifth
-- (make bench case b, "CPU a reading").
--
-- Queries by device and series use the (device_key, series_key, ts) index.
-- Queries by time alone are pruned to the chunks of their range (one day each) and,
-- inside a chunk, to the block ranges of their times: for rows stored in time order
-- BRIN prunes as a B-tree would, at a tiny fraction of its size and write cost. Delayed
-- data (imports, promoted staged readings) widens the ranges it lands in; results stay
-- exact, only less is pruned. autosummarize keeps the summaries of filled ranges current.
DROP INDEX IF EXISTS meter_readings_ts_idx;
CREATE INDEX meter_readings_ts_brin ON meter_readings USING brin (ts) WITH (autosummarize = on);
