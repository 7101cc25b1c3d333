package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/store/storetest"
)

// The import itself is tested in package importer; these tests cover the command: its
// flags, the order of its checks, and its exit status.

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestImportCommandRefusals(t *testing.T) {
	t.Parallel()
	header := "meter,series,timestamp,value\n"
	tests := []struct {
		name    string
		csv     string // the file's content, unless args name the file
		args    []string
		wantErr []string
	}{
		{name: "a bad header is refused before the database is needed", csv: "meter,series,timestamp,value,unit\n",
			wantErr: []string{`unknown columns in the header: "unit"`}},
		{name: "no file", args: []string{"import", "readings"}, wantErr: []string{"usage: amrd import readings"}},
		{name: "two files", args: []string{"import", "readings", "a.csv", "b.csv"}, wantErr: []string{"usage: amrd import readings"}},
		{name: "import what", args: []string{"import", "devices", "a.csv"}, wantErr: []string{"usage: amrd import readings"}},
		{name: "negative -skip", args: []string{"import", "readings", "-skip", "-1", writeFile(t, "a.csv", header)}, wantErr: []string{"at least 0"}},
		{name: "unknown flag", args: []string{"import", "readings", "-force", "a.csv"}, wantErr: []string{"flag provided but not defined: -force"}},
		{name: "no DATABASE_URL", csv: header, wantErr: []string{"DATABASE_URL is not set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"import", "readings", writeFile(t, "in.csv", tc.csv)}
			}
			out, _, err := amrd(t, map[string]string{}, "", args...)
			require.Error(t, err)
			require.Equal(t, 1, exitCode(err))
			for _, w := range tc.wantErr {
				require.ErrorContains(t, err, w)
			}
			require.Empty(t, out)
		})
	}
}

// TestImportCommand: `amrd import readings` takes its flags before or after the file,
// writes through the pipeline, and exits with status 2 when rows were rejected.
func TestImportCommand(t *testing.T) {
	t.Parallel()
	env := migratedEnv(t)
	file := writeFile(t, "readings.csv", "meter,series,timestamp,value\n"+
		"newmeter,1.8.0,2026-01-01T00:00:00Z,1\n"+ // staged: no such device
		"newmeter,1.8.0,2026-01-01T00:15:00Z,abc\n"+ // rejected: not a number
		"newmeter,1.8.0,2026-01-01T00:30:00Z,3\n") // staged
	rejects := filepath.Join(t.TempDir(), "rejects.csv")

	out, _, err := amrd(t, env, "", "import", "readings", file, "-rejects", rejects, "-show", "1")
	require.Equal(t, 2, exitCode(err), "rows were rejected: exit status 2 (%v)", err)
	require.EqualError(t, err, "import readings from "+file+": 1 rows rejected and 0 conflicting")
	require.Contains(t, out, "import readings from "+file+": finished")
	require.Regexp(t, `(?m)^  staged +2$`, out)
	require.Regexp(t, `(?m)^  rejected +1$`, out)
	require.Contains(t, out, "first 1 of 1 rejected or conflicting rows:\n  line 3: value: A valid number is required")
	raw, err := os.ReadFile(rejects)
	require.NoError(t, err)
	require.Contains(t, string(raw), "3,newmeter,1.8.0,2026-01-01T00:15:00Z,abc,bad_value,")
	var n int
	storetest.QueryRow(t, env["DATABASE_URL"], `SELECT count(*) FROM staged_meter_readings`, &n)
	require.Equal(t, 2, n)

	out, _, err = amrd(t, env, "", "import", "readings", "-skip", "3", file)
	require.NoError(t, err, "the rejected row skipped: exit status 0")
	require.Regexp(t, `(?m)^  skipped +2$`, out)
	require.Regexp(t, `(?m)^  duplicates +1$`, out)
}
