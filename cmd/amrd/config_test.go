package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestREADMEDefaults holds the README's table of settings to the defaults amrd runs
// with (the packages' DefaultConfig and amrd's own), so that neither can change alone:
// each setting of envSettings has a row, in the same order, whose default is its value
// in an empty environment, or "(unset: ...)" when that value is 0 and the variable
// takes no 0 (0 then means off or keep). The other rows are described in words.
func TestREADMEDefaults(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	rows := map[string]string{} // the first name of a row -> its default cell
	var order []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)`[^|]* \\| ([^|]*) \\|").FindAllStringSubmatch(string(raw), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
		order = append(order, m[1])
	}
	require.Contains(t, rows, "DATABASE_URL", "the README's table of settings was not found")

	described := []string{"DATABASE_URL", "SECRET_KEY", "SECRET_KEY_FALLBACKS", "JWT_SIGNING_KEY", "CORS_WHITELIST",
		"ALLOWED_HOSTS", "AMRD_CPUPROFILE", "GOGC", "PG_PORT", "AMRD_CACHE_DIR"}
	s := defaultSettings()
	last := -1
	for _, e := range envSettings {
		cell, ok := rows[e.name]
		require.True(t, ok, "%s has no row in the README's table of settings", e.name)
		want := "`" + e.text(&s) + "`"
		if e.text(&s) == "0" && e.min > 0 {
			require.True(t, strings.HasPrefix(cell, "(unset"), "%s: the README says %s; amrd's default is unset (0)", e.name, cell)
		} else {
			require.Equal(t, want, cell, "%s: the README's default against amrd's", e.name)
		}
		i := slices.Index(order, e.name)
		require.Greater(t, i, last, "%s: envSettings and the README list the settings in one order", e.name)
		last = i
	}
	for name := range rows {
		known := slices.ContainsFunc(envSettings, func(e envSetting) bool { return e.name == name })
		require.True(t, known || slices.Contains(described, name), "the README lists %s, which amrd does not read", name)
	}
	require.Contains(t, rows["GOGC"], fmt.Sprintf("`serve` uses %d and %d MiB", s.GCPercent, s.MemoryLimit>>20))
}
