// Command router will consume the outbox written by mllp-listener, apply
// routes.yaml and write clinical events (issue #3). Until then it only
// explains that it is not there yet, so nobody mistakes it for a router
// that runs and does nothing.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "router: not implemented yet; messages accumulate in the outbox table until it is (see issue #3)")
	os.Exit(2)
}
