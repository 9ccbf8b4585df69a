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
-- as for db:batch.  Values are encoded by the parameter types the server
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
-- sync_every, state.
-- While a pipeline is open the connection refuses other calls (libpq
-- allows nothing else in pipeline mode, COPY included).
local core = require "sluice.core"
local default_json_encode = require("sluice.values").default_json_encode

local M = {}

--- db:pipeline(sql, opts) -> pipeline (see the top of this file).
function M.pipeline(db, sql, opts)
  if type(sql) ~= "string" then
    error("pipeline: expected an SQL string, got " .. type(sql), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("pipeline: opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "sync_every" and k ~= "json_encode" then
      error("pipeline: unknown option '" .. tostring(k) .. "' (sync_every, json_encode)", 2)
    end
  end
  local every = opts.sync_every
  if every ~= nil and (type(every) ~= "number" or every < 1 or every % 1 ~= 0) then
    error("pipeline: sync_every must be a positive integer", 2)
  end
  return core.pipeline_start(db, sql, {
    sync_every = every,
    json_encode = opts.json_encode or default_json_encode(),
  })
end

return M
