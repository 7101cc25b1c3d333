// Package deploy carries amrd's deployment files; the local TimescaleDB script is embedded
// so that `amrd tsdb` works from the binary alone.
package deploy

import _ "embed"

// TSDBScript is tsdb.sh: provisioning and running a local TimescaleDB (see its header).
//
//go:embed tsdb.sh
var TSDBScript string
