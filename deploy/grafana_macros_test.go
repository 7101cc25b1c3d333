package deploy_test

// This file re-implements, for tests, how Grafana's PostgreSQL data source turns a
// panel's SQL into the statement it runs, after /work/notes/grafana_macros.md (read from
// Grafana's source): the browser interpolates template variables, $__interval,
// $__interval_ms, $__from and $__to; the back end then substitutes $__interval,
// $__interval_ms, $__unixEpochFrom() and $__unixEpochTo() once more (for callers without a
// browser) and expands the macros $name(args) with one regular expression. The
// dashboards' test runs every query through it, so that what it checks is what Grafana
// would send.

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// grafanaVar is a dashboard variable as Grafana's front end holds it when a query is
// interpolated.
type grafanaVar struct {
	Name string
	// Values are the selected values (for All without a custom all value: every
	// option's value); Texts their display texts (defaults to Values).
	Values, Texts []string
	// Multi: a multi-value variable, whose value is always an array (legacy dashboards
	// and scenes both keep it so, even with one value selected).
	Multi      bool
	IncludeAll bool
	// All: the All option is selected; AllValue is the variable's custom all value,
	// which is then inserted verbatim.
	All      bool
	AllValue string
}

// grafanaRequest is one query as the data source sees it.
type grafanaRequest struct {
	From, To time.Time     // the dashboard's range (millisecond precision)
	Interval time.Duration // intervalMs, as the front end computed it
	// TimescaleDB is the data source's jsonData.timescaledb.
	TimescaleDB bool
	Vars        []grafanaVar
	// NewestQuoting is Grafana main (2026): a single string value is never quoted,
	// where 10.x–12.x quote it for a multi or include-All variable.
	NewestQuoting bool
	// Now is the clock of gtime.ParseInterval's month and year units (time.Now if nil).
	Now func() time.Time
}

// grafanaFill is what a $__timeGroup(col, interval, fill) asks of the post-processing
// (time-series format only); it does not change the SQL.
type grafanaFill struct {
	Interval time.Duration
	Mode     string // "null", "previous" or "value"
	Value    float64
}

// expandGrafana runs the whole pipeline: front-end interpolation, the back end's global
// substitutions, then its macro engine.
func expandGrafana(sql string, r grafanaRequest) (string, *grafanaFill, error) {
	sql, err := interpolateVariables(sql, r)
	if err != nil {
		return "", nil, err
	}
	sql = backendGlobals(sql, r)
	return expandMacros(sql, r)
}

// --- front end: template variables (§5) ---------------------------------------------

// variableRe is scenes' VARIABLE_REGEX: $var, [[var]], [[var:fmt]], ${var},
// ${var:fmt}, ${var.field:fmt}.
var variableRe = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// jsValue is a variable's value as JavaScript holds it: a string, a number or an array
// of strings.
type jsValue struct {
	str     string
	num     float64
	isNum   bool
	arr     []string
	isArray bool
}

func (v jsValue) String() string { // JavaScript's String(value)
	switch {
	case v.isArray:
		return strings.Join(v.arr, ",")
	case v.isNum:
		return strconv.FormatFloat(v.num, 'f', -1, 64)
	}
	return v.str
}

// interpolateVariables is templateSrv.replace(rawSql, scopedVars, interpolateVariable)
// with the query runner's scoped variables __interval and __interval_ms and the global
// $__from and $__to. Unknown names, such as the back end's macros, stay as they are.
func interpolateVariables(sql string, r grafanaRequest) (string, error) {
	var firstErr error
	out := variableRe.ReplaceAllStringFunc(sql, func(m string) string {
		g := variableRe.FindStringSubmatch(m)
		name, format, field := g[1], "", ""
		switch {
		case g[2] != "":
			name, format = g[2], g[3]
		case g[4] != "":
			name, field, format = g[4], g[5], g[6]
		}
		s, ok, err := r.variableText(name, format, field)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("interpolating %s: %w", m, err)
		}
		if !ok {
			return m
		}
		return s
	})
	return out, firstErr
}

func (r grafanaRequest) variableText(name, format, field string) (string, bool, error) {
	if field != "" {
		return "", true, fmt.Errorf("field paths (%s) are not implemented", field)
	}
	var val jsValue
	var v *grafanaVar
	switch name {
	case "__interval":
		val = jsValue{str: secondsToHms(float64(r.Interval.Milliseconds()) / 1000)}
	case "__interval_ms":
		val = jsValue{num: float64(r.Interval.Milliseconds()), isNum: true}
	case "__from":
		val = jsValue{num: float64(r.From.UnixMilli()), isNum: true}
	case "__to":
		val = jsValue{num: float64(r.To.UnixMilli()), isNum: true}
	default:
		for i := range r.Vars {
			if r.Vars[i].Name == name {
				v = &r.Vars[i]
			}
		}
		if v == nil {
			return "", false, nil
		}
		if v.All && v.AllValue != "" {
			// CustomAllValue: verbatim for every format but text, then interpolated
			// again (an all value may name other variables).
			if format == "text" {
				return "All", true, nil
			}
			s, err := interpolateVariables(v.AllValue, r)
			return s, true, err
		}
		if v.Multi || (v.All && v.IncludeAll) {
			val = jsValue{arr: v.Values, isArray: true}
		} else {
			if len(v.Values) != 1 {
				return "", true, fmt.Errorf("variable %s: a single-value variable needs one value, has %d", name, len(v.Values))
			}
			val = jsValue{str: v.Values[0]}
		}
	}
	if format == "" {
		return r.interpolateVariable(val, v), true, nil
	}
	s, err := formatVariable(val, format, v)
	return s, true, err
}

// interpolateVariable is SqlDatasource.interpolateVariable, used when the reference
// names no format.
func (r grafanaRequest) interpolateVariable(val jsValue, v *grafanaVar) string {
	switch {
	case val.isArray:
		q := make([]string, len(val.arr))
		for i, s := range val.arr {
			q[i] = quoteLiteral(s)
		}
		return strings.Join(q, ",")
	case val.isNum:
		return val.String()
	}
	if !r.NewestQuoting && v != nil && (v.Multi || v.IncludeAll) {
		return quoteLiteral(val.str)
	}
	return strings.ReplaceAll(val.str, "'", "''")
}

// quoteLiteral is PostgresQueryModel.quoteLiteral.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var sqlEscaper = strings.NewReplacer(`'`, `''`, `"`, `\"`)

// formatVariable applies an explicit format (${var:fmt}), scenes' formatRegistry.
func formatVariable(val jsValue, format string, v *grafanaVar) (string, error) {
	each := func(f func(string) string, sep string) string {
		if !val.isArray {
			return f(val.String())
		}
		out := make([]string, len(val.arr))
		for i, s := range val.arr {
			out[i] = f(s)
		}
		return strings.Join(out, sep)
	}
	id := func(s string) string { return s }
	name, arg, _ := strings.Cut(format, ":")
	switch name {
	case "raw", "csv":
		return val.String(), nil
	case "sqlstring":
		return each(func(s string) string { return "'" + sqlEscaper.Replace(s) + "'" }, ","), nil
	case "singlequote":
		return each(func(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }, ","), nil
	case "doublequote":
		return each(func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }, ","), nil
	case "pipe":
		return each(id, "|"), nil
	case "join":
		if arg == "" {
			arg = ","
		}
		return each(id, arg), nil
	case "text":
		if v == nil {
			return val.String(), nil
		}
		texts := v.Texts
		if len(texts) == 0 {
			texts = v.Values
		}
		if val.isArray {
			return strings.Join(texts, " + "), nil
		}
		return texts[0], nil
	}
	return "", fmt.Errorf("format %q is not implemented", format)
}

// --- front end: the interval (§2) ----------------------------------------------------

// calculateInterval is rangeutil.calculateInterval: the range over the panel's data
// points, rounded, and never below lowLimit (a panel's "Min interval", else the data
// source's timeInterval, else 1m for SQL data sources).
func calculateInterval(from, to time.Time, maxDataPoints int, lowLimit string) (time.Duration, error) {
	low := 1.0
	if lowLimit != "" {
		ms, err := intervalToMs(lowLimit)
		if err != nil {
			return 0, err
		}
		low = ms
	}
	ms := roundIntervalMs(float64(to.UnixMilli()-from.UnixMilli()) / float64(maxDataPoints))
	if low > ms {
		ms = low
	}
	return time.Duration(ms) * time.Millisecond, nil
}

var describeIntervalRe = regexp.MustCompile(`^(-?\d+(?:\.\d+)?)(ms|[Mwdhmsy])`)

// intervalToMs is rangeutil.intervalToMs: "15m" → 900000; a bare number is seconds.
func intervalToMs(s string) (float64, error) {
	units := map[string]float64{"y": 31536000, "M": 2592000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
	if n, err := strconv.Atoi(s); err == nil {
		return float64(n) * 1000, nil
	}
	m := describeIntervalRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid interval %q", s)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	count := math.Trunc(f) // parseInt
	return count * units[m[2]] * 1000, nil
}

// roundIntervalMs is the front end's roundInterval (strict <).
func roundIntervalMs(ms float64) float64 {
	steps := []struct{ below, to float64 }{
		{10, 1}, {15, 10}, {35, 20}, {75, 50}, {150, 100}, {350, 200}, {750, 500}, {1500, 1000},
		{3500, 2000}, {7500, 5000}, {12500, 10000}, {17500, 15000}, {25000, 20000}, {45000, 30000},
		{90000, 60000}, {210000, 120000}, {450000, 300000}, {750000, 600000}, {1050000, 900000},
		{1500000, 1200000}, {2700000, 1800000}, {5400000, 3600000}, {9000000, 7200000},
		{16200000, 10800000}, {32400000, 21600000}, {86400000, 43200000}, {604800000, 86400000},
		{1814400000, 604800000}, {3628800000, 2592000000},
	}
	for _, s := range steps {
		if ms < s.below {
			return s.to
		}
	}
	return 31536000000
}

// secondsToHms is rangeutil.secondsToHms: the first non-zero unit.
func secondsToHms(seconds float64) string {
	n := math.Floor(seconds / 31536000)
	if n > 0 {
		return fmt.Sprintf("%.0fy", n)
	}
	n = math.Floor(math.Mod(seconds, 31536000) / 86400)
	if n > 0 {
		return fmt.Sprintf("%.0fd", n)
	}
	n = math.Floor(math.Mod(math.Mod(seconds, 31536000), 86400) / 3600)
	if n > 0 {
		return fmt.Sprintf("%.0fh", n)
	}
	n = math.Floor(math.Mod(math.Mod(math.Mod(seconds, 31536000), 86400), 3600) / 60)
	if n > 0 {
		return fmt.Sprintf("%.0fm", n)
	}
	n = math.Floor(math.Mod(seconds, 60))
	if n > 0 {
		return fmt.Sprintf("%.0fs", n)
	}
	if ms := math.Floor(seconds * 1000); ms > 0 {
		return fmt.Sprintf("%.0fms", ms)
	}
	return "less than a millisecond"
}

// --- back end (§1, §3, §4) -----------------------------------------------------------

// backendGlobals is sqleng.Interpolate (Grafana 11/12): plain replacements, in this order.
func backendGlobals(sql string, r grafanaRequest) string {
	sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(r.Interval.Milliseconds(), 10))
	sql = strings.ReplaceAll(sql, "$__interval", formatInterval(r.Interval))
	sql = strings.ReplaceAll(sql, "$__unixEpochFrom()", strconv.FormatInt(r.From.UTC().Unix(), 10))
	sql = strings.ReplaceAll(sql, "$__unixEpochTo()", strconv.FormatInt(r.To.UTC().Unix(), 10))
	return sql
}

// formatInterval is gtime.FormatInterval: the largest unit, truncated.
func formatInterval(d time.Duration) string {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	switch {
	case d >= year:
		return fmt.Sprintf("%dy", d/year)
	case d >= day:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second:
		return fmt.Sprintf("%ds", d/time.Second)
	case d >= time.Millisecond:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return "1ms"
}

var macroRe = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^\)]*)\)`)

// expandMacros is postgresMacroEngine.Interpolate: one pass, left to right, no nesting;
// the first error fails the query.
func expandMacros(sql string, r grafanaRequest) (string, *grafanaFill, error) {
	var b strings.Builder
	var fill *grafanaFill
	last := 0
	for _, ix := range macroRe.FindAllStringSubmatchIndex(sql, -1) {
		whole, name, argText := sql[ix[0]:ix[1]], sql[ix[2]:ix[3]], sql[ix[4]:ix[5]]
		// Pre-5.3 compatibility: the first occurrence of this exact text followed by a
		// comma makes $__timeGroup alias itself.
		if name == "__timeGroup" {
			if i := strings.Index(sql, whole); i >= 0 {
				i += len(whole)
				if len(sql) > i && sql[i] == ',' {
					name = "__timeGroupAlias"
				}
			}
		}
		args := strings.Split(argText, ",")
		for i := range args {
			args[i] = strings.Trim(args[i], " ")
		}
		out, f, err := r.evaluateMacro(name, args)
		if err != nil {
			return "", nil, fmt.Errorf("interpolation failed: %w", err)
		}
		if f != nil {
			fill = f
		}
		b.WriteString(sql[last:ix[0]])
		b.WriteString(out)
		last = ix[1]
	}
	b.WriteString(sql[last:])
	return b.String(), fill, nil
}

func (r grafanaRequest) evaluateMacro(name string, args []string) (string, *grafanaFill, error) {
	from, to := r.From.UTC(), r.To.UTC()
	switch name {
	case "__time":
		if len(args) == 0 {
			return "", nil, fmt.Errorf("missing time column argument for macro %v", name)
		}
		return fmt.Sprintf(`%s AS "time"`, args[0]), nil, nil
	case "__timeEpoch":
		if len(args) == 0 {
			return "", nil, fmt.Errorf("missing time column argument for macro %v", name)
		}
		return fmt.Sprintf(`extract(epoch from %s) as "time"`, args[0]), nil, nil
	case "__timeFilter":
		if len(args) == 0 {
			return "", nil, fmt.Errorf("missing time column argument for macro %v", name)
		}
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0], from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)), nil, nil
	case "__timeFrom":
		return fmt.Sprintf("'%s'", from.Format(time.RFC3339Nano)), nil, nil
	case "__timeTo":
		return fmt.Sprintf("'%s'", to.Format(time.RFC3339Nano)), nil, nil
	case "__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias":
		// The Alias forms call the plain ones, whose names their errors carry.
		if len(args) < 2 {
			return "", nil, fmt.Errorf("macro %v needs time column and interval and optional fill value", strings.TrimSuffix(name, "Alias"))
		}
		interval, err := r.parseInterval(strings.Trim(args[1], `'`))
		if err != nil {
			return "", nil, fmt.Errorf("error parsing interval %v", args[1])
		}
		var fill *grafanaFill
		if len(args) == 3 {
			fill = &grafanaFill{Interval: interval}
			switch args[2] {
			case "NULL":
				fill.Mode = "null"
			case "previous":
				fill.Mode = "previous"
			default:
				fill.Mode = "value"
				if fill.Value, err = strconv.ParseFloat(args[2], 64); err != nil {
					return "", nil, fmt.Errorf("error parsing fill value %v", args[2])
				}
			}
		}
		s := interval.Seconds()
		var out string
		switch {
		case strings.HasPrefix(name, "__unixEpochGroup"):
			out = fmt.Sprintf("floor((%s)/%v)*%v", args[0], s, s)
		case r.TimescaleDB:
			out = fmt.Sprintf("time_bucket('%.3fs',%s)", s, args[0])
		default:
			out = fmt.Sprintf("floor(extract(epoch from %s)/%v)*%v", args[0], s, s)
		}
		if strings.HasSuffix(name, "Alias") {
			out += ` AS "time"`
		}
		return out, fill, nil
	case "__unixEpochFilter":
		if len(args) == 0 {
			return "", nil, fmt.Errorf("missing time column argument for macro %v", name)
		}
		return fmt.Sprintf("%s >= %d AND %s <= %d", args[0], from.Unix(), args[0], to.Unix()), nil, nil
	case "__unixEpochNanoFilter":
		if len(args) == 0 {
			return "", nil, fmt.Errorf("missing time column argument for macro %v", name)
		}
		return fmt.Sprintf("%s >= %d AND %s <= %d", args[0], from.UnixNano(), args[0], to.UnixNano()), nil, nil
	case "__unixEpochNanoFrom":
		return strconv.FormatInt(from.UnixNano(), 10), nil, nil
	case "__unixEpochNanoTo":
		return strconv.FormatInt(to.UnixNano(), 10), nil, nil
	}
	return "", nil, fmt.Errorf("unknown macro %q", name)
}

var dateUnitRe = regexp.MustCompile(`^(\d+)([dwMy])$`)

// parseInterval is gtime.ParseInterval: d, w, M and y are calendar steps from now (UTC);
// anything else is time.ParseDuration.
func (r grafanaRequest) parseInterval(s string) (time.Duration, error) {
	m := dateUnitRe.FindStringSubmatch(s)
	if m == nil {
		return time.ParseDuration(s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, err
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	t := now().UTC()
	switch m[2] {
	case "d":
		return t.AddDate(0, 0, n).Sub(t), nil
	case "w":
		return t.AddDate(0, 0, n*7).Sub(t), nil
	case "M":
		return t.AddDate(0, n, 0).Sub(t), nil
	}
	return t.AddDate(n, 0, 0).Sub(t), nil
}

// --- the expander's own tests --------------------------------------------------------

// The examples of the spec: range 2017-04-21T05:01:17Z → 2017-04-21T05:06:17Z.
var specRange = grafanaRequest{
	From: time.Date(2017, 4, 21, 5, 1, 17, 0, time.UTC),
	To:   time.Date(2017, 4, 21, 5, 6, 17, 0, time.UTC),
	Now:  func() time.Time { return time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC) },
}

func TestGrafanaMacros(t *testing.T) {
	const filter = `'2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'`
	tests := []struct {
		name, in, want string
		timescale      bool
		err            string
		fill           *grafanaFill
	}{
		{name: "time", in: `select $__time(created_at)`, want: `select created_at AS "time"`},
		{name: "time inside a function: no nesting", in: `select min($__time(time_column))`, want: `select min(time_column AS "time")`},
		{name: "timeEpoch", in: `select $__timeEpoch(created_at)`, want: `select extract(epoch from created_at) as "time"`},
		{name: "timeFilter", in: `WHERE $__timeFilter(created_at)`, want: `WHERE created_at BETWEEN ` + filter},
		{name: "timeFilter of a quoted column", in: `WHERE $__timeFilter("timestamp")`, want: `WHERE "timestamp" BETWEEN ` + filter},
		{name: "timeFilter stops at the first parenthesis", in: `$__timeFilter(coalesce(a,b))`,
			want: `coalesce(a BETWEEN ` + filter + `)`},
		{name: "timeFilter without a column", in: `$__timeFilter()`, want: ` BETWEEN ` + filter},
		{name: "timeFrom and timeTo", in: `$__timeFrom() $__timeTo(ignored)`, want: `'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'`},
		{name: "timeGroup", in: `SELECT $__timeGroup(time_column,'5m') AS t`, want: `SELECT floor(extract(epoch from time_column)/300)*300 AS t`},
		{name: "timeGroup with spaces and quotes", in: `$__timeGroup( time_column , '5m' ) x`, want: `floor(extract(epoch from time_column)/300)*300 x`},
		{name: "timeGroup followed by a comma aliases itself", in: `SELECT $__timeGroup(time_column,'5m'), value`,
			want: `SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value`},
		{name: "timeGroup with as time", in: `SELECT $__timeGroup(time_column,'5m') as time, value`,
			want: `SELECT floor(extract(epoch from time_column)/300)*300 as time, value`},
		{name: "timeGroup, a space before the comma", in: `SELECT $__timeGroup(time_column,'5m') , value`,
			want: `SELECT floor(extract(epoch from time_column)/300)*300 , value`},
		{name: "timeGroup: the first occurrence decides", in: `$__timeGroup(c,'1h') x, $__timeGroup(c,'1h'),`,
			want: `floor(extract(epoch from c)/3600)*3600 x, floor(extract(epoch from c)/3600)*3600,`},
		{name: "timeGroup with TimescaleDB", in: `$__timeGroup(time_column,'5m')`, timescale: true, want: `time_bucket('300.000s',time_column)`},
		{name: "timeGroup with TimescaleDB, followed by a comma", in: `$__timeGroup(time_column, '1h'),`, timescale: true,
			want: `time_bucket('3600.000s',time_column) AS "time",`},
		{name: "timeGroupAlias", in: `$__timeGroupAlias(time_column,'5m')`, want: `floor(extract(epoch from time_column)/300)*300 AS "time"`},
		{name: "timeGroupAlias with TimescaleDB", in: `$__timeGroupAlias(time_column,'5m')`, timescale: true,
			want: `time_bucket('300.000s',time_column) AS "time"`},
		{name: "timeGroup of 12 days: %v switches to exponent form", in: `$__timeGroup(t,'12d')`,
			want: `floor(extract(epoch from t)/1.0368e+06)*1.0368e+06`},
		{name: "timeGroup of 12 days with TimescaleDB", in: `$__timeGroup(t,'12d')`, timescale: true, want: `time_bucket('1036800.000s',t)`},
		{name: "timeGroup of a day", in: `$__timeGroup(t, 1d)`, want: `floor(extract(epoch from t)/86400)*86400`},
		{name: "timeGroup of 1.5 s", in: `$__timeGroup(t,'1.5s')`, want: `floor(extract(epoch from t)/1.5)*1.5`},
		{name: "timeGroup of a compound interval", in: `$__timeGroup(t,1h30m)`, want: `floor(extract(epoch from t)/5400)*5400`},
		{name: "timeGroup of 20 ms with TimescaleDB", in: `$__timeGroup(t,'20ms')`, timescale: true, want: `time_bucket('0.020s',t)`},
		{name: "timeGroup with fill NULL", in: `$__timeGroup(t,'5m', NULL)`, want: `floor(extract(epoch from t)/300)*300`,
			fill: &grafanaFill{Interval: 5 * time.Minute, Mode: "null"}},
		{name: "timeGroup with fill previous", in: `$__timeGroupAlias(t,'1h',previous)`, want: `floor(extract(epoch from t)/3600)*3600 AS "time"`,
			fill: &grafanaFill{Interval: time.Hour, Mode: "previous"}},
		{name: "timeGroup with fill 0", in: `$__timeGroupAlias(t,'1h',0)`, timescale: true, want: `time_bucket('3600.000s',t) AS "time"`,
			fill: &grafanaFill{Interval: time.Hour, Mode: "value", Value: 0}},
		{name: "timeGroup with four arguments: fill ignored", in: `$__timeGroup(t,'1h',0,x)`, want: `floor(extract(epoch from t)/3600)*3600`},
		{name: "timeGroup: fill null in lower case", in: `$__timeGroup(t,'1h',null)`, err: `error parsing fill value null`},
		{name: "timeGroup without interval", in: `$__timeGroup(t)`, err: `macro __timeGroup needs time column and interval and optional fill value`},
		{name: "timeGroup of a function call", in: `$__timeGroup(to_timestamp(ts), '5m')`,
			err: `macro __timeGroup needs time column and interval and optional fill value`},
		{name: "timeGroup auto", in: `$__timeGroup(t,'auto')`, err: `error parsing interval 'auto'`},
		{name: "timeGroup of interval_ms", in: `$__timeGroup(t,$__interval_ms)`, err: `error parsing interval 1000`},
		{name: "timeGroup with double quotes", in: `$__timeGroup(t,"5m")`, err: `error parsing interval "5m"`},
		{name: "unixEpochFilter", in: `$__unixEpochFilter(time)`, want: `time >= 1492750877 AND time <= 1492751177`},
		{name: "unixEpochFrom and To", in: `select $__unixEpochFrom(), $__unixEpochTo()`, want: `select 1492750877, 1492751177`},
		{name: "unixEpochFrom with a space reaches the engine", in: `$__unixEpochFrom( )`, err: `unknown macro "__unixEpochFrom"`},
		{name: "unixEpochNanoFilter", in: `$__unixEpochNanoFilter(time)`,
			want: `time >= 1492750877000000000 AND time <= 1492751177000000000`},
		{name: "unixEpochNanoFrom and To", in: `$__unixEpochNanoFrom() $__unixEpochNanoTo()`, want: `1492750877000000000 1492751177000000000`},
		{name: "unixEpochGroup", in: `$__unixEpochGroup(time_column+time_adjustment,'5m')`, want: `floor((time_column+time_adjustment)/300)*300`},
		{name: "unixEpochGroup ignores TimescaleDB", in: `$__unixEpochGroupAlias(ts,'5m')`, timescale: true, want: `floor((ts)/300)*300 AS "time"`},
		{name: "interval and interval_ms", in: `$__interval $__timeGroupAlias(time,$__interval) $__interval_ms`,
			want: `1s floor(extract(epoch from time)/1)*1 AS "time" 1000`},
		{name: "not a macro without parenthesis", in: `$__timeFilter (t)`, want: `$__timeFilter (t)`},
		{name: "unknown macro", in: `$foo(bar)`, err: `unknown macro "foo"`},
		{name: "a digit is a name", in: `$1(x)`, err: `unknown macro "1"`},
		{name: "single pass", in: `$__time($__timeFrom())`, want: `$__timeFrom( AS "time")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := specRange
			r.Interval = time.Second // the API's default intervalMs
			r.TimescaleDB = tt.timescale
			got, fill, err := expandMacros(backendGlobals(tt.in, r), r)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.fill, fill)
		})
	}

	t.Run("timeFilter keeps milliseconds, in UTC", func(t *testing.T) {
		r := grafanaRequest{From: time.Date(1960, 2, 1, 8, 0, 0, 500e6, time.FixedZone("CET", 3600)),
			To: time.Date(2017, 4, 21, 5, 1, 17, 123e6, time.UTC)}
		got, _, err := expandMacros(`$__timeFilter(t)`, r)
		require.NoError(t, err)
		require.Equal(t, `t BETWEEN '1960-02-01T07:00:00.5Z' AND '2017-04-21T05:01:17.123Z'`, got)
	})
	t.Run("month intervals depend on today", func(t *testing.T) {
		r := specRange // 2026-02-10: one month is 28 days
		got, _, err := expandMacros(`$__timeGroup(t,'1M')`, r)
		require.NoError(t, err)
		require.Equal(t, `floor(extract(epoch from t)/2.4192e+06)*2.4192e+06`, got)
	})
}

func TestGrafanaMacroGlobals(t *testing.T) {
	// sqleng's test: 2018-04-12 18:00–18:05 UTC.
	r := grafanaRequest{From: time.Date(2018, 4, 12, 18, 0, 0, 0, time.UTC), To: time.Date(2018, 4, 12, 18, 5, 0, 0, time.UTC)}
	for _, tt := range []struct {
		interval time.Duration
		want     string
	}{
		{10 * time.Minute, "10m $__timeGroupAlias(time,10m) 600000"},
		{4 * time.Second, "4s $__timeGroupAlias(time,4s) 4000"},
		{200 * time.Millisecond, "200ms $__timeGroupAlias(time,200ms) 200"},
		{90 * time.Second, "1m $__timeGroupAlias(time,1m) 90000"}, // lossy, as gtime is
	} {
		r.Interval = tt.interval
		require.Equal(t, tt.want, backendGlobals("$__interval $__timeGroupAlias(time,$__interval) $__interval_ms", r))
	}
	require.Equal(t, "select 1523556000", backendGlobals("select $__unixEpochFrom()", r))
}

func TestGrafanaVariables(t *testing.T) {
	host := grafanaVar{Name: "host", Values: []string{"server01"}}
	multi := grafanaVar{Name: "host", Values: []string{"srv1", "srv2"}, Multi: true}
	tests := []struct {
		name, in, want string
		vars           []grafanaVar
		newest         bool
		err            string
	}{
		{name: "single value: raw", in: `WHERE host = $host`, vars: []grafanaVar{host}, want: `WHERE host = server01`},
		{name: "single value in quotes", in: `WHERE host = '$host'`, vars: []grafanaVar{host}, want: `WHERE host = 'server01'`},
		{name: "single value: quotes doubled", in: `'$v'`, vars: []grafanaVar{{Name: "v", Values: []string{"O'Brien"}}}, want: `'O''Brien'`},
		{name: "multi", in: `WHERE host IN ($host)`, vars: []grafanaVar{multi}, want: `WHERE host IN ('srv1','srv2')`},
		{name: "multi in quotes: a user error", in: `IN ('$host')`, vars: []grafanaVar{multi}, want: `IN (''srv1','srv2'')`},
		{name: "multi with one value", in: `($v)`, vars: []grafanaVar{{Name: "v", Values: []string{"app1"}, Multi: true}}, want: `('app1')`},
		{name: "multi escapes", in: `($v)`, vars: []grafanaVar{{Name: "v", Values: []string{"O'Brien", "Smith"}, Multi: true}},
			want: `('O''Brien','Smith')`},
		{name: "include All, one value: quoted by 10.x to 12.x", in: `$v`,
			vars: []grafanaVar{{Name: "v", Values: []string{"abc"}, IncludeAll: true}}, want: `'abc'`},
		{name: "include All, one value: not quoted by Grafana main", in: `$v`, newest: true,
			vars: []grafanaVar{{Name: "v", Values: []string{"abc"}, IncludeAll: true}}, want: `abc`},
		{name: "All without a custom value: every option", in: `IN ($v)`,
			vars: []grafanaVar{{Name: "v", Values: []string{"us", "eu"}, Multi: true, IncludeAll: true, All: true}}, want: `IN ('us','eu')`},
		{name: "All with a custom value: verbatim", in: `region IN ($v) ${v:sqlstring} ${v:text}`,
			vars: []grafanaVar{{Name: "v", Values: []string{"us"}, Multi: true, IncludeAll: true, All: true, AllValue: "*"}},
			want: `region IN (*) * All`},
		{name: "braces", in: `${host}x`, vars: []grafanaVar{host}, want: `server01x`},
		{name: "brackets", in: `[[host]] [[host:sqlstring]]`, vars: []grafanaVar{host}, want: `server01 'server01'`},
		{name: "csv", in: `${host:csv}`, vars: []grafanaVar{multi}, want: `srv1,srv2`},
		{name: "raw", in: `${host:raw}`, vars: []grafanaVar{multi}, want: `srv1,srv2`},
		{name: "raw keeps quotes", in: `${v:raw}`, vars: []grafanaVar{{Name: "v", Values: []string{"a'b"}}}, want: `a'b`},
		{name: "sqlstring", in: `${v:sqlstring}`, vars: []grafanaVar{{Name: "v", Values: []string{`a'b"c`, "d"}, Multi: true}},
			want: `'a''b\"c','d'`},
		{name: "sqlstring of a single value", in: `${host:sqlstring}`, vars: []grafanaVar{host}, want: `'server01'`},
		{name: "pipe", in: `${host:pipe}`, vars: []grafanaVar{multi}, want: `srv1|srv2`},
		{name: "text", in: `${d:text} $d`, vars: []grafanaVar{{Name: "d", Values: []string{"id-1"}, Texts: []string{"meter 1"}}},
			want: `meter 1 id-1`},
		{name: "unknown names stay", in: `$__timeFilter(t) $nope ${nope}`, want: `$__timeFilter(t) $nope ${nope}`},
		{name: "interval", in: `$__interval '$__interval' $__interval_ms ${__interval}`, want: `5m '5m' 300000 5m`},
		{name: "from and to", in: `$__from $__to`, want: `1492750877000 1492751177000`},
		{name: "longest name wins", in: `$hostname`, vars: []grafanaVar{host}, want: `$hostname`},
		{name: "unknown format", in: `${host:nope}`, vars: []grafanaVar{host}, err: `format "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := specRange
			r.Interval = 5 * time.Minute
			r.Vars = tt.vars
			r.NewestQuoting = tt.newest
			got, err := interpolateVariables(tt.in, r)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("whole pipeline", func(t *testing.T) {
		r := specRange
		r.Interval = time.Hour
		r.TimescaleDB = true
		r.Vars = []grafanaVar{{Name: "device", Values: []string{"d-1"}}, {Name: "series", Values: []string{"s-1", "s-2"}, Multi: true}}
		got, fill, err := expandGrafana(`SELECT $__timeGroupAlias("timestamp", $__interval, 0), avg(v) FROM r
WHERE $__timeFilter("timestamp") AND device = '$device' AND series IN ($series) AND $__interval_ms >= 3600000 GROUP BY 1`, r)
		require.NoError(t, err)
		require.Equal(t, `SELECT time_bucket('3600.000s',"timestamp") AS "time", avg(v) FROM r
WHERE "timestamp" BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z' AND device = 'd-1' AND series IN ('s-1','s-2') AND 3600000 >= 3600000 GROUP BY 1`, got)
		require.Equal(t, &grafanaFill{Interval: time.Hour, Mode: "value"}, fill)
	})
	t.Run("an error names the reference", func(t *testing.T) {
		_, err := interpolateVariables(`x = $v`, grafanaRequest{Vars: []grafanaVar{{Name: "v"}}})
		require.ErrorContains(t, err, "interpolating $v: variable v: a single-value variable needs one value, has 0")
	})
}

func TestGrafanaInterval(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		rng       time.Duration
		points    int
		low, want string
	}{
		{6 * time.Hour, 1000, "1m", "1m"}, // 21.6 s rounds to 20 s, below the 1m floor
		{6 * time.Hour, 1000, "", "20s"},
		{4 * 24 * time.Hour, 1000, "1m", "5m"},
		{4 * 24 * time.Hour, 1000, "1h", "1h"},
		{90 * 24 * time.Hour, 1000, "1m", "2h"},
		{365 * 24 * time.Hour, 1000, "1m", "6h"},
		{365 * 24 * time.Hour, 100, "1m", "1d"},
		{7 * 24 * time.Hour, 1, "", "7d"},
		{30 * 24 * time.Hour, 1, "", "30d"},
		{60 * 24 * time.Hour, 1, "", "1y"},
	}
	for _, tt := range tests {
		d, err := calculateInterval(from, from.Add(tt.rng), tt.points, tt.low)
		require.NoError(t, err)
		require.Equal(t, tt.want, secondsToHms(d.Seconds()), "%v over %d points, low %q", tt.rng, tt.points, tt.low)
	}
	require.Equal(t, "500ms", secondsToHms(0.5))
	require.Equal(t, "7d", secondsToHms(604800))
	require.Equal(t, "1m", secondsToHms(90)) // lossy
	ms, err := intervalToMs("15")
	require.NoError(t, err)
	require.Equal(t, 15000.0, ms)
}
