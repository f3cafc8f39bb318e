package supervisor

import (
	"context"
	"fmt"
	"os"
)

// A local backend's listening socket is bound by the supervisor, like the
// LB's, and handed to every generation of that backend (Spec.Listen). The
// port is then never free while the backend restarts, so no other process,
// another user's included, can bind it and answer in the backend's place.
// Start binds the sockets of the first backends; scale binds the sockets of
// new ones and closes a removed backend's once its process is gone; Close
// closes them all.

// bindBackend binds the sockets of a backend that scale adds. A port taken
// meanwhile is an error naming the port and, where it can be found, the
// process holding it.
func bindBackend(ctx context.Context, spec Spec) ([]*os.File, error) {
	files, err := bindListeners(ctx, spec.Listen)
	if err != nil {
		return nil, fmt.Errorf("scale: %s: %w", spec.Name, err)
	}
	return files, nil
}

// closeChildFiles closes the sockets of children, those added by scale
// included. The first children's are also in Supervisor.files; a file
// closed twice only reports os.ErrClosed, so the overlap does no harm.
func closeChildFiles(children []*child) {
	for _, c := range children {
		closeFiles(c.files)
	}
}
