/*
 * copychunk.h - COPY in chunks that set bad rows aside (reject mode).
 *
 * A stream in reject mode keeps the encoded rows of its current chunk
 * (a few thousand rows) until the server has committed them.  Each chunk
 * is one COPY in its own transaction (BEGIN ... COMMIT) or, inside the
 * caller's transaction, under a savepoint.  When the chunk's COPY fails
 * for a row's own fault (copy_row_fault()), copy_chunk_settle() sends
 * its rows again without the bad ones:
 * - the row the server names ("COPY t, line N" in the error's context)
 *   is set aside, the rows before it (which the server took) are
 *   committed at once, and the rest is sent again;
 * - where the server names no row (a foreign key checked at the end of
 *   the statement, a statement trigger), the rows are split in halves,
 *   each sent on its own, down to the single row at fault.
 * So a failing chunk costs about two more sends of its rows, whatever
 * the number of bad rows in it, and a clean chunk nothing but the
 * BEGIN/COMMIT (or SAVEPOINT/RELEASE) around its COPY.
 *
 * The chunk records where each row ends in the caller's buffer and
 * whether it is gone (set aside, by the client's encoders or by the
 * server); the rejections the server caused are kept with their error
 * results for the caller to hand over.  Its arrays are allocated once,
 * for `cap` rows: adding a row never allocates.
 *
 * Uses: libpq, copy.h (the stream), pgconn.h (reading results),
 * interrupt.h.  Knows nothing about Lua.  Every function returns SL_OK or
 * a negative SL_E* code; none prints, raises or exits.
 */
#ifndef SLUICE_COPYCHUNK_H
#define SLUICE_COPYCHUNK_H

#include "sbuf.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define COPY_CHUNK_SAVEPOINT "sluice_copy"

typedef struct copy_chunk {
    size_t *ends;          /* owned: ends[i] = end of row i in the data
                            * (it begins where row i-1 ends; row 0 at 0) */
    unsigned char *gone;   /* owned: 1 = row i is set aside */
    size_t n, cap;         /* rows in the chunk, room for */
    /* the rows the server refused during the last settle, kept in row
     * order */
    size_t *rej_row;       /* owned: their indices */
    PGresult **rej_err;    /* owned: their errors */
    size_t nrej;
    size_t done;           /* rows [0, done) are settled: committed or set
                            * aside (a failure leaves the rest undone) */
    size_t doubt;          /* rows whose COMMIT got no answer */
    int own_tx;            /* each chunk is its own transaction (no
                            * transaction was open); else a savepoint */
    int binary;            /* the COPY's format is binary (a header and
                            * a trailer around the rows) */
    int csv;               /* ... or CSV (quoted line feeds are lines) */
    int relayed;           /* XX000 is a row's fault (copy_row_fault) */
    const char *sql;       /* borrowed: the COPY ... FROM STDIN statement */
} copy_chunk;

/* Allocate the arrays for `cap` rows.  SL_OK or SL_ENOMEM (then
 * copy_chunk_free() still frees whatever was allocated). */
int copy_chunk_init(copy_chunk *c, size_t cap);

/* Free everything the chunk owns; it can be initialized again. */
void copy_chunk_free(copy_chunk *c);

/* Empty the chunk for its next rows (frees the kept rejections). */
void copy_chunk_reset(copy_chunk *c);

/* Record the next row: it ends at `end`, and is gone when set aside by
 * the caller (its bytes then are none: end equals the previous end).
 * The caller never adds more than cap rows. */
static inline void copy_chunk_add(copy_chunk *c, size_t end, int gone)
{
    c->ends[c->n] = end;
    c->gone[c->n] = (unsigned char)(gone != 0);
    c->n++;
}

/* Whether an error of this SQLSTATE is the fault of one row's values
 * (classes 22 data exception, 23 integrity constraint violation, 44 WITH
 * CHECK OPTION violation, P0 raised by PL/pgSQL, and 54000 a program
 * limit a value passed: an array too deep, an index row too large), so
 * that the rows can be sent again without it.  Anything else (a lost connection, a cancel,
 * a serialization failure, a missing table) stops the load.
 * relayed: the server relays other servers' errors without their
 * SQLSTATE (Citus: a worker's refusal of a row in a COPY or an INSERT ...
 * SELECT into a distributed table arrives as XX000, without the COPY's
 * line), so XX000 counts too; the rows are then settled by halves, and
 * a row is set aside only when it fails alone. */
int copy_row_fault(const char *sqlstate, int relayed);

/* The statements around one chunk: BEGIN or SAVEPOINT + the COPY (one
 * round trip), and the binary header; then the COPY is open.  SL_EFAIL
 * with *err (the caller owns it; the transaction or savepoint is then
 * undone), SL_EBROKEN, or SL_EINTR (Ctrl-C while waiting: a cancel was
 * sent; the chunk was undone). */
int copy_chunk_open(PGconn *pg, const copy_chunk *c, PGresult **err);

/* End the open COPY and read its result; on success commit the chunk
 * (COMMIT or RELEASE SAVEPOINT) and add the server's row count to
 * *loaded; on failure undo it.  SL_OK, SL_EFAIL with *err (owned by the
 * caller), SL_EBROKEN.  *committing is set while the answer to a COMMIT
 * is awaited (a connection lost then leaves the chunk in doubt).  Ctrl-C
 * is left pending (a cancel would only turn a committed chunk into a
 * failed one). */
int copy_chunk_close(PGconn *pg, const copy_chunk *c, uint64_t *loaded,
                     int *committing, PGresult **err);

/* Undo the chunk's transaction or savepoint after a failure (ROLLBACK,
 * or ROLLBACK TO + RELEASE).  SL_OK or SL_EBROKEN. */
int copy_chunk_undo(PGconn *pg, const copy_chunk *c);

/* The row of [from, to) that the error's context names ("COPY t, line
 * N", counted over the rows not gone from `from`, in `data`: a row is one
 * line, but in CSV the server also counts the line feeds inside quoted
 * fields, except in the COPY's first row); c->n when it names none in
 * that range. */
size_t copy_chunk_row_of(const copy_chunk *c, const char *data, size_t from,
                         size_t to, const PGresult *err);

/* Settle a chunk whose COPY of all its rows failed with `err` (a row
 * fault; the chunk was undone): commit every good row (the server's
 * counts added to *loaded) and set the bad ones aside (c->rej_*).
 * `data` holds the rows (c->ends).  Takes ownership of err.  SL_OK when
 * every row was loaded or set aside.  Else what stopped it: SL_EFAIL with
 * *fatal (owned by the caller) for an error that is no row's fault,
 * SL_EBROKEN, SL_EINTR (Ctrl-C), SL_ENOMEM; the rows committed before are
 * in *loaded, and *committing says whether a COMMIT was left unanswered.
 * The rejections recorded so far stay in c->rej_* either way. */
int copy_chunk_settle(PGconn *pg, copy_chunk *c, const char *data,
                      PGresult *err, uint64_t *loaded, int *committing,
                      PGresult **fatal);

#endif
