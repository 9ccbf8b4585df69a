--- Batched multi-row INSERT: db:batch(table, columns, opts).
--
-- The buffer-and-flush loop of Kafka Connect's JDBC sink, Logstash or
-- ClickHouse's async insert: rows are buffered (encoded in C at add()
-- time, runtime/lib_batch.c) and go out as INSERT ... VALUES ($1, ...),
-- (...) statements when the buffer holds `rows` rows or `bytes` bytes, or
-- when its oldest row is `max_age_ms` old - whichever comes first.
--
--   local b = db:batch("metrics", {"host", "ts", "v"}, {rows = 1000})
--   for ... do b:add(host, ts, v) end
--   b:close()                      -- flushes the rest
--
-- Options:
--   rows         flush at this many buffered rows (default 1000)
--   bytes        flush when the encoded values reach this many bytes
--                (default: no limit)
--   max_age_ms   flush when the oldest buffered row is this old.  The age
--                is measured on the monotonic clock from the add() that
--                put the first row into an empty buffer; it is checked on
--                every add() (the row being added goes out with the
--                rest) and by b:poll(), which a script calls from an
--                idle loop.  Nothing runs in the background: a batch
--                that is neither added to nor polled does not flush.
--   on_conflict  SQL after ON CONFLICT, e.g. "(host, ts) DO UPDATE SET
--                v = excluded.v" or "DO NOTHING" (script text, not data)
--   returning    a column name or a list of them: RETURNING those.  Each
--                flush returns the returned rows in input order (so does
--                on_returning).  With DO NOTHING, skipped rows return
--                nothing, and neither do rows handed to on_reject, so
--                positions no longer match input rows.
--   on_returning function(rows) called after each flush with them
--   transaction  "per_flush" (default): each flush is committed on its
--                own - one statement autocommits; a flush split into
--                several statements runs in BEGIN ... COMMIT.  The
--                connection must have no transaction open then.
--                "caller": statements run in the caller's transaction;
--                nothing is committed here.
--   json_encode  function(table) -> string for json/jsonb columns
--                (default lua-cjson's encode)
--   on_reject    function(values, err, row): keep the good rows of a
--                flush that fails.  The flush is sent again one row per
--                statement; each row the server refuses for the row's own
--                fault (SQLSTATE class 22 bad value, 23 constraint, 44
--                check option, P0 trigger RAISE) goes to on_reject with
--                its values as sent (strings, nil for NULL), the error
--                object and its row number; the others are inserted (each
--                committed on its own with "per_flush", under a savepoint
--                in the caller's transaction with "caller").  Any other
--                error still raises.  Slower only for flushes that fail.
--                on_reject runs once the flush is over, so it may add()
--                (a corrected row, say); if it raises, the error names the
--                rejected rows it did not get.
--
-- Statements: at most 65,535 parameters each, so a flush of R rows of C
-- columns goes out in statements of floor(65535 / C) rows (or `rows`,
-- whichever is smaller).  That full shape is prepared once, when the
-- batch is made (a bad column or on_conflict raises there); a last,
-- smaller statement is sent unnamed.
--
-- Values are encoded as db:query() parameters (nil/sluice.null, booleans,
-- numbers exactly, strings, int64 cdata), by the column's type: epoch
-- seconds for date/timestamp/timestamptz, \x hex for bytea strings, Lua
-- tables as JSON for json/jsonb and as array literals for arrays.  A
-- wrong number of values raises at the caller's line.
--
-- A failed flush raises the server's error object with the message
-- prefixed by the rows it held (numbered from 1 in add() order) and what
-- is committed; fields first_row, last_row, committed_rows.  Its rows are
-- dropped from the buffer (they are named in the error); the batch stays
-- usable.  To keep them instead, pass on_reject.
--
-- b:flush() -> rows flushed, returned rows (when returning)
-- b:poll()  -> the same when the age limit was reached, else 0
-- b:close() -> rows added over the batch's life; flushes the rest and
--              deallocates the prepared statement.  Garbage collection
--              frees the buffer but never flushes: call close().
-- Fields: b.buffered, b.rows_added, b.buffered_bytes,
-- b.rows_per_statement, b.statement, b.state ("open", "closed").
local M = {}

local BATCH_OPTS = {
  rows = true, bytes = true, max_age_ms = true, on_conflict = true,
  returning = true, on_returning = true, transaction = true,
  json_encode = true, on_reject = true,
}

local default_json_encode = require("sluice.values").default_json_encode


local function positive(v)
  return v == nil or (type(v) == "number" and v > 0 and v < 2^31)
end

local sluice_error -- sluice.error, looked up lazily (init.lua loads us)
local retry_rows -- below

-- A copy of the server's error object (or a string) with prefix before
-- its message and extra fields.
local function reworded(err, prefix, fields)
  if type(err) == "table" then
    local e = {}
    for k, v in pairs(err) do e[k] = v end
    e.message = prefix .. tostring(err.message)
    for k, v in pairs(fields) do e[k] = v end
    sluice_error = sluice_error or require("sluice").error
    return sluice_error(e)
  end
  return prefix .. tostring(err)
end

-- What is committed before row `first`, for messages.
local function committed_text(st)
  if st.committed == 0 then return "no earlier rows were committed" end
  if st.rejects > 0 then
    return ("rows 1-%d were done by earlier flushes (inserted, or handed to on_reject)")
           :format(st.committed)
  end
  return ("rows 1-%d were committed by earlier flushes"):format(st.committed)
end

-- The error of a failed flush: the server's error object (or a string)
-- with the message saying which rows and what is committed.  saved: the
-- flush ran under a savepoint, which undid it (the caller's transaction
-- goes on).
local function flush_error(st, err, first, last, saved)
  local what
  if st.mode == "caller" and saved then
    what = "(transaction = \"caller\": this flush was rolled back to a savepoint; the "
      .. "caller's transaction goes on)"
  elseif st.mode == "caller" then
    what = "(transaction = \"caller\": the caller's transaction is aborted; "
      .. "roll it back)"
  else
    what = "(this flush was rolled back; " .. committed_text(st) .. ")"
  end
  return reworded(err, ("batch: rows %d-%d were not inserted %s: "):format(first, last, what),
                  { first_row = first, last_row = last, committed_rows = st.committed })
end

-- Is err a row's fault, so that the row can be set aside and the others
-- kept?  A bad value (SQLSTATE class 22), a constraint (23), a view's
-- check option (44), a trigger's RAISE (P0).  Anything else - a lost
-- connection, a cancel, a missing column, Ctrl-C - ends the load.
local ROW_FAULT = { ["22"] = true, ["23"] = true, ["44"] = true, P0 = true }
local function rejectable(err)
  local code = type(err) == "table" and err.sqlstate
  return type(code) == "string" and ROW_FAULT[code:sub(1, 2)] == true
end

-- Undo a failed statement under the savepoint, and end the savepoint (one
-- left open per failure would pile up subtransactions).
local function undo_savepoint(db)
  if db:status() == "inerror" then
    pcall(db.exec, db, "ROLLBACK TO SAVEPOINT sluice_batch")
  end
  pcall(db.exec, db, "RELEASE SAVEPOINT sluice_batch")
end

-- on_reject: the flush failed as a whole; send its rows one statement
-- each (each committed on its own, or under a savepoint in the caller's
-- transaction).  Returns the rows the server refused for their own fault,
-- as { values, err, row } (values as sent: strings, nil for NULL); the
-- caller hands them to on_reject once the buffer is reset, so that
-- on_reject may add() rows.  Raises for any other error.
retry_rows = function(b, st, db, n, first, out, sp)
  local rejected = {}
  for i = 0, n - 1 do
    local ok, r = pcall(function()
      if sp then db:exec("SAVEPOINT sluice_batch") end
      local got = b:_send(i, 1, st.want)
      if sp then db:exec("RELEASE SAVEPOINT sluice_batch") end
      return got
    end)
    if ok then
      if out then out[#out + 1] = r[1] end
    else
      if sp then undo_savepoint(db) end
      if not rejectable(r) then
        -- the rows before this one are done (inserted or rejected)
        local e = reworded(r, ("batch: rows %d-%d were not inserted (retrying a failed flush "
                               .. "row by row; rows up to %d are inserted or rejected): ")
                              :format(first + i, first + n - 1, first + i - 1),
                           { first_row = first + i, last_row = first + n - 1 })
        return rejected, e, first + i - 1
      end
      rejected[#rejected + 1] = { b:_values(i), r, first + i }
    end
  end
  return rejected
end

-- Hand the rejected rows to on_reject; an error it raises says which
-- rejected rows it did not get.
local function hand_over(st, rejected)
  for k, x in ipairs(rejected) do
    local ok, e = pcall(st.on_reject, x[1], x[2], x[3])
    if not ok then
      local missed = {}
      for j = k + 1, math.min(#rejected, k + 10) do missed[#missed + 1] = rejected[j][3] end
      if #rejected > k + 10 then missed[#missed + 1] = "..." end
      local prefix = ("batch: on_reject raised for row %d (the other rows of the flush are "
                      .. "inserted; %s): "):format(x[3], #missed == 0
                      and "no other rejected rows"
                      or "rejected rows not handed over: " .. table.concat(missed, ", "))
      error(type(e) == "string" and prefix .. e or e, 0)
    end
  end
end

-- The flush behind b:flush(), add() (when full or old) and poll().
local function flush(b)
  local st = debug.getfenv(b)
  if st.flushing then
    error("batch:flush: called again while flushing (from on_returning?)", 2)
  end
  local n = b.buffered
  if n == 0 then return 0, st.want and {} or nil end
  local db = st[1]
  local own = false
  if st.mode == "per_flush" then
    local status = db:status()
    if status ~= "idle" then
      -- nothing sent yet: the rows stay buffered
      error("batch:flush: transaction = \"per_flush\" commits each flush, "
            .. "but a transaction is open on the connection (status "
            .. status .. "); pass transaction = \"caller\" to flush inside it", 2)
    end
    own = n > b.rows_per_statement
  end
  local first, last = st.done + 1, st.done + n
  local per = b.rows_per_statement
  local out = st.want and {} or nil
  -- with on_reject inside the caller's transaction, a savepoint keeps a
  -- failed flush from aborting it (outside one, statements autocommit)
  local sp = st.on_reject and st.mode == "caller" and db:status() == "intrans"
  st.flushing = true
  local ok, err = pcall(function()
    if own then db:exec("BEGIN") end
    if sp then db:exec("SAVEPOINT sluice_batch") end
    for s = 0, n - 1, per do
      local r = b:_send(s, math.min(per, n - s), st.want)
      if out then
        for i = 1, #r do out[#out + 1] = r[i] end
      end
    end
    if sp then db:exec("RELEASE SAVEPOINT sluice_batch") end
    if own then db:commit() end
  end)
  local rejected, worded
  if not ok then
    if own then pcall(db.rollback, db) end
    if sp then undo_savepoint(db) end
    if st.on_reject and rejectable(err) then
      out = st.want and {} or nil
      local rok, rerr, upto
      rok, rejected, rerr, upto = pcall(retry_rows, b, st, db, n, first, out, sp)
      if not rok then
        rejected, rerr, upto = nil, rejected, nil -- retry_rows itself raised
      end
      ok, err, worded = rerr == nil, rerr, rerr ~= nil
      if worded and upto and st.mode == "per_flush" then st.committed = upto end
    end
  end
  st.flushing = false
  b:_reset()
  st.done = last
  if not ok then
    -- rows already refused still reach on_reject; the error that ended
    -- the retry is the one raised
    if rejected and #rejected > 0 then
      st.rejects = st.rejects + #rejected
      pcall(hand_over, st, rejected)
    end
    error(worded and err or flush_error(st, err, first, last, sp), 0)
  end
  if st.mode == "per_flush" then st.committed = last end
  if rejected and #rejected > 0 then
    st.rejects = st.rejects + #rejected
    hand_over(st, rejected)
  end
  if out and st.on_returning then st.on_returning(out) end
  return n, out
end

local methods = {}

--- db:batch(table, columns, opts) -> batch (see the top of this file).
function methods.batch(db, tbl, columns, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("batch: opts must be a table, got " .. type(opts), 2)
  end
  for k in pairs(opts) do
    if not BATCH_OPTS[k] then
      error("batch: unknown option '" .. tostring(k) .. "' (rows, bytes, "
            .. "max_age_ms, on_conflict, returning, on_returning, "
            .. "on_reject, transaction, json_encode)", 2)
    end
  end
  local qtable = db:quote_table(tbl)
  if not qtable then
    error("batch: the table must be \"name\", \"schema.name\" or {schema, name}", 2)
  end
  if type(columns) ~= "table" or #columns == 0 then
    error("batch: columns must be a non-empty list of column names", 2)
  end
  local quoted = {}
  for i, c in ipairs(columns) do
    if type(c) ~= "string" or c == "" then
      error(("batch: column %d must be a non-empty string"):format(i), 2)
    end
    quoted[i] = db:quote_ident(c)
  end
  if not positive(opts.rows) or (opts.rows and opts.rows % 1 ~= 0) then
    error("batch: rows must be a positive integer", 2)
  end
  if not positive(opts.bytes) then error("batch: bytes must be a positive number", 2) end
  if not positive(opts.max_age_ms) then
    error("batch: max_age_ms must be a positive number", 2)
  end
  local mode = opts.transaction or "per_flush"
  if mode ~= "per_flush" and mode ~= "caller" then
    error("batch: transaction must be \"per_flush\" or \"caller\", got "
          .. tostring(mode), 2)
  end
  if opts.on_returning ~= nil and type(opts.on_returning) ~= "function" then
    error("batch: on_returning must be a function", 2)
  end
  if opts.on_reject ~= nil and type(opts.on_reject) ~= "function" then
    error("batch: on_reject must be a function(values, err, row)", 2)
  end
  if opts.json_encode ~= nil and type(opts.json_encode) ~= "function" then
    error("batch: json_encode must be a function", 2)
  end
  local suffix = ""
  if opts.on_conflict ~= nil then
    if type(opts.on_conflict) ~= "string" then
      error("batch: on_conflict must be a string (the SQL after ON CONFLICT)", 2)
    end
    suffix = " ON CONFLICT " .. opts.on_conflict
  end
  local ret = opts.returning
  if ret ~= nil then
    if type(ret) == "string" then ret = { ret } end
    if type(ret) ~= "table" or #ret == 0 then
      error("batch: returning must be a column name or a list of them", 2)
    end
    local q = {}
    for i, c in ipairs(ret) do q[i] = c == "*" and "*" or db:quote_ident(c) end
    suffix = suffix .. " RETURNING " .. table.concat(q, ", ")
  end
  local prefix = ("INSERT INTO %s (%s) VALUES "):format(qtable, table.concat(quoted, ", "))
  local names = {}
  for i, c in ipairs(columns) do names[i] = c end
  local b = M.core.batch_new(db, prefix, suffix, names, {
    rows = opts.rows, bytes = opts.bytes, max_age_ms = opts.max_age_ms,
    json_encode = opts.json_encode or default_json_encode(),
    flush = flush,
  })
  local st = debug.getfenv(b)
  st.mode = mode
  st.want = ret ~= nil
  st.on_returning = opts.on_returning
  st.on_reject = opts.on_reject
  st.rejects = 0    -- rows handed to on_reject
  st.done = 0       -- rows flushed or dropped by a failed flush
  st.committed = 0  -- rows committed (per_flush)
  return b
end

local batch_methods = {}

function batch_methods.flush(b)
  if b.state ~= "open" then error("batch:flush: the batch is closed", 2) end
  return flush(b)
end

function batch_methods.close(b)
  if b.state ~= "open" then return b.rows_added end
  local st = debug.getfenv(b)
  local ok, err = pcall(flush, b)
  local total = b.rows_added
  local db = st[1]
  local name = b.statement
  b:_release()
  if not ok then error(err, 0) end
  if not db:is_closed() and db:status() ~= "inerror" and name ~= "" then
    db:exec("DEALLOCATE " .. name)
  end
  return total
end

function M.install(core)
  M.core = core
  for k, v in pairs(methods) do core.conn_methods[k] = v end
  for k, v in pairs(batch_methods) do core.batch_methods[k] = v end
end

return M
