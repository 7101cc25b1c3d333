// Package meterproto is the meter vocabulary of amrd: OBIS codes and the IEC 62056-21
// (formerly IEC 1107) codec, a TCP client for mode C data readouts, and a simulated
// meter for tests and demos. It imports only the standard library.
//
// Decisions the standard leaves open:
//
//   - A reduced OBIS code ("1.8.0", "32.7") says nothing of groups A and B, so it
//     matches a full code with any A and B ("1-0:1.8.0*255"). A group a code leaves out
//     (E of "32.7") holds Absent and is not compared; a missing F is 255, as the full
//     form implies, so "1.8.0" does not match the billing period "1.8.0*02".
//   - The data message is read byte by byte: the BCC is one raw byte after ETX and may
//     be CR, LF or '!'. Bit 7 of the BCC is ignored on both sides (links that pass the
//     parity bit on). Anything but NUL, CR or LF before STX is garbage, not skipped: a
//     NAK or a meter's error must not pass for an empty readout.
//   - Every failure wraps one sentinel (ErrRefused, ErrSilent, ErrDeadline, ErrTruncated,
//     ErrGarbage, ErrNoETX, ErrBCC, ErrSyntax), so that a collector can count failures by
//     cause and tell a dead line (refused, silent) from a bad one (BCC, garbage).
//   - A meter that stops sending halfway through the data block is ErrSilent (nothing
//     came for IdleTimeout); ErrNoETX is kept for a block that outgrows its bound.
//   - The meter's clock (0.9.1, 0.9.2) is a wall-clock time without offset; a time that
//     daylight saving time skips or repeats in the meter's zone is refused rather than
//     guessed.
package meterproto
