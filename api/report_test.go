package api

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/amrd/amrd/ingest"
)

// The report written by hand is byte for byte what encoding/json writes.
func TestAppendCleanReport(t *testing.T) {
	for _, r := range []ingest.Report{
		{Rejected: []ingest.ItemError{}},
		{Accepted: 1, Rejected: []ingest.ItemError{}},
		{Accepted: 998, Staged: 1, Duplicates: 12345, Conflicts: 7, Rejected: nil},
		{Accepted: 1 << 40, Staged: -1},
	} {
		want := r
		want.Rejected = []ingest.ItemError{}
		raw, err := json.Marshal(want)
		require.NoError(t, err)
		require.Equal(t, string(raw), string(appendCleanReport(nil, r)))
	}
}
