/*
 * pipeline.h - the libpq side of a pipelined prepared INSERT (or any
 * statement): many executions in flight, synced every N rows, results
 * read as they come so neither side ever blocks the other.
 *
 * Provides: pipe_enter() switches a connection to pipeline mode
 * (nonblocking), pipe_send_row() queues one execution, pipe_sync() ends a
 * sync group, pipe_pump() sends what libpq holds and reads the results
 * that arrived (optionally until every one is in), pipe_finish() ends the
 * last group, waits for everything, and leaves pipeline mode.
 *
 * Sync groups: with autocommit set, each group is wrapped in BEGIN ...
 * COMMIT, so a group commits entirely or not at all.  After a failure the
 * server skips the rest of its group, and every later group fails too
 * (its BEGIN meets the aborted transaction block), so exactly the groups
 * before the failed one are committed; pipe_finish() then sends the
 * ROLLBACK that ends the aborted block.  Without autocommit (the caller
 * holds a transaction) nothing is committed here at all.
 *
 * Results are mapped back to rows through a FIFO of what was sent; the
 * first failure is kept (err, err_row, 1-based, err_kind).
 *
 * Reject mode (`reject` in pipe_enter): every group is its own unit -
 * BEGIN ... COMMIT with autocommit, else SAVEPOINT sluice_pipe ...
 * RELEASE SAVEPOINT sluice_pipe in the caller's transaction - and the
 * caller keeps the rows after confirmed_upto (the last row of the last
 * group whose COMMIT or RELEASE succeeded).  After a row's failure
 * (pipe_row_fault()) the caller reads every result (pipe_pump wait_all),
 * takes s->err, ends the aborted block with pipe_recover() and sends the
 * kept rows again without the bad one: groups always go out in row order,
 * so the groups committed are those of a prefix of the rows.  The row
 * numbers are the caller's (pipe_send_row's `row`), so a row sent again
 * keeps its number.
 *
 * Uses: libpq (pipeline mode, PostgreSQL 14+ libpq), poll(2),
 * interrupt.h.  Knows nothing about Lua.  Functions return SL_OK or
 * SL_EBROKEN / SL_EINTR / SL_ENOMEM (copy.h's codes).
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* what was sent, per FIFO item */
enum { PIPE_IT_COMMIT, PIPE_IT_ROW, PIPE_IT_CTRL, PIPE_IT_SYNC,
       PIPE_IT_RELEASE };

typedef struct pipe_item {
    uint64_t row;         /* a row: its number; a group's end: the group's
                           * last row; else the last row sent */
    uint64_t count;       /* a group's end: its rows */
    int kind;             /* PIPE_IT_* */
} pipe_item;

typedef struct pipe_state {
    PGconn *pg;           /* borrowed */
    int active;           /* in pipeline mode */
    int autocommit;       /* BEGIN/COMMIT around each sync group */
    int reject;           /* reject mode (above) */
    int group_open;       /* something sent since the last sync */
    uint64_t group_rows;  /* rows sent in the open group */
    uint64_t last_row;    /* the last row sent */
    uint64_t rows_sent;   /* executions queued (the highest row number) */
    uint64_t rows_done;   /* executions whose result came back */
    uint64_t rows_committed; /* rows of groups whose COMMIT succeeded */
    uint64_t rows_commit_sent; /* rows of groups whose COMMIT was sent */
    uint64_t rows_confirmed; /* reject mode: rows of groups whose COMMIT or
                              * RELEASE succeeded */
    uint64_t confirmed_upto; /* reject mode: the last row of the last one */
    pipe_item *fifo;      /* owned: what was sent, in order */
    size_t head, tail, cap;
    unsigned since_pump;  /* rows sent since the last read of results */
    PGresult *err;        /* owned: the first failure, or NULL */
    uint64_t err_row;     /* its row (1-based; a COMMIT: its group's last) */
    int err_kind;         /* what failed (PIPE_IT_*) */
} pipe_state;

/* Enter pipeline mode on pg (idle, not in a COPY) in nonblocking mode;
 * `reject`: reject mode.  SL_OK, or SL_EBROKEN (the connection is left
 * as it was). */
int pipe_enter(pipe_state *s, PGconn *pg, int autocommit, int reject);

/* Queue one execution of the prepared statement `stmt`; starts a group
 * (BEGIN) first when needed; reads results now and then, and waits
 * (reading results) while libpq holds unsent data, so memory stays
 * bounded.  SL_OK, SL_EBROKEN, SL_ENOMEM, or SL_EINTR when
 * interruptible and an interrupt is pending. */
int pipe_send_row(pipe_state *s, const char *stmt, int n,
                  const char *const *values, const int *lengths,
                  const int *formats, uint64_t row, int interruptible);

/* End the current group (COMMIT when autocommit) with a sync point.
 * Does not wait for its results.  SL_OK, SL_EBROKEN, SL_ENOMEM. */
int pipe_sync(pipe_state *s);

/* Send what libpq holds and read every result that arrived; with
 * wait_all, until all results of what was synced are in.  Return codes
 * as pipe_send_row. */
int pipe_pump(pipe_state *s, int wait_all, int interruptible);

/* Is the kept failure a row's own fault (a row's execution refused with
 * SQLSTATE class 22, 23, 44 or P0)? */
int pipe_row_fault(const pipe_state *s);

/* Reject mode, after a row's failure: every result read, the failure
 * taken from s->err by the caller.  Ends the aborted block (ROLLBACK, or
 * ROLLBACK TO + RELEASE SAVEPOINT sluice_pipe) and waits for its answer.
 * SL_OK, SL_EBROKEN, SL_EINTR, SL_ENOMEM, or SL_OK with s->err set when
 * the server refused it. */
int pipe_recover(pipe_state *s);

/* End the pipeline: the open group is committed when `commit` (and no
 * failure was seen), else rolled back; waits for every result (not
 * interruptible), rolls back an aborted block (autocommit), leaves
 * pipeline mode and nonblocking mode.  SL_OK or SL_EBROKEN.  Never
 * raises; safe to call twice. */
int pipe_finish(pipe_state *s, int commit);

/* Free the FIFO and the kept error. */
void pipe_free(pipe_state *s);

#endif
