package ingest

// Request is one request's items in the order they were sent, as the pipeline takes
// them: the readings to write, each with its position, and the items refused before the
// pipeline (by decoding, or by a caller's own rule) with theirs. Submit answers it with
// one Report whose Rejected lists both, in position order. The zero Request is empty;
// Decode makes one from a body, and callers that read readings another way Add them.
type Request struct {
	readings []Reading
	index    []int       // each reading's position
	keys     []keys      // each reading's keys when a caller resolved them (AddResolved); nil when none did
	rejected []ItemError // the items refused before the pipeline, in position order
	n        int         // positions taken
}

// keys are a reading's device and series as the readings table keys them, resolved by
// the caller; zero for a reading to be resolved by its names.
type keys struct{ device, series int32 }

// Add takes the next position with a reading, to be resolved by its names.
func (q *Request) Add(r Reading) {
	q.readings = append(q.readings, r)
	q.index = append(q.index, q.n)
	if q.keys != nil {
		q.keys = append(q.keys, keys{})
	}
	q.n++
}

// AddResolved takes the next position with a reading whose device and series the
// caller found by id (POST meter-readings): device and series are their keys, and the
// reading's names serve only the messages. The pipeline validates it as any other
// (series of the device's config, CT/VT, organization) but never stages it: a device
// key it cannot find is an unknown device.
func (q *Request) AddResolved(r Reading, device, series int32) {
	if q.keys == nil {
		q.keys = make([]keys, len(q.readings), cap(q.readings))
	}
	q.Add(r)
	q.keys[len(q.keys)-1] = keys{device, series}
}

// Reject takes the next position with an item refused before the pipeline; its Index is
// set to the position.
func (q *Request) Reject(e ItemError) {
	e.Index = q.n
	q.rejected = append(q.rejected, e)
	q.n++
}

// Refuse moves the readings that check refuses (a non-nil ItemError) from the readings
// to the rejections, at their positions.
func (q *Request) Refuse(check func(*Reading) *ItemError) {
	var refused []ItemError
	kept := 0
	for i := range q.readings {
		if e := check(&q.readings[i]); e != nil {
			e.Index = q.index[i]
			refused = append(refused, *e)
			continue
		}
		q.readings[kept], q.index[kept] = q.readings[i], q.index[i]
		if q.keys != nil {
			q.keys[kept] = q.keys[i]
		}
		kept++
	}
	if refused == nil {
		return
	}
	clear(q.readings[kept:]) // drop what the refused readings point to
	q.readings, q.index = q.readings[:kept], q.index[:kept]
	if q.keys != nil {
		q.keys = q.keys[:kept]
	}
	q.rejected = mergeRejected(q.rejected, refused)
}

// Readings are the readings the pipeline is to take in, in position order. They belong
// to the request: read them, do not change them.
func (q *Request) Readings() []Reading { return q.readings }

// Position is the position in the request of Readings()[i].
func (q *Request) Position(i int) int { return q.index[i] }

// Merge returns the request's rejections and rejected (those of its readings, by
// position, in position order) as one list in position order; never nil. Submit answers
// with it; a fake of the pipeline in tests may too.
func (q *Request) Merge(rejected []ItemError) []ItemError {
	return mergeRejected(q.rejected, rejected)
}

// key returns the keys of reading i; zero when it is to be resolved by its names.
func (q *Request) key(i int) keys {
	if q.keys == nil {
		return keys{}
	}
	return q.keys[i]
}

// mergeRejected merges two lists of rejections ordered by index into one.
func mergeRejected(a, b []ItemError) []ItemError {
	out := make([]ItemError, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0].Index < b[0].Index {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
