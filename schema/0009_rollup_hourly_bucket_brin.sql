-- 0009_rollup_hourly_bucket_brin: rollup_hourly's index on the bucket alone is a BRIN
-- index instead of the B-tree that create_hypertable made (docs/decisions.md, "Rollups").
--
-- The rollup job writes hourly buckets a slice at a time in time order, as ingestion
-- writes readings (schema/0003 made the same change there). The B-tree on bucket was a
-- third of what copying a slice's buckets cost PostgreSQL: on the 11.6 M-reading bench
-- database, materializing three freshly loaded days went from 322-362k to 442-465k
-- readings/s with BRIN, PostgreSQL's CPU from 3.5-4.2 to 2.6-2.9 µs a reading.
--
-- What reads rollup_hourly by bucket alone: the job's range deletes and its read of the
-- hours before a slice, and fleet-wide hour ranges. For rows stored in time order BRIN
-- prunes those as the B-tree did. Recomputed buckets are written again where there is
-- room, mostly the pages their old versions freed (the same hours); until then they
-- widen the range they land in: results stay exact, only less is pruned. Queries of one
-- device use the primary key (device_key, series_key, bucket).
DROP INDEX IF EXISTS rollup_hourly_bucket_idx;
CREATE INDEX rollup_hourly_bucket_brin ON rollup_hourly USING brin (bucket) WITH (autosummarize = on);
