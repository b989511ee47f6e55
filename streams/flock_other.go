//go:build !unix

package streams

import "os"

// Other systems get no data-dir lock; vrelay runs in Linux containers.
func flock(*os.File) error   { return nil }
func funlock(*os.File) error { return nil }
