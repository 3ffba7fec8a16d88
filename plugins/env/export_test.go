package env

// SetFoldCase sets whether variable names compare case-insensitively and
// returns a function restoring the previous setting.
func SetFoldCase(v bool) (restore func()) {
	old := foldCase
	foldCase = v
	return func() { foldCase = old }
}
