package jobs

import (
	"context"
	"time"
)

// clusterBatch is how many readings chunks one run of the cluster job rewrites: a day
// chunk of 10,000 meters x 8 series x 96 readings (7.7 M rows, about 1 GB with its
// indexes) takes CLUSTER some 15 s on 2 cores, so two a run keep a run well inside its
// interval, and a month's backlog (a first start on an old database) is done in 15 runs.
const clusterBatch = 2

// ClusterReadings rewrites the readings chunks that have settled (their day ended
// ClusterAfter ago, and no row came into them since the previous run) in key order, a
// few a run, so that a chart of one meter's series
// reads a page or two a day instead of a page a reading (store.ClusterReadingChunks).
func (j *Jobs) ClusterReadings(ctx context.Context, now time.Time) error {
	return j.locked(ctx, "cluster_readings", func(ctx context.Context) error {
		done, err := j.st.ClusterReadingChunks(ctx, now.Add(-j.cfg.ClusterAfter), clusterBatch, j.chunkWrites)
		for _, c := range done {
			j.m.clustered.Inc()
			j.log.Info("readings chunk clustered", "chunk", c.Chunk, "range_end", c.RangeEnd.Format(time.RFC3339),
				"took_ms", c.Took.Milliseconds())
		}
		return err
	})
}
