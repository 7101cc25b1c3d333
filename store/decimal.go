package store

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/apd/v3"
)

// Decimal is an exact decimal number (numeric in SQL; never a float64). JSON carries it as
// a string in plain notation ("0.001", never "1E-3"), as DRF's DecimalField does, so that
// no client reads it through a float. Queries pass it as text cast to numeric and read
// numeric back as text.
type Decimal struct{ apd.Decimal }

// DecimalOf returns the integer n as a Decimal.
func DecimalOf(n int64) Decimal {
	var d Decimal
	d.SetInt64(n)
	return d
}

// String is the plain notation of the number.
func (d Decimal) String() string { return d.Text('f') }

// MarshalJSON writes the number as a JSON string.
func (d Decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.Text('f')) }

// setText reads numeric's text output.
func (d *Decimal) setText(s string) error {
	_, _, err := d.SetString(s)
	return err
}

// Scan reads numeric's text output (select the column as value::text), so that pgx scans
// decimals without a float64.
func (d *Decimal) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return d.setText(v)
	case []byte:
		return d.setText(string(v))
	}
	return fmt.Errorf("scanning a decimal from %T", src)
}
