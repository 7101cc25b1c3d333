package store

import "github.com/prometheus/client_golang/prometheus"

// poolCollector exports the connection pool's statistics at scrape time.
type poolCollector struct {
	s                                    *Store
	total, idle, acquired, max, acquires *prometheus.Desc
	waits, waitSeconds                   *prometheus.Desc
}

// PoolCollector returns a Prometheus collector of the pool's statistics.
func (s *Store) PoolCollector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("amrd_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{s: s,
		total:       d("connections", "Open connections in the pool."),
		idle:        d("idle_connections", "Idle connections in the pool."),
		acquired:    d("acquired_connections", "Connections in use."),
		max:         d("max_connections", "Largest allowed pool size."),
		acquires:    d("acquires_total", "Connections acquired from the pool."),
		waits:       d("empty_acquires_total", "Acquires that had to wait for a connection."),
		waitSeconds: d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.max, c.acquires, c.waits, c.waitSeconds} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(st.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(st.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.acquired, prometheus.GaugeValue, float64(st.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waitSeconds, prometheus.CounterValue, st.AcquireDuration().Seconds())
}
