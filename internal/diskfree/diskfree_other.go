//go:build !unix && !windows

package diskfree

import (
	"errors"
	"fmt"
)

func available(dir string) (int64, error) {
	return 0, fmt.Errorf("free space of %s: %w", dir, errors.ErrUnsupported)
}
