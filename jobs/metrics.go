package jobs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrd/amrd/store"
)

type metrics struct {
	runs, failures, skipped *prometheus.CounterVec
	duration                *prometheus.HistogramVec

	planned, expired, cancelled, blocked prometheus.Counter
	finished                             *prometheus.CounterVec
	runSeconds                           *prometheus.HistogramVec
	inFlight                             prometheus.Gauge

	chunks                                *prometheus.CounterVec
	runsDeleted, promoted, blocksReleased prometheus.Counter

	rollupWritten                    *prometheus.CounterVec
	rollupReadings, rollupRecomputed prometheus.Counter
	rollupDiscarded, rollupSteps     prometheus.Counter
	rollupLag, rollupMarks           prometheus.Gauge

	clustered prometheus.Counter
}

// rollupRows counts what one rollup step wrote.
func (m *metrics) rollupRows(r store.RollupResult) {
	m.rollupReadings.Add(float64(r.Readings))
	m.rollupWritten.WithLabelValues("hourly").Add(float64(r.Hourly))
	m.rollupWritten.WithLabelValues("daily").Add(float64(r.Daily))
	m.rollupWritten.WithLabelValues("series_hourly").Add(float64(r.SeriesHourly))
	m.rollupRecomputed.Add(float64(r.Recomputed))
	m.rollupDiscarded.Add(float64(r.MarksDiscarded))
	m.rollupSteps.Add(float64(r.Steps))
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_job_runs_total",
			Help: "Scheduled job executions on this replica, by job."}, []string{"job"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_job_failures_total",
			Help: "Scheduled job executions that failed, by job."}, []string{"job"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_job_skipped_total",
			Help: "Scheduled job executions skipped because another replica held the job's lock."}, []string{"job"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "amrd_job_duration_seconds",
			Help:    "How long scheduled job executions took, by job.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"job"}),
		planned: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_amr_runs_planned_total",
			Help: "AMR task runs queued for their schedule slots."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_amr_runs_expired_total",
			Help: "AMR task runs whose claim expired before a report (requeued or failed)."}),
		cancelled: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_amr_runs_cancelled_total",
			Help: "Pending AMR task runs cancelled because their task no longer applied."}),
		blocked: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_amr_runs_blocked_total",
			Help: "AMR task runs put back because their network interface was blocked by another run."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_amr_runs_finished_total",
			Help: "AMR task runs executed by this replica, by execution type and status."}, []string{"execution_type", "status"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "amrd_amr_run_duration_seconds",
			Help:    "How long AMR task runs executed by this replica took.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, []string{"execution_type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "amrd_amr_runs_in_flight",
			Help: "AMR task runs executing on this replica now."}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_retention_chunks_dropped_total",
			Help: "Hypertable chunks dropped by retention, by table."}, []string{"table"}),
		runsDeleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_retention_runs_deleted_total",
			Help: "Finished AMR task runs deleted by retention."}),
		promoted: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_staged_promoted_total",
			Help: "Staged readings promoted by the promotion job."}),
		blocksReleased: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_netif_blocks_released_total",
			Help: "Stale network interface blocks released."}),
		clustered: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_readings_chunks_clustered_total",
			Help: "Readings chunks rewritten in key order (device, series, time) by the cluster job."}),
		rollupWritten: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amrd_rollup_rows_materialized_total",
			Help: "Rollup buckets written (materialized or recomputed), by rollup."}, []string{"rollup"}),
		rollupReadings: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_rollup_readings_materialized_total",
			Help: "Raw readings aggregated into materialized hourly buckets."}),
		rollupRecomputed: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_rollup_ranges_recomputed_total",
			Help: "Marked (device, series) time ranges whose buckets were recomputed."}),
		rollupDiscarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_rollup_marks_discarded_total",
			Help: "Marks of late readings below the raw retention horizon, whose buckets stay frozen."}),
		rollupSteps: prometheus.NewCounter(prometheus.CounterOpts{Name: "amrd_rollup_late_steps_total",
			Help: "Late readings on the materialized point whose step was added to the stored buckets (no recomputation)."}),
		rollupLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "amrd_rollup_lag_seconds",
			Help: "How far the materialized rollups are behind real time (live aggregation covers the rest)."}),
		rollupMarks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "amrd_rollup_marks_pending",
			Help: "Marks of late readings waiting for recomputation."}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.failures, m.skipped, m.duration, m.planned, m.expired, m.cancelled,
		m.blocked, m.finished, m.runSeconds, m.inFlight, m.chunks, m.runsDeleted, m.promoted, m.blocksReleased,
		m.rollupWritten, m.rollupReadings, m.rollupRecomputed, m.rollupDiscarded, m.rollupSteps, m.rollupLag, m.rollupMarks, m.clustered} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("registering job metrics"), err)
		}
	}
	return m, nil
}
