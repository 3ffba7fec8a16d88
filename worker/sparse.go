package worker

import (
	"io"
	"os"
)

// sparseBlock is the unit sparseWriter checks for zeros: the usual file
// system block size.
const sparseBlock = 4096

// sparseWriter writes to f, seeking over whole blocks of zeros instead of
// writing them, so that a sparse artifact (a 10 GB disk image that is
// mostly holes) stays sparse in run mode's output directory. finish sets
// the file's final size (a trailing hole is not written either).
type sparseWriter struct {
	f   *os.File
	off int64 // bytes accepted so far
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); {
		end := min(i+sparseBlock, len(p))
		j := i
		for j < end && p[j] == 0 {
			j++
		}
		if j == end && end-i == sparseBlock {
			// A whole block of zeros: leave a hole.
			if _, err := w.f.Seek(sparseBlock, io.SeekCurrent); err != nil {
				return i, err
			}
		} else if _, err := w.f.Write(p[i:end]); err != nil {
			return i, err
		}
		w.off += int64(end - i)
		i = end
	}
	return len(p), nil
}

// finish makes the file exactly as long as what was written.
func (w *sparseWriter) finish() error { return w.f.Truncate(w.off) }
