package jobs

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	}
	for _, c := range []prometheus.Collector{m.runs, m.failures, m.skipped, m.duration, m.planned, m.expired, m.cancelled,
		m.blocked, m.finished, m.runSeconds, m.inFlight, m.chunks, m.runsDeleted, m.promoted, m.blocksReleased} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("registering job metrics"), err)
		}
	}
	return m, nil
}
