/*
 * redact.h - keeping the password of a connection target out of messages.
 *
 * Provides: redact_init() finds the secrets of a connection target (a
 * postgres:// URI, a key=value conninfo string, or a bare database name)
 * by looking at its text, not by parsing it the way libpq does, so a
 * target libpq cannot parse is covered too: the password of a URI's user
 * part, password= and sslpassword= values (in a conninfo string or a URI
 * query), each with its percent-decoded and unquoted forms.  It leans
 * towards hiding too much: a value that may hold a password is hidden up
 * to the next known keyword.  redact_text() copies a message with every
 * secret, and every quoted token that shares text with one (libpq quotes
 * the token it stopped at, which may be a piece of the password), replaced
 * by "***"; redact_overlaps() tells whether a value (a host, a port, ...)
 * shares text with a secret; r->shown is the target with its secrets
 * replaced.
 *
 * Uses: nothing but the C library.  Never allocates, never fails: a
 * target too long or with too many secrets to track is hidden whole.
 */
#ifndef SLUICE_REDACT_H
#define SLUICE_REDACT_H

#include <stddef.h>

#define REDACT_MARK "***"
#define REDACT_TARGET_MAX 2048 /* longer targets are hidden whole */
#define REDACT_MAX_FORMS 48
#define REDACT_STORE 12288

typedef struct redact {
    int all;                          /* hide everything that may echo input */
    int n;                            /* forms in store */
    size_t off[REDACT_MAX_FORMS];     /* each form: NUL-terminated in store */
    size_t used;
    char store[REDACT_STORE];
    char shown[REDACT_TARGET_MAX + 1]; /* the target, secrets replaced */
} redact;

/* Find the secrets of target (NULL is ""). */
void redact_init(redact *r, const char *target);

/* Add one more secret (the password libpq ended up with, from the target,
 * PGPASSWORD or a password file); NULL and "" are ignored. */
void redact_add(redact *r, const char *secret);

/* Nonzero when value shares text with a secret: contains one, is part of
 * one (2 bytes or more), or overlaps one's start or end by 3 bytes or
 * more.  Always nonzero for a non-empty value when r->all is set. */
int redact_overlaps(const redact *r, const char *value);

/* Copy text to out[0..outlen) (always NUL-terminated, cut short if it
 * does not fit) with every secret of 3 bytes or more replaced by "***",
 * and the contents of every double-quoted token that overlaps a secret
 * too.  Returns the length written. */
size_t redact_text(const redact *r, const char *text, char *out,
                   size_t outlen);

#endif
