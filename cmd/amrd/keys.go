package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/amrd/amrd/store"
)

// keysUsage is the keys command's usage.
const keysUsage = "usage: amrd keys rotate [-batch N]"

// rotateBatch is how many key rows one transaction re-encrypts: 500 rows of five short
// values are about 100 KB each way and a few milliseconds of AES, so a transaction holds
// its row locks briefly, and an interrupted rotation loses at most one batch's work.
const rotateBatch = 500

// failedShown bounds the ids of undecryptable rows printed: all of them fail alike (a
// missing fallback, most likely), and a rerun lists them again.
const failedShown = 100

// keysCmd runs `amrd keys rotate`: every stored meter security key is re-encrypted under
// SECRET_KEY, reading the old values with SECRET_KEY or any of SECRET_KEY_FALLBACKS.
func keysCmd(ctx context.Context, cfg settings, log *slog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New(keysUsage)
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Int("batch", rotateBatch, "rows re-encrypted per transaction")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *batch < 1 {
		return errors.New("keys rotate: -batch must be at least 1")
	}
	if err := cfg.needDB(); err != nil {
		return err
	}
	if len(cfg.SecretKey) < minSecretLen {
		return fmt.Errorf("keys rotate: SECRET_KEY must be set to the new secret (at least %d characters), "+
			"and SECRET_KEY_FALLBACKS to the old ones", minSecretLen)
	}
	if err := cfg.checkFallbacks(); err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL, MaxConns: 2, Secret: cfg.SecretKey,
		SecretFallbacks: cfg.SecretKeyFallbacks}, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := checkSchema(ctx, st); err != nil {
		return err
	}
	r, err := st.RotateSecurityKeys(ctx, *batch, func(r store.KeyRotation) {
		fmt.Fprintf(stderr, "keys rotate: %d rows done\n", r.Changed+r.Current+int64(len(r.Failed)))
	})
	fmt.Fprintf(stdout, "keys rotate: %d rows re-encrypted under SECRET_KEY, %d already under it, %d could not be decrypted\n",
		r.Changed, r.Current, len(r.Failed))
	if len(r.Failed) > 0 {
		fmt.Fprintln(stdout, "rows that neither SECRET_KEY nor SECRET_KEY_FALLBACKS decrypt (left unchanged; their keys must be entered again):")
		for i, id := range r.Failed {
			if i == failedShown {
				fmt.Fprintf(stdout, "  ... and %d more\n", len(r.Failed)-failedShown)
				break
			}
			fmt.Fprintf(stdout, "  meter security key collection %s\n", id)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("keys rotate: interrupted; run it again to finish (rows done are skipped): %w", err)
		}
		return fmt.Errorf("keys rotate: %w", err)
	}
	if len(r.Failed) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("keys rotate: %d rows could not be decrypted", len(r.Failed))}
	}
	return nil
}
