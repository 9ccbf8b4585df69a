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
--                nothing is committed here.  With no transaction open,
--                flushes are committed as with "per_flush".
--   json_encode  function(table) -> string for json/jsonb columns
--                (default lua-cjson's encode)
--   quiet        true: no progress at all.  Otherwise, on a terminal,
--                the live progress line (sluice.progress: after a second,
--                redrawn after a flush, never per row) and at close() the
--                summary "<table> batch: N rows, R rows/s, X MB/s, m:ss"
--                (N the rows added; with on_reject "read N = loaded L +
--                rejected R" after it; MB/s of encoded values) on stderr;
--                --quiet and a stderr that is no terminal: the summary only.
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
-- is committed; fields first_row, last_row, committed_rows (rows this
-- batch committed), in_doubt_rows.  Its rows are dropped from the buffer
-- (they are named in the error); the batch stays usable.  To keep them
-- instead, pass on_reject.
--
-- What is committed comes from the server's answers (outcome.lua), also
-- under Ctrl-C, which is held while a flush runs: a cancel request goes
-- out, and the statement's answer decides.  A flush that completed is
-- reported committed and the interrupt raised after it; one cancelled
-- (57014) or refused is not; when the connection is lost before the
-- answer to an autocommit statement or COMMIT came, its rows "may or may
-- not have been committed" (in_doubt_rows).
--
-- b:flush() -> rows flushed, returned rows (when returning)
-- b:poll()  -> the same when the age limit was reached, else 0
-- b:close() -> rows added over the batch's life; flushes the rest and
--              deallocates the prepared statement.  Garbage collection
--              frees the buffer but never flushes: call close().
-- Fields: b.buffered, b.rows_added, b.buffered_bytes,
-- b.rows_per_statement, b.statement, b.state ("open", "closed"),
-- b.rows_committed, b.rows_in_doubt (as the error fields).
local core = require "sluice.core"

local M = {}

-- The batch's functions for this module only (runtime/lib_batch.c):
-- send, values, reset, release, set_counts.
local private = core.types.batch.private

-- Each batch's state here (its db, options, counts): the batch keeps it
-- alive (core.batch_new's opts.state), this table finds it.  Weak keys
-- and values: it may hold the script's functions, which may refer to the
-- batch.
local states = setmetatable({}, { __mode = "kv" })

local BATCH_OPTS = {
  rows = true, bytes = true, max_age_ms = true, on_conflict = true,
  returning = true, on_returning = true, transaction = true,
  json_encode = true, on_reject = true, quiet = true,
}

local default_json_encode = require("sluice.values").default_json_encode
local outcome = require "sluice.outcome"
local citus = require "sluice.citus"
local progress = require "sluice.progress"
local reworded = outcome.reworded


local function positive(v)
  return v == nil or (type(v) == "number" and v > 0 and v < 2^31)
end

-- What earlier flushes did with rows 1..st.done, for messages.
local function earlier_text(st)
  if st.done == 0 then return "no earlier rows were committed" end
  if st.ok + st.rejects == st.done then
    if st.rejects > 0 then
      return ("rows 1-%d were done by earlier flushes (inserted, or handed to on_reject)")
             :format(st.done)
    end
    return ("rows 1-%d were committed by earlier flushes"):format(st.done)
  end
  local s = ("earlier flushes committed %d of rows 1-%d"):format(st.ok, st.done)
  if st.doubt > 0 then
    s = s .. (" and %d more may or may not have been committed"):format(st.doubt)
  end
  if st.in_caller > 0 then
    return s .. (" (%d went into a caller's transaction; earlier errors named any others)")
                :format(st.in_caller)
  end
  return s .. " (earlier errors named the others)"
end

-- The error of a flush that did not go through: the cause (the server's
-- error object, a lost connection's, or an interrupt) with the message
-- saying what became of its rows, first..last, and of the earlier ones.
-- o says, from the server's answers, how many of its rows (in order)
-- were committed (o.committed), went into the caller's open transaction
-- (o.in_tx), may or may not have been committed (o.doubt: no answer
-- came); the rest were not inserted.  o.why says why; o.earlier adds
-- what earlier flushes committed.  Counts this flush in st.ok/st.doubt.
local function flush_error(st, cause, first, last, o)
  local why = {}
  if o.doubt > 0 then
    why[#why + 1] = "the connection was lost before the server answered: check the table"
  end
  why[#why + 1] = o.why
  if o.earlier then why[#why + 1] = earlier_text(st) end
  st.ok = st.ok + o.committed
  st.doubt = st.doubt + o.doubt
  local parts, at = {}, first
  local function seg(k, text)
    if k > 0 then
      parts[#parts + 1] = ("rows %d-%d %s"):format(at, at + k - 1, text)
      at = at + k
    end
  end
  seg(o.committed, "were committed")
  seg(o.in_tx, "were inserted in the caller's transaction")
  seg(o.doubt, "may or may not have been committed")
  seg(last - at + 1, "were not inserted")
  -- a value the server could not read names its parameter: its row
  local p = type(cause) == "table" and type(cause.context) == "string"
            and tonumber(cause.context:match("parameter %$(%d+)"))
  local row = p and first + math.floor((p - 1) / st.ncols) or nil
  if row and row > last then row = nil end
  return reworded(cause, ("batch: %s (%s): %s"):format(table.concat(parts, ", "),
                                                       table.concat(why, "; "),
                                                       row and ("row %d: "):format(row) or ""), {
    first_row = first, last_row = last, row = row,
    committed_rows = st.ok, in_doubt_rows = st.doubt,
  })
end

-- Is err a row's fault, so that the row can be set aside and the others
-- kept?  A bad value (SQLSTATE class 22), a constraint (23), a view's
-- check option (44), a trigger's RAISE (P0), a program limit a value
-- passed (54000): core.row_fault, the one list every reject mode uses.
-- Anything else - a lost connection, a cancel, a missing column, Ctrl-C -
-- ends the load.
local function rejectable(err)
  local code = type(err) == "table" and err.sqlstate
  return core.row_fault(code)
end

-- Undo what was done under the savepoint, and end it (one left open per
-- failure would pile up subtransactions).  Returns whether it was undone.
local function undo_savepoint(db)
  local ok = pcall(db.exec, db, "ROLLBACK TO SAVEPOINT sluice_batch")
  pcall(db.exec, db, "RELEASE SAVEPOINT sluice_batch")
  return ok
end

local function interrupted(sig) return "interrupted (" .. sig .. ")" end

-- on_reject: the flush failed as a whole; send its rows one statement
-- each (each committed on its own with no transaction open - f.auto - or
-- under a savepoint in the caller's transaction - f.sp), interrupts held
-- (outcome.lua).  Returns the rows the server refused for their own
-- fault, as { values, err, row } (values as sent: strings, nil for NULL),
-- for on_reject once the buffer is reset, so that on_reject may add()
-- rows; and, when another error (or Ctrl-C) ended the retry, that error,
-- worded.  Counts the rows it commits in st.ok.
local function retry_rows(b, st, db, f)
  local rejected = {}
  local n, first, last = f.n, f.first, f.last
  local function stop(cause, from, doubt)
    return flush_error(st, cause, from, last, {
      committed = 0, in_tx = 0, doubt = doubt,
      why = from == first and "retrying a failed flush row by row"
        or ("retrying a failed flush row by row; rows %d-%d are inserted or rejected")
           :format(first, from - 1),
    })
  end
  for i = 0, n - 1 do
    local sp_open = false
    local ok, r = pcall(function()
      if f.sp then
        db:exec("SAVEPOINT sluice_batch")
        sp_open = true
      end
      local got = private.send(b, i, 1, st.want)
      if f.sp then db:exec("RELEASE SAVEPOINT sluice_batch") end
      return got
    end)
    local sig = outcome.take()
    if ok then
      if f.auto then st.ok = st.ok + 1 else st.in_caller = st.in_caller + 1 end
      if f.out then f.out[#f.out + 1] = r[1] end
    else
      if sp_open then undo_savepoint(db) end
      if not rejectable(r) then
        -- the rows before this one are done (inserted or rejected)
        return rejected, stop(r, first + i, f.auto and outcome.unanswered(r) and 1 or 0)
      end
      rejected[#rejected + 1] = { private.values(b, i), r, first + i }
    end
    if sig and i < n - 1 then
      return rejected, stop(interrupted(sig), first + i + 1, 0)
    elseif sig then
      return rejected, reworded(interrupted(sig), ("batch: rows %d-%d were inserted or "
        .. "rejected (retrying a failed flush row by row; the interrupt came after the last "
        .. "row): "):format(first, last), {
        first_row = first, last_row = last, committed_rows = st.ok, in_doubt_rows = st.doubt,
      })
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

-- The statements of one flush, interrupts held (outcome.lua), keeping
-- count of what the server answered: f.committed and f.in_tx count rows
-- as flush_error wants them; f.stage is set while the answer to a round
-- trip that commits (an autocommit statement, the COMMIT) is awaited.
-- Raises what stopped the flush.
local function send_flush(b, st, db, f)
  outcome.check() -- Ctrl-C before anything was sent
  f.sent = true
  if f.own then
    db:exec("BEGIN")
    outcome.check()
  end
  if f.sp then
    db:exec("SAVEPOINT sluice_batch")
    f.sp_open = true
  end
  local per = b.rows_per_statement
  for s = 0, f.n - 1, per do
    local k = math.min(per, f.n - s)
    if f.auto and not f.own then f.stage = k end
    local r = private.send(b, s, k, st.want)
    f.stage = nil
    if not f.auto then
      f.in_tx = f.in_tx + k
    elseif not f.own then
      f.committed = k
    end
    if f.out then
      for i = 1, #r do f.out[#f.out + 1] = r[i] end
    end
    outcome.check()
  end
  if f.sp then
    db:exec("RELEASE SAVEPOINT sluice_batch")
    f.sp_open = false
  end
  if f.own then
    f.stage = f.n
    db:commit()
    f.stage = nil
    f.committed = f.n
    outcome.check()
  end
end

-- The held part of a flush: send it and, when it fails, learn from the
-- server's answers what became of it (retrying row by row for
-- on_reject).  Returns nil when the flush went through, else the error
-- to raise; f.rejected lists rows for on_reject either way.  Counts what
-- it commits in st.ok and st.doubt.
local flush_failed

local function flush_held(b, st, db, f)
  local ok, err = pcall(send_flush, b, st, db, f)
  if ok then
    st.ok = st.ok + f.committed
    st.in_caller = st.in_caller + f.in_tx
    return nil
  end
  return flush_failed(b, st, db, f, err)
end

-- What stopped a flush (err: the server's error, a lost connection's, or
-- an interrupt): the error to raise, or nil when on_reject took every
-- bad row.
function flush_failed(b, st, db, f, err)
  local sig = outcome.interrupt_of(err)
  local failed = not sig -- a statement failed (or the connection)
  sig = sig or outcome.take()
  local lost = failed and outcome.unanswered(err)
  if f.stage and lost then f.doubt = f.stage end
  if f.own and f.committed == 0 then pcall(db.rollback, db) end
  local why
  if f.sp_open then
    if undo_savepoint(db) then
      why = "transaction = \"caller\": this flush was rolled back to a savepoint; the "
        .. "caller's transaction goes on"
    else
      why = "transaction = \"caller\": the connection was lost, and the caller's "
        .. "transaction with it"
    end
    f.in_tx = 0
  elseif not f.auto and failed then
    f.in_tx = 0
    why = lost and "transaction = \"caller\": the connection was lost, and the caller's "
                   .. "transaction with it"
      or "transaction = \"caller\": the caller's transaction is aborted; roll it back"
  elseif not f.auto then
    why = "transaction = \"caller\": nothing is committed here"
  else
    f.earlier = true
    if f.committed == f.n then
      why = "the interrupt came after the server had committed them"
    elseif not f.sent then
      why = "the interrupt came before this flush was sent"
    elseif f.doubt == 0 then
      why = "this flush was rolled back"
    end
  end
  if failed and sig and err.sqlstate ~= "57014" then
    why = (why and why .. "; " or "") .. interrupted(sig) .. " as well"
  end
  if failed and not sig and st.on_reject and rejectable(err) then
    f.out = st.want and {} or nil
    local rejected, rerr = retry_rows(b, st, db, f)
    f.rejected = rejected
    return rerr
  end
  f.why = why
  return flush_error(st, failed and err or interrupted(sig), f.first, f.last, f)
end

-- The flush behind b:flush(), add() (when full or old) and poll().
local function flush(b)
  local st = states[b]
  if st.flushing then
    error("batch:flush: called again while flushing (from on_returning?)", 2)
  end
  local n = b.buffered
  if n == 0 then return 0, st.want and {} or nil end
  local nbytes = b.buffered_bytes
  local db = st.db
  local status = db:status()
  if st.mode == "per_flush" and status ~= "idle" then
    -- nothing sent yet: the rows stay buffered
    error("batch:flush: transaction = \"per_flush\" commits each flush, "
          .. "but a transaction is open on the connection (status "
          .. status .. "); pass transaction = \"caller\" to flush inside it", 2)
  end
  -- with no transaction open, each flush is committed on its own: one
  -- statement autocommits, several run in BEGIN ... COMMIT (also with
  -- transaction = "caller", when the caller has no transaction for them)
  local auto = status == "idle"
  local f = {
    n = n, first = st.done + 1, last = st.done + n,
    auto = auto, own = auto and n > b.rows_per_statement,
    -- with on_reject inside the caller's transaction, a savepoint keeps a
    -- failed flush from aborting it
    sp = st.on_reject and status == "intrans",
    out = st.want and {} or nil,
    committed = 0, in_tx = 0, doubt = 0, inserted = 0,
  }
  st.flushing = true
  -- an interrupt that comes after the last round trip is taken before the
  -- hold ends: raised by the hook at once, it would skip the books below
  local sig, ok, err = outcome.held_take(flush_held, b, st, db, f)
  if sig and ok and not err and not f.rejected then
    -- the flush went through: say so in the interrupt's error
    st.ok = st.ok - f.committed
    st.in_caller = st.in_caller - f.in_tx
    err = flush_failed(b, st, db, f, outcome.interrupt(sig))
  end
  st.flushing = false
  private.set_counts(b, st.ok, st.doubt)
  private.reset(b)
  st.done = f.last
  st.bytes = st.bytes + nbytes
  local prog = st.prog
  if prog then
    -- per flush, never per row; a failure hides the line (its error
    -- follows)
    if ok and not err and not sig then prog:update(st.done, st.bytes) else prog:hide() end
  end
  if not ok then error(err, 0) end -- a bug in the above: say so plainly
  local rejected = f.rejected
  if rejected and #rejected > 0 then
    st.rejects = st.rejects + #rejected
    if err then
      -- rows already refused still reach on_reject; the error that ended
      -- the retry is the one raised
      pcall(hand_over, st, rejected)
    else
      hand_over(st, rejected)
    end
  end
  if err then error(err, 0) end
  if sig and ok and f.rejected then error(interrupted(sig), 0) end -- the books are right
  if f.out and st.on_returning then st.on_returning(f.out) end
  return n, f.out
end

-- db:batch's options, their names already checked (misuse raises at the
-- line that called db:batch): the transaction mode.
local function batch_options(opts)
  if not positive(opts.rows) or (opts.rows and opts.rows % 1 ~= 0) then
    error("batch: rows must be a positive integer", 3)
  end
  if not positive(opts.bytes) then error("batch: bytes must be a positive number", 3) end
  if not positive(opts.max_age_ms) then
    error("batch: max_age_ms must be a positive number", 3)
  end
  local mode = opts.transaction or "per_flush"
  if mode ~= "per_flush" and mode ~= "caller" then
    error("batch: transaction must be \"per_flush\" or \"caller\", got "
          .. tostring(mode), 3)
  end
  if opts.on_returning ~= nil and type(opts.on_returning) ~= "function" then
    error("batch: on_returning must be a function", 3)
  end
  if opts.on_reject ~= nil and not require("sluice.values").callable(opts.on_reject) then
    error("batch: on_reject must be a function(values, err, row)", 3)
  end
  if opts.json_encode ~= nil and type(opts.json_encode) ~= "function" then
    error("batch: json_encode must be a function", 3)
  end
  return mode
end

-- The statement's text after VALUES (...): ON CONFLICT and RETURNING,
-- checked as batch_options does.
local function insert_suffix(db, opts)
  local suffix = ""
  if opts.on_conflict ~= nil then
    if type(opts.on_conflict) ~= "string" then
      error("batch: on_conflict must be a string (the SQL after ON CONFLICT)", 3)
    end
    suffix = " ON CONFLICT " .. opts.on_conflict
  end
  local ret = opts.returning
  if ret ~= nil then
    if type(ret) == "string" then ret = { ret } end
    if type(ret) ~= "table" or #ret == 0 then
      error("batch: returning must be a column name or a list of them", 3)
    end
    local q = {}
    for i, c in ipairs(ret) do q[i] = c == "*" and "*" or db:quote_ident(c) end
    suffix = suffix .. " RETURNING " .. table.concat(q, ", ")
  end
  return suffix
end

--- db:batch(table, columns, opts) -> batch (see the top of this file).
function M.batch(db, tbl, columns, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("batch: opts must be a table, got " .. type(opts), 2)
  end
  for k in pairs(opts) do
    if not BATCH_OPTS[k] then
      error("batch: unknown option '" .. tostring(k) .. "' (rows, bytes, "
            .. "max_age_ms, on_conflict, returning, on_returning, "
            .. "on_reject, transaction, json_encode, quiet)", 2)
    end
  end
  local qtable, shown = db:quote_table(tbl)
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
  local mode = batch_options(opts)
  local suffix = insert_suffix(db, opts)
  local target = type(opts.on_conflict) == "string" and opts.on_conflict:match("^%s*(%b())")
  if target then
    -- a conflict target of plain column names: on a Citus table it must
    -- hold the distribution column (checked before any row is sent)
    local key = {}
    for name in target:sub(2, -2):gmatch("[^,]+") do
      key[#key + 1] = name:match("^%s*\"?(.-)\"?%s*$")
    end
    local why = citus.conflict_key_check(db, qtable, shown, key)
    if why then error("batch: " .. why, 2) end
  end
  local prefix = ("INSERT INTO %s (%s) VALUES "):format(qtable, table.concat(quoted, ", "))
  local names = {}
  for i, c in ipairs(columns) do names[i] = c end
  local st = {
    db = db,
    mode = mode,
    want = opts.returning ~= nil,
    on_returning = opts.on_returning,
    on_reject = opts.on_reject,
    ncols = #names, -- values per row (a parameter's number names its row)
    rejects = 0,    -- rows handed to on_reject
    done = 0,       -- rows flushed or dropped by a failed flush
    ok = 0,         -- rows this batch committed (b.rows_committed)
    doubt = 0,      -- rows that may or may not have been committed
    in_caller = 0,  -- rows flushed into a caller's transaction
    bytes = 0,      -- encoded values flushed (for progress)
    prog = progress.of(opts, shown .. " batch"),
  }
  local b = core.batch_new(db, prefix, suffix, names, {
    rows = opts.rows, bytes = opts.bytes, max_age_ms = opts.max_age_ms,
    json_encode = opts.json_encode or default_json_encode(),
    flush = flush, state = st,
  })
  states[b] = st
  return b
end

--- Whether err is b:add()'s (or pl:send()'s) refusal of a value: an
-- error object whose message is "batch:add: row N, column "x": expected
-- ..., got ..." ("pipeline:send: row N, parameter $k: ...") (the
-- caller's line in err.where, the SQLSTATE the server would give such a
-- value); the row was not buffered, and no other was touched.  Returns
-- the message and the SQLSTATE.
function M.refusal(err)
  if type(err) ~= "table" or not err.where or type(err.message) ~= "string"
     or not (err.message:find("^batch:add: row %d+, column ")
             or err.message:find("^pipeline:send: row %d+, parameter %$")) then
    return nil
  end
  return err.message, err.sqlstate
end

--- b:flush() (see the top of this file).
function M.flush(b)
  if b.state ~= "open" then error("batch:flush: the batch is closed", 2) end
  return flush(b)
end

--- b:close() (see the top of this file).
function M.close(b)
  if b.state ~= "open" then return b.rows_added end
  local st = states[b]
  local ok, err = pcall(flush, b)
  local total = b.rows_added
  local db = st.db
  local name = b.statement
  private.release(b)
  local prog = st.prog
  st.prog = nil
  if not ok then
    if prog then prog:hide() end
    error(err, 0)
  end
  if prog then prog:finish(total, st.bytes, st.on_reject and st.rejects or nil) end
  if not db:is_closed() and db:status() ~= "inerror" and name ~= "" then
    db:exec("DEALLOCATE " .. name)
  end
  return total
end

--- End a batch without sending what it still buffers (close() would
-- flush it: a failed load must not add rows after its failure).  Never
-- raises.
function M.drop(b)
  pcall(private.reset, b)
  pcall(M.close, b)
end

return M
