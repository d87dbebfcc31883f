package tm

import "github.com/siplua/siplua/engine"

// Gauges: the transactions alive now (Kamailio's tmx stats "current" and the client branches), read for
// /metrics and the web status page. Counting takes each shard's lock for one map length at a time, never
// the whole table, so a scrape does not hold up a worker for more than a map read.
func (t *TM) Gauges() []engine.Gauge {
	return []engine.Gauge{
		{Name: "tm_transactions", Help: "Server transactions alive (including those in their wait state).",
			Value: func() float64 { return float64(t.server.len() + t.wait.len()) }},
		{Name: "tm_branches", Help: "Client transactions (branches sent downstream) alive.",
			Value: func() float64 { return float64(t.client.len()) }},
		{Name: "tm_transactions_waiting", Help: "Completed server transactions waiting out wt_timer as compact records (included in tm_transactions).",
			Value: func() float64 { return float64(t.wait.len()) }},
	}
}
