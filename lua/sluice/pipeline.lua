--- Pipelined executions: db:pipeline(sql, opts).
--
-- One prepared statement, executed once per pl:send(...) with libpq's
-- pipeline mode: many executions in flight, no round trip per row
-- (runtime/lib_pipeline.c over runtime/pipeline.c).
--
--   local pl = db:pipeline("insert into metrics values ($1, $2, $3)",
--                          {sync_every = 1000})
--   for ... do pl:send(host, ts, v) end
--   pl:close()
--
-- opts.sync_every: rows per sync group (default 1000).  opts.json_encode
-- as for db:batch.  opts.quiet: true shows no progress at all; otherwise,
-- on a terminal, the live progress line (sluice.progress: after a second,
-- redrawn at sync points, never per row) and at close() the summary
-- "<table> pipeline: N rows, R rows/s, X MB/s, m:ss" (the table of an
-- INSERT INTO, N the rows sent, MB/s of encoded parameters) on stderr;
-- --quiet and a stderr that is no terminal: the summary only.  Values are encoded by the parameter types the server
-- infers for sql (epoch seconds for timestamps, tables as JSON or array
-- literals, ...), otherwise as db:query() parameters.
--
-- What is committed: with no transaction open on the connection, each
-- sync group runs in its own BEGIN ... COMMIT.  A failing row aborts its
-- group; later groups are not committed either, so exactly the rows
-- before the failed row's group are in the table (err.committed_rows).
-- When the caller holds a transaction, nothing is committed here and a
-- failure aborts the caller's transaction.
--
-- opts.on_reject: function(values, err, row) - reject mode: an execution
-- the server refuses for its row's own fault (SQLSTATE classes 22, 23,
-- 44, P0: a bad value, NOT NULL, CHECK, a foreign key, a duplicate key, a
-- trigger's RAISE) is handed over and exactly the other rows are
-- committed.  Each sync group is its own unit: BEGIN ... COMMIT with no
-- transaction open, else SAVEPOINT sluice_pipe ... RELEASE in the
-- caller's transaction (which a refused row then leaves usable).  The
-- encoded parameters of every row not yet confirmed (its group's COMMIT
-- or RELEASE answered) are kept; when a row fails, the rest of its group
-- and every later group in flight fail with it, so every answer is read,
-- the aborted block ended (ROLLBACK, or ROLLBACK TO the savepoint), the
-- row set aside and the kept rows sent again without it - in row order,
-- so the rows run as if sent one by one (the later of two equal keys is
-- the one refused).  A failing row costs one round trip and a resend of
-- the rows in flight; a clean run, the kept copies of the rows in flight.
-- on_reject gets the values as sent (strings, nil for NULL), the
-- server's error object and the row number (1-based, in send() order),
-- in row order, at the end of the send(), sync() or close() that found
-- the failure - the connection is still in pipeline mode then (except in
-- close()), so on_reject must not use it, but it may pl:send() a
-- corrected row.  If on_reject raises, the others are still handed over,
-- then the pipeline ends as on a failure (its open group rolled back)
-- and an error "pipeline: on_reject raised for row N (...)" says what
-- was committed.  A value the parameter encoders refuse (a Lua type they
-- cannot send) still raises at the caller's line, and a deferred
-- constraint failing at COMMIT, or any error that is no row's fault,
-- ends the pipeline as without on_reject; its message then says "C rows
-- were committed and R handed to on_reject; each row up to row K is one
-- or the other; no other row was committed" (committed_rows = C, and
-- every row set aside before it has been handed over).  pl.rows_rejected
-- counts the rows handed over; rows_done counts rows committed (or, in
-- the caller's transaction, executed) or handed over.
--
-- A failure is raised when it is read - by a later send(), by sync() or
-- by close() - as the server's error object with `row` (1-based, in
-- send() order) and the message prefixed "pipeline: row N: "; the
-- pipeline is then closed.  Ctrl-C (a cancel request goes out first) and
-- a lost connection end it too.  Every such error says what was
-- committed, read from the server's answers once the pipeline has ended:
-- fields committed_rows and in_doubt_rows (rows of groups whose COMMIT
-- went out and got no answer: they may or may not have been committed).
--
-- pl:send(v1, ..., vN)  queue one execution (N = the statement's
--                       parameters; a wrong count raises at the caller's
--                       line)
-- pl:sync()             sync point now and wait for every result ->
--                       rows done
-- pl:close()            commit the open group, wait, leave pipeline
--                       mode -> rows sent.  Garbage collection ends an
--                       unclosed pipeline too, rolling its open group
--                       back (never committing).
-- pl:abort()            end it now, rolling the open group back (synced
--                       groups commit as they would) -> rows committed
-- Fields: rows_sent, rows_done, rows_committed, rows_in_doubt,
-- rows_rejected, sync_every, state.
-- While a pipeline is open the connection refuses other calls (libpq
-- allows nothing else in pipeline mode, COPY included).
local core = require "sluice.core"
local default_json_encode = require("sluice.values").default_json_encode
local callable = require("sluice.values").callable
local progress = require "sluice.progress"

local M = {}

-- The progress label: "<table> pipeline" for an INSERT INTO <table>, else
-- "pipeline".
local function label(sql)
  local t = sql:match("^%s*[Ii][Nn][Ss][Ee][Rr][Tt]%s+[Ii][Nn][Tt][Oo]%s+([^%s(]+)")
  return t and (t .. " pipeline") or "pipeline"
end

--- db:pipeline(sql, opts) -> pipeline (see the top of this file).
function M.pipeline(db, sql, opts)
  if type(sql) ~= "string" then
    error("pipeline: expected an SQL string, got " .. type(sql), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("pipeline: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "sync_every" and k ~= "json_encode" and k ~= "on_reject" and k ~= "quiet" then
      error("pipeline: unknown option '" .. tostring(k)
            .. "' (sync_every, json_encode, on_reject, quiet)", 2)
    end
  end
  if opts.on_reject ~= nil and not callable(opts.on_reject) then
    error("pipeline: on_reject must be a function(values, err, row), got "
          .. type(opts.on_reject), 2)
  end
  local every = opts.sync_every
  if every ~= nil and (type(every) ~= "number" or every < 1 or every % 1 ~= 0) then
    error("pipeline: sync_every must be a positive integer", 2)
  end
  local prog = progress.of(opts, label(sql))
  return core.pipeline_start(db, sql, {
    sync_every = every,
    json_encode = opts.json_encode or default_json_encode(),
    on_reject = opts.on_reject,
    progress = prog and prog:hook(true),
    progress_live = prog and prog.live,
  })
end

return M
