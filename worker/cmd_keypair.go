package worker

import (
	"flag"
	"fmt"
	"io"

	"github.com/workergen/workergen/internal/ed25519key"
)

// ExitKeypair is the exit code of a new-ed25519-keypair that could not
// create the key pair (generic-worker uses 75 too).
const ExitKeypair = 75

// cmdNewEd25519Keypair is `new-ed25519-keypair --file PATH`, as in
// generic-worker: it writes a fresh Chain of Trust signing key to PATH
// (base64 of the ed25519 seed, mode 0600; PATH must not exist) and prints
// the public key (base64) on stdout, for the operator to register with the
// Chain of Trust verifiers (scriptworker's ed25519 public key lists).
func cmdNewEd25519Keypair(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" new-ed25519-keypair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "path of the private key file to create (the worker config's plugins.chainoftrust.ed25519SigningKeyLocation)")
	pos, code, ok := parseCommand(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) > 0 || *file == "" {
		fmt.Fprintf(stderr, "%s new-ed25519-keypair: usage: --file ED25519-PRIVATE-KEY-FILE\n", b.Binary)
		return ExitUsage
	}
	pub, err := ed25519key.Generate(*file)
	if err != nil {
		fmt.Fprintf(stderr, "%s new-ed25519-keypair: %v\n", b.Binary, err)
		return ExitKeypair
	}
	fmt.Fprintln(stdout, ed25519key.PublicString(pub))
	return 0
}
