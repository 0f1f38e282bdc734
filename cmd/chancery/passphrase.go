package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/chancery-gov/chancery/internal/keyfile"
)

// readPassphrase returns the passphrase that opens key files: from file
// (--passphrase-file) or $CHANCERY_PASSPHRASE for scripts, otherwise asked
// for on the terminal without echo, so that it never lands in the shell's
// history. in is where the answer is read (the command's stdin), prompt
// where the question is written (its stderr, so that stdout stays the
// command's output). Without a terminal it refuses with a message naming
// both ways a script gives the passphrase.
func readPassphrase(file string, in io.Reader, prompt io.Writer) ([]byte, error) {
	if file != "" || os.Getenv(keyfile.EnvPassphrase) != "" {
		return keyfile.PassphraseFromEnv(file)
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, fmt.Errorf("no passphrase: give --passphrase-file FILE or set $%s (or run on a terminal to be asked for it)", keyfile.EnvPassphrase)
	}
	fmt.Fprint(prompt, "Passphrase of the key files: ")
	pass, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return nil, fmt.Errorf("read passphrase from the terminal: %w", err)
	}
	if len(pass) == 0 {
		return nil, fmt.Errorf("no passphrase: the terminal answer was empty")
	}
	return pass, nil
}
