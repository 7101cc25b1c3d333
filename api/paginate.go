package api

import (
	"net/url"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/amrd/amrd/store"
)

// Pagination limits. A page holds DefaultLimit rows unless limit says otherwise; a limit
// above MaxLimit is lowered to it (as DRF's max_limit does), so one request can never ask
// for the whole table.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// pageParams reads limit and offset. Unlike DRF, which silently falls back to defaults,
// amrd answers 400 naming the parameter for a value that is not a whole number in range,
// so a client bug is seen instead of paging wrongly.
func pageParams(c *fiber.Ctx) (store.Page, error) {
	p := store.Page{Limit: DefaultLimit}
	errs := FieldErrors{}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil && isDigits(v):
			p.Limit = MaxLimit // a number too large for int
		case err != nil:
			errs.add("limit", "A valid integer is required.")
		case n < 1:
			errs.add("limit", "Ensure this value is greater than or equal to 1.")
		case n > MaxLimit:
			p.Limit = MaxLimit
		default:
			p.Limit = n
		}
	}
	if v := c.Query("offset"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil && isDigits(v):
			errs.add("offset", "Ensure this value is less than or equal to 2147483647.")
		case err != nil:
			errs.add("offset", "A valid integer is required.")
		case n < 0:
			errs.add("offset", "Ensure this value is greater than or equal to 0.")
		case n > 1<<31-1:
			errs.add("offset", "Ensure this value is less than or equal to 2147483647.")
		default:
			p.Offset = n
		}
	}
	return p, errs.orNil()
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// pageBody is the limit/offset envelope with absolute next and previous links.
type pageBody[T any] struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

func newPage[T any](c *fiber.Ctx, p store.Page, count int, results []T) pageBody[T] {
	if results == nil {
		results = []T{}
	}
	b := pageBody[T]{Count: count, Results: results}
	if p.Offset+p.Limit < count {
		u := pageURL(c, p.Limit, p.Offset+p.Limit)
		b.Next = &u
	}
	if p.Offset > 0 {
		prev := p.Offset - p.Limit
		if prev > count-1 && count > 0 { // past the end: point at the last page
			prev = ((count - 1) / p.Limit) * p.Limit
		}
		u := pageURL(c, p.Limit, max(prev, 0))
		b.Previous = &u
	}
	return b
}

// pageURL is the request's absolute URL with limit and offset replaced; offset 0 is left
// out, as DRF does. Its host is checked (hosts.go); its path and query are escaped, so
// that nothing of the request is put in a link as is.
func pageURL(c *fiber.Ctx, limit, offset int) string {
	q := url.Values{}
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { q.Add(string(k), string(v)) })
	q.Set("limit", strconv.Itoa(limit))
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	} else {
		q.Del("offset")
	}
	u := url.URL{Scheme: linkScheme(c), Host: linkHost(c), Path: c.Path(), RawQuery: q.Encode()}
	return u.String()
}
