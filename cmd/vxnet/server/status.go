package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/vxnet/vxnet/errkind"
)

// status is the HTTP status a failed callback is answered with, by the
// kind of its error. Docker reads only the {"Err": ...} message of any
// non-200 answer (pkg/plugins client.go) and shows it to the user, with
// one exception: libnetwork's remote driver takes a 404 from
// ProgramExternalConnectivity or RevokeExternalConnectivity as "the
// plugin does not implement this" and carries on as if it had succeeded.
// So a missing object is never a 404: it is a 500 like every error
// without a kind of its own, and the distinct statuses serve the logs,
// the tests and anyone reading the socket by hand.
func status(err error) int {
	switch errkind.Of(err) {
	case errkind.BadRequest:
		return http.StatusBadRequest
	case errkind.Conflict:
		return http.StatusConflict
	case errkind.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// result names a callback's outcome for Options.Observe: ok, timeout (no
// answer within the deadline), bad_request (the request was refused as
// wrong, before or by the callback), or error.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errkind.Of(err) == errkind.BadRequest:
		return "bad_request"
	}
	return "error"
}
