package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	written, staged, duplicates, conflicts, failed, overloaded, retries, cacheResets, staleWrites, warmed prometheus.Counter
	rejected                                                                                              *prometheus.CounterVec
	queued                                                                                                prometheus.Gauge
	batchReadings, flushSeconds                                                                           prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, cfg Config) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_ingest_" + name, Help: help})
	}
	m := &metrics{
		written:     c("rows_written_total", "Readings written to the readings hypertable."),
		staged:      c("rows_staged_total", "Readings staged for a device name that does not exist yet."),
		duplicates:  c("duplicates_total", "Re-sent readings absorbed (same value already stored)."),
		conflicts:   c("conflicts_total", "Readings refused because a different value is stored for their key."),
		failed:      c("rows_failed_total", "Readings not written because their batch failed (the client got an error)."),
		overloaded:  c("overloaded_total", "Requests answered 'busy' because the intake queue stayed full."),
		retries:     c("batch_retries_total", "Batch writes retried after the database was unavailable."),
		cacheResets: c("name_cache_resets_total", "Name cache resets after a catalog change."),
		warmed:      c("name_cache_loaded_devices_total", "Devices loaded into the name cache ahead of their readings (at start and after catalog changes)."),
		staleWrites: c("stale_catalog_writes_total", "Batch writes refused because the catalog changed after their names were resolved (resolved again and retried)."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_ingest_rows_rejected_total",
			Help: "Readings rejected by validation, by reason."}, []string{"reason"}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "amrd_ingest_queue_readings",
			Help: "Readings accepted into the intake queue and not yet committed."}),
		batchReadings: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "amrd_ingest_batch_readings",
			Help: "Readings per flushed batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "amrd_ingest_flush_seconds",
			Help: "Time to resolve, validate and commit one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10)}),
	}
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{Name: "amrd_ingest_queue_capacity_readings",
		Help: "Readings the intake queue holds at most."})
	capacity.Set(float64(cfg.QueueReadings))
	for _, col := range []prometheus.Collector{m.written, m.staged, m.duplicates, m.conflicts, m.failed, m.overloaded,
		m.retries, m.cacheResets, m.staleWrites, m.warmed, m.rejected, m.queued, m.batchReadings, m.flushSeconds, capacity} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return m, nil
}
