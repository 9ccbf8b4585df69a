--- sluice.load{...}: every way to load rows into PostgreSQL behind one
-- call.  The same rows in give the same table contents out whatever the
-- strategy; only the speed (and the WAL written) differ.
--
--   local s = sluice.load{ db = db, table = "metrics", columns = {"host", "ts", "v"},
--                          rows = list_or_iterator, strategy = "copy_binary" }
--   print(s.rows, s.rows_per_s, s.wal_bytes)
--
-- Input (opts.rows):
--   an array of rows, or an iterator function returning one row per call
--   and nil at the end (e.g. g:rows(1, n, fn) from sluice.gen).  A row is
--   an array of exactly one value per column, in column order (a row
--   with more or fewer values is refused; a NULL in the first or last
--   column must be sluice.null there, as a nil would leave the row's
--   width unknown, and a row with no [1] is read by name), or a table
--   keyed by column name
--   (every key must be a column; missing columns are NULL), or an
--   object of a sluice.model: its validate and
--   before_save hooks run, once per row whatever the strategy.  Values
--   follow db:copy()'s rules (epoch seconds for timestamps, Lua tables for
--   arrays and json, ...), which db:batch and db:pipeline share.
--   opts.table defaults to the model's table, opts.columns to the model's
--   columns or else every non-generated column in table order.
--
-- Strategies (opts.strategy, default "copy_binary"):
--   rowwise_autocommit  one INSERT per row, each its own transaction
--   rowwise_tx          one INSERT per row in one transaction, or a
--                       COMMIT every opts.commit_every rows
--   batch               multi-row INSERT (db:batch): opts.batch_rows rows
--                       per statement (default 1000), opts.max_age_ms;
--                       each flush commits on its own
--   pipeline            prepared INSERT in libpq pipeline mode
--                       (opts.sync_every, default 1000)
--   copy_text, copy_csv, copy_binary   COPY FROM STDIN in that format
--   upsert              COPY into a temporary table, then INSERT ... ON
--                       CONFLICT (opts.key, default the primary key) DO
--                       UPDATE (db:upsert)
--   unlogged_staging    COPY into an UNLOGGED table, INSERT ... SELECT
--                       into the target, staging dropped
-- Modifiers:
--   drop_indexes = true       secondary indexes that back no constraint
--                             are dropped, the rows loaded, the indexes
--                             recreated from their saved definitions -
--                             also when the load fails (then the load's
--                             error is re-raised).  Vector indexes (HNSW,
--                             IVFFlat) too: their build is what the
--                             rebuild costs, so for it
--     maintenance_work_mem = "1GB" and max_parallel_maintenance_workers
--     = N are set in the session while the indexes are built (reset
--     after); an HNSW build whose graph does not fit in
--     maintenance_work_mem goes on much slower (the server says so in a
--     notice).  The summary's index_seconds is the rebuild's time and
--     indexes = { {name =, seconds =}, ... } each index's.
--   freeze = true             COPY FREEZE (copy_* only): the table must be
--                             empty; it is truncated in the COPY's
--                             transaction, as FREEZE requires
--   synchronous_commit = "off"  for the load's session(s), reset after
--   connections = N           rows dealt round-robin to N connections
--                             (db and N-1 more to the same target), each
--                             with its own COPY/batch/pipeline stream
--                             (copy_*, batch, pipeline); every stream runs
--                             in a transaction committed when all finished
--   jobs = N                  N worker processes, each with its own
--                             connection, load the input dealt in chunks
--                             (chunk_rows, chunk_bytes): parallel.lua;
--                             `sluice --jobs N` sets the default
-- transform = function(row) -> row: the per-row function, run where the
-- rows are read (in the workers with jobs = N); it must return a row.
-- before_commit = function(): called once every row is sent, before the
-- load's COMMIT (loads that commit once: copy_*, batch, pipeline);
-- raising there rolls the load back (a parallel load's workers wait
-- there for each other).
-- layouts = { column = "MM/DD/YYYY" }: date/time strings of those columns
-- read by a layout (sluice.text's tokens), as db:copy's layouts: the
-- COPY strategies (upsert and unlogged_staging too) hand it to db:copy;
-- batch, pipeline and rowwise_* convert the strings to ISO text with the
-- same C reader, refusing a bad one with the same words and SQLSTATE.
-- Other options: quiet = true (no progress at all), summary = false (no
-- final summary line), label (progress label), total (row count, for the
-- bar when rows is an iterator; a CSV reader's input gets a bar of the
-- bytes read of its file instead).  The load's own line is the only one:
-- the streams, batches and pipelines it opens run with quiet = true.
--
-- Reject mode (on_error = "reject"; the default "abort" stops at the
-- first bad row): rows refused for their own fault go to rejects = "path"
-- (sluice.rejects) and/or on_reject = function(values, err, row, src)
-- (src = { source = "file:line", record = text } for CSV input), every
-- other row is loaded, on every strategy (loadrejects.lua has the
-- bookkeeping).  max_rejects = N, max_reject_ratio = r stop the load;
-- reject_chunk = N rows per COPY chunk.  The summary counts read, loaded,
-- rejected (read = loaded + rejected).
--
-- Checkpointed loads (checkpoint = "name", checkpoint_rows,
-- checkpoint_bytes, retries = N): chunks committed with their ledger row
-- (checkpoint.lua); the same load run again goes on from the ledger.
-- rows may also be a reader of sluice.csv.open or a positionable source
-- (g:rows(...)): next/position/seek/identity.
--
-- What a failure leaves: copy_*, upsert, unlogged_staging, pipeline (in
-- one group) and rowwise_tx without commit_every load nothing, unless the
-- step that commits at the end was under way; batch, rowwise_autocommit,
-- pipeline and rowwise_tx with commit_every keep what they had committed.
-- With connections = N the N COMMITs at the end are not atomic: one can
-- fail after others committed.  Either way the error says what was
-- committed, from the server's answers (Ctrl-C and a lost connection
-- included: rows whose commit got no answer are "in doubt"), in its
-- message and in err.committed_rows, err.in_doubt_rows.
--
-- Returns a summary: { rows, bytes (the input values' size: string
-- lengths, 8 per number, 1 per boolean - the same for every strategy, so
-- MB/s compares like rows/s), seconds, rows_per_s, mb_per_s, wal_bytes
-- (pg_current_wal_insert_lsn() after minus before; nil when the server
-- does not allow it), index_seconds (recreating dropped indexes),
-- strategy, table }.
local progress = require "sluice.progress"
local conn = require "sluice.conn"
local list_iterator = require("sluice.values").list_iterator
local callable = require("sluice.values").callable
local outcome = require "sluice.outcome"
local sinks = require "sluice.sinks"
local batch = require "sluice.batch"
local loadrejects = require "sluice.loadrejects"
local checkpoint = require "sluice.checkpoint"
local core = require "sluice.core"
local csv = require "sluice.csv"
local citus = require "sluice.citus"

-- Whether rows is a positionable source other than a CSV reader (a
-- generator's g:rows(...)): next, position and seek methods.
local function is_source(rows)
  local t = type(rows)
  return (t == "table" or t == "userdata") and type(rows.next) == "function"
         and type(rows.position) == "function" and type(rows.seek) == "function"
end

-- The CSV reader behind the input: the reader itself, or the one behind
-- an iterator of sluice.csv.rows.
local function reader_of(rows)
  if csv.is_reader(rows) then return rows end
  return type(rows) == "function" and csv.reader_of(rows) or nil
end

local M = {}

M.STRATEGIES = {
  "rowwise_autocommit", "rowwise_tx", "batch", "pipeline",
  "copy_text", "copy_csv", "copy_binary", "upsert", "unlogged_staging",
}
local IS_STRATEGY = {}
for _, s in ipairs(M.STRATEGIES) do IS_STRATEGY[s] = true end

--- One line per strategy, for help() and error messages.
M.DESCRIPTIONS = {
  rowwise_autocommit = "one INSERT per row, each its own transaction",
  rowwise_tx = "one INSERT per row in one transaction (commit_every = N)",
  batch = "multi-row INSERT ... VALUES (batch_rows = 1000, max_age_ms)",
  pipeline = "prepared INSERT in libpq pipeline mode (sync_every = 1000)",
  copy_text = "COPY FROM STDIN, text format",
  copy_csv = "COPY FROM STDIN, CSV format",
  copy_binary = "COPY FROM STDIN, binary format",
  upsert = "COPY into a temp table, then INSERT ... ON CONFLICT (key) DO UPDATE",
  unlogged_staging = "COPY into an UNLOGGED table, then INSERT ... SELECT",
}

local OPTS = {
  db = true, table = true, columns = true, rows = true, strategy = true,
  commit_every = true, batch_rows = true, max_age_ms = true, sync_every = true,
  key = true, drop_indexes = true, freeze = true, synchronous_commit = true,
  connections = true, quiet = true, summary = true, label = true, total = true,
  on_reject = true, on_error = true, rejects = true, max_rejects = true,
  max_reject_ratio = true, reject_chunk = true,
  checkpoint = true, checkpoint_rows = true, checkpoint_bytes = true, retries = true,
  layouts = true, jobs = true, transform = true, chunk_rows = true, chunk_bytes = true,
  before_commit = true, nodes = true, shard = true,
  maintenance_work_mem = true, max_parallel_maintenance_workers = true,
}
-- the strategies a checkpointed load can run in its own transactions
local CHECKPOINTS = { copy_text = true, copy_csv = true, copy_binary = true, batch = true,
                      pipeline = true, upsert = true, unlogged_staging = true }
-- the strategies that can set rows aside (all of them)
local REJECTS = {}
for _, st in ipairs(M.STRATEGIES) do REJECTS[st] = true end
local OPT_NAMES = {}
for k in pairs(OPTS) do OPT_NAMES[#OPT_NAMES + 1] = k end
table.sort(OPT_NAMES)

local COPY_FORMAT = sinks.COPY_FORMAT
-- the strategies that refuse rows at the end, in a move from staging
local STAGING = { upsert = true, unlogged_staging = true }
local MULTI = { copy_text = true, copy_csv = true, copy_binary = true, batch = true, pipeline = true }

-- An error (object or string) as one line, for a message about another.
local function one_line(e)
  if type(e) == "table" then
    return (e.sqlstate and (e.sqlstate .. ": ") or "") .. tostring(e.message)
  end
  return tostring(e)
end

-- Misuse raises at the line that called sluice.load: `level` counts the
-- frames between fail() and that line (1 = sluice.load itself).
local function fail(msg, level)
  error("load: " .. msg, (level or 1) + 2)
end

-- The target's non-generated columns in table order, and its primary key.
local COLUMNS_SQL = [[
select a.attname::text as name
  from pg_attribute a
 where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped
   and a.attgenerated = ''
 order by a.attnum]]
local PK_SQL = [[
select a.attname::text as name
  from pg_index i
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
 where i.indrelid = to_regclass($1) and i.indisprimary
 order by array_position(i.indkey::int2[], a.attnum)]]

-- Secondary indexes that back no constraint (primary keys, unique and
-- exclusion constraints stay: dropping those would need the constraint
-- dropped too, and they guard the data being loaded).
local INDEXES_SQL = [[
select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
  from pg_index i
 where i.indrelid = to_regclass($1)
   and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
 order by 1]]

function M.table_columns(db, qtable)
  local out = {}
  for i, r in ipairs(db:query(COLUMNS_SQL, qtable)) do out[i] = r.name end
  return out
end

function M.primary_key(db, qtable)
  local out = {}
  for i, r in ipairs(db:query(PK_SQL, qtable)) do out[i] = r.name end
  return out
end

--- The definitions of the indexes drop_indexes would drop: a list of
-- {name = quoted name, def = CREATE INDEX ...}.
function M.secondary_indexes(db, qtable)
  return db:query(INDEXES_SQL, qtable)
end

local function model_of(item)
  local mt = getmetatable(item)
  local idx = mt and mt.__index
  if type(idx) == "table" and type(rawget(idx, "model")) == "function" then
    return idx.model()
  end
  return nil
end

-- The size of a value as counted in `bytes`.
local function vsize(v)
  local t = type(v)
  if t == "string" then return #v end
  if t == "number" or t == "cdata" then return 8 end
  if t == "boolean" then return 1 end
  if t == "table" then
    local s = 0
    for _, x in pairs(v) do s = s + vsize(x) end
    return s
  end
  return 0
end

-- The WAL insert position, or nil when the server refuses (a standby,
-- missing privilege): the summary then has no wal_bytes.
local function wal_lsn(db)
  local ok, r = pcall(db.query_one, db, "select pg_current_wal_insert_lsn()::text as lsn")
  return ok and r and r.lsn or nil
end

local function wal_since(db, lsn)
  if not lsn then return nil end
  local ok, r = pcall(db.query_one, db,
    "select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8 as d", lsn)
  return ok and r and r.d or nil
end

--------------------------------------------------------------- the load

-- The number of keys of a table.
local function count_keys(t)
  local k = 0
  for _ in pairs(t) do k = k + 1 end
  return k
end

local function column_list(columns)
  local shown = {}
  for j = 1, math.min(#columns, 20) do shown[j] = columns[j] end
  return table.concat(shown, ", ") .. (#columns > 20 and ", ..." or "")
end

-- "load: row N: expected K values (a, b, c), got M", the words of db:copy's
-- cp:rows: an array row holds exactly one value per column.
local function width_error(row_no, got, columns)
  return ("load: row %d: expected %d value%s (%s), got %d (a NULL in the first or last "
          .. "column must be sluice.null, not nil)"):format(row_no, #columns, #columns == 1 and "" or "s",
                                               column_list(columns), got)
end

-- A keyed row with a key that is not one of the columns.
local function unknown_key_error(item, row_no, is_column, columns)
  local bad = {}
  for k in pairs(item) do
    if not is_column[k] then bad[#bad + 1] = ("%q"):format(tostring(k)) end
  end
  table.sort(bad)
  return ("load: row %d: %s %s not among the columns (%s)"):format(
    row_no, table.concat(bad, ", "), #bad == 1 and "is" or "are", column_list(columns))
end

-- next_item with opts.transform applied to each item (the load's
-- per-row function: in a parallel load, the workers run it).
local function transformed(o, next_item)
  local fn = o.transform
  if fn == nil then return next_item end
  local n = 0
  return function()
    local item = next_item()
    if item == nil then return nil end
    n = n + 1
    local row = fn(item)
    if row == nil then
      error(("load: row %d: transform returned nil (it must return the row to load)"):format(n), 0)
    end
    return row
  end
end

-- An iterator over the input items (rows as given).
local function items(rows)
  if type(rows) == "function" then return rows end
  if csv.is_reader(rows) or is_source(rows) then
    return function() return (rows:next()) end
  end
  local it, why = list_iterator(rows)
  if not it then
    fail("rows must be a list with keys 1..n only (a nil inside it would end the load early), "
         .. "got " .. why, 2)
  end
  return it
end

-- Open N-1 more connections to db's target with db's search_path,
-- TimeZone and DateStyle (the table name and date/time text must mean the
-- same there) and its timeout.
local function more_connections(db, n)
  local target = conn.target(db)
  if target == nil then
    error("load: connections = N needs a connection made by sluice.connect "
          .. "(its target is not known)", 0)
  end
  local s = db:query_one("select current_setting('search_path') as sp, "
                         .. "current_setting('TimeZone') as tz, current_setting('DateStyle') as ds")
  local out = { db }
  for k = 2, n do
    local c = conn.connect(target, { timeout = db:timeout() })
    c:query("select set_config('search_path', $1, false), set_config('TimeZone', $2, false), "
            .. "set_config('DateStyle', $3, false)", s.sp, s.tz, s.ds)
    out[k] = c
  end
  return out
end

-- The options of reject mode, checked (misuse raises at the line that
-- called sluice.load).
local function check_reject_opts(o, strategy)
  local oe = o.on_error
  if oe ~= nil and oe ~= "abort" and oe ~= "reject" then
    fail("on_error must be \"abort\" or \"reject\", got " .. tostring(oe), 3)
  end
  if o.on_reject ~= nil and not callable(o.on_reject) then
    fail("on_reject must be a function(values, err, row), got " .. type(o.on_reject), 3)
  end
  if o.rejects ~= nil and (type(o.rejects) ~= "string" or o.rejects == "") then
    fail("rejects must be the path of the rejects file, got " .. type(o.rejects), 3)
  end
  local reject = oe == "reject" or (oe == nil and (o.on_reject ~= nil or o.rejects ~= nil))
  if oe == "abort" and (o.on_reject ~= nil or o.rejects ~= nil) then
    fail("on_error = \"abort\" cannot take on_reject or rejects (they set rows aside: "
         .. "on_error = \"reject\")", 3)
  end
  if reject and o.on_reject == nil and o.rejects == nil then
    fail("on_error = \"reject\" needs rejects = \"file.csv\" or on_reject = function(values, "
         .. "err, row) (a rejected row must go somewhere)", 3)
  end
  if reject and not REJECTS[strategy] then
    fail("on_error = \"reject\" does not work with strategy \"" .. strategy .. "\" yet", 3)
  end
  for _, k in ipairs { "max_rejects", "max_reject_ratio", "reject_chunk" } do
    if o[k] ~= nil and not reject then
      fail(k .. " needs on_error = \"reject\"", 3)
    end
  end
  local m = o.max_rejects
  if m ~= nil and (type(m) ~= "number" or m < 0 or m % 1 ~= 0) then
    fail("max_rejects must be an integer >= 0, got " .. tostring(m), 3)
  end
  local r = o.max_reject_ratio
  if r ~= nil and (type(r) ~= "number" or r < 0 or r > 1) then
    fail("max_reject_ratio must be a number from 0 to 1, got " .. tostring(r), 3)
  end
  local c = o.reject_chunk
  if c ~= nil and (type(c) ~= "number" or c < 1 or c > 1e7 or c % 1 ~= 0) then
    fail("reject_chunk must be an integer from 1 to 10000000 rows, got " .. tostring(c), 3)
  end
  return reject
end

-- The options of checkpointed loads, checked.
local function check_checkpoint_opts(o, strategy, nconn)
  local ck = o.checkpoint
  if ck == nil then
    for _, k in ipairs { "checkpoint_rows", "checkpoint_bytes", "retries" } do
      if o[k] ~= nil then fail(k .. " needs checkpoint = \"name\"", 3) end
    end
    return
  end
  if type(ck) ~= "string" or ck == "" then
    fail("checkpoint must be a name (a non-empty string), got " .. type(ck), 3)
  end
  if not CHECKPOINTS[strategy] then
    fail("checkpoint works with copy_text, copy_csv, copy_binary, batch, pipeline, upsert and "
         .. "unlogged_staging, not \"" .. strategy .. "\"", 3)
  end
  if nconn > 1 or o.freeze or o.drop_indexes then
    fail("checkpoint cannot be combined with connections = N, freeze or drop_indexes", 3)
  end
  for _, k in ipairs { "checkpoint_rows", "checkpoint_bytes" } do
    local v = o[k]
    if v ~= nil and (type(v) ~= "number" or v < 1 or v % 1 ~= 0) then
      fail(k .. " must be a positive integer, got " .. tostring(v), 3)
    end
  end
  local r = o.retries
  if r ~= nil and (type(r) ~= "number" or r < 0 or r % 1 ~= 0) then
    fail("retries must be an integer >= 0, got " .. tostring(r), 3)
  end
end

local function check_opts(o)
  if type(o) ~= "table" then fail("expected a table of options, got " .. type(o), 2) end
  for k in pairs(o) do
    if not OPTS[k] then
      fail("unknown option '" .. tostring(k) .. "' (" .. table.concat(OPT_NAMES, ", ") .. ")", 2)
    end
  end
  if type(o.db) ~= "userdata" then
    fail("db = a connection is required (sluice.connect())", 2)
  end
  local strategy = o.strategy or "copy_binary"
  if not IS_STRATEGY[strategy] then
    fail("unknown strategy '" .. tostring(strategy) .. "' (" .. table.concat(M.STRATEGIES, ", ") .. ")", 2)
  end
  if type(o.rows) ~= "table" and type(o.rows) ~= "function" and not csv.is_reader(o.rows) then
    fail("rows must be an array of rows, an iterator function, a reader of sluice.csv.open or "
         .. "a source (g:rows(...)), got " .. type(o.rows), 2)
  end
  local function posint(name)
    local v = o[name]
    if v ~= nil and (type(v) ~= "number" or v < 1 or v % 1 ~= 0) then
      fail(name .. " must be a positive integer, got " .. tostring(v), 3)
    end
  end
  posint("commit_every"); posint("batch_rows"); posint("sync_every"); posint("connections")
  posint("jobs"); posint("chunk_rows"); posint("chunk_bytes")
  if o.jobs ~= nil and o.jobs > 256 then fail("jobs must be from 1 to 256, got " .. o.jobs, 2) end
  if o.nodes ~= nil then
    if type(o.nodes) ~= "table" or #o.nodes == 0 then
      fail("nodes must be a list of connection strings (conninfo or URI)", 2)
    end
    for i, n in ipairs(o.nodes) do
      if type(n) ~= "string" or n == "" then
        fail(("nodes[%d] must be a connection string (conninfo or URI)"):format(i), 2)
      end
    end
  end
  if o.shard ~= nil then
    local k, K = type(o.shard) == "table" and o.shard[1], type(o.shard) == "table" and o.shard[2]
    if type(k) ~= "number" or type(K) ~= "number" or K < 1 or k < 1 or k > K
       or k % 1 ~= 0 or K % 1 ~= 0 then
      fail("shard must be { k, K }: this load's share k of K (1 <= k <= K), got "
           .. (type(o.shard) == "table" and ("{ %s, %s }"):format(tostring(k), tostring(K))
               or tostring(o.shard)), 2)
    end
  end
  if o.before_commit ~= nil and not callable(o.before_commit) then
    fail("before_commit must be a function, got " .. type(o.before_commit), 2)
  end
  if o.before_commit ~= nil and (o.checkpoint or strategy == "rowwise_autocommit"
                                 or strategy == "rowwise_tx") then
    fail("before_commit works with one COMMIT at the end: not with checkpoint or the rowwise "
         .. "strategies", 2)
  end
  if o.transform ~= nil and not callable(o.transform) then
    fail("transform must be a function(row) returning the row to load, got " .. type(o.transform), 2)
  end
  if o.commit_every and strategy ~= "rowwise_tx" then
    fail("commit_every applies to strategy \"rowwise_tx\" only", 2)
  end
  local reject = check_reject_opts(o, strategy)
  if o.freeze and not COPY_FORMAT[strategy] then
    fail("freeze = true needs a COPY strategy (copy_text, copy_csv, copy_binary), not \""
         .. strategy .. "\"", 2)
  end
  local nconn = o.connections or 1
  if nconn > 1 and not MULTI[strategy] then
    fail("connections = N works with copy_text, copy_csv, copy_binary, batch and pipeline, not \""
         .. strategy .. "\"", 2)
  end
  if nconn > 1 and o.freeze then
    fail("freeze = true cannot be combined with connections = N (COPY FREEZE needs the "
         .. "table truncated in the one transaction that loads it)", 2)
  end
  check_checkpoint_opts(o, strategy, nconn)
  local layouts = o.layouts
  if layouts ~= nil then
    if type(layouts) ~= "table" then
      fail("layouts must be a table { column = \"layout\" }, got " .. type(layouts), 2)
    end
    for k, v in pairs(layouts) do
      if type(k) ~= "string" or type(v) ~= "string" then
        fail("layouts must map column names to layout strings, got " .. type(k) .. " = "
             .. type(v), 2)
      end
      local ok, why = core.text_layout_check(v)
      if not ok then fail(("layouts: column \"%s\": %s"):format(k, why), 2) end
    end
  end
  for _, name in ipairs{ "maintenance_work_mem", "max_parallel_maintenance_workers" } do
    local v = o[name]
    if v ~= nil and ((type(v) ~= "string" and type(v) ~= "number") or not o.drop_indexes) then
      fail(name .. " must be a string or number, with drop_indexes = true (it is set while "
           .. "the dropped indexes are built)", 2)
    end
  end
  local sc = o.synchronous_commit
  if sc ~= nil and sc ~= "off" and sc ~= "on" and sc ~= "local" and sc ~= "remote_write"
     and sc ~= "remote_apply" then
    fail("synchronous_commit must be \"off\", \"local\", \"remote_write\", \"on\" or "
         .. "\"remote_apply\", got " .. tostring(sc), 2)
  end
  return strategy, nconn, reject
end

------------------------------------------------------- the load's steps
-- The steps of one load share a table, `run`:
--   o, db, strategy, nconn   the options (checked)
--   ctx                      what the sinks need (see sinks above)
--   columns, ncols, is_column
--   next_item, first         the input; its first item, already read
--   prog                     the progress display, or nil
--   reader                   the CSV reader behind the input, or nil
--   conns, opened            the connections, and a sink on each
--   n, bytes                 the rows put so far and their size

-- Refuse a connection with a transaction open (misuse: raises at the
-- line that called sluice.load).
local function check_idle(db)
  local status = db:status()
  if status ~= "idle" then
    fail("a transaction is open on the connection (status " .. status .. "); "
         .. "sluice.load runs its own transactions: commit or roll back first", 2)
  end
end

-- The run of a load: the table and its columns, from the options or the
-- first item's model, and what the sinks need.  Misuse raises at the
-- line that called sluice.load.
-- The kinds of the columns given a layout, checked (date, timestamp,
-- timestamptz or a domain over one of them); for the strategies that
-- send no COPY (batch, pipeline, rowwise_*), a converter per column that
-- reads a string by its layout into ISO text, with the same C reader the
-- COPY encoders use: { j, parse, name, type_name }.
local LAYOUT_KINDS_SQL = [[
select a.attname::text as name, format_type(a.atttypid, a.atttypmod) as type_name,
       (case when t.typtype = 'd' then t.typbasetype else t.oid end)::int8 as base_oid,
       coalesce(t.typcategory = 'A' or bt.typcategory = 'A', false) as is_array
  from pg_attribute a join pg_type t on t.oid = a.atttypid
  left join pg_type bt on bt.oid = t.typbasetype
 where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped]]
local LAYOUT_KINDS = { date = true, timestamp = true, timestamptz = true }
local COPY_SINKS = { copy_text = true, copy_csv = true, copy_binary = true, upsert = true,
                     unlogged_staging = true }

local function layout_converters(db, o, qtable, columns, strategy)
  local at = {}
  for j, c in ipairs(columns) do at[c] = j end
  local types = {}
  for _, r in ipairs(db:query(LAYOUT_KINDS_SQL, qtable)) do types[r.name] = r end
  local conv = {}
  local text = require "sluice.text"
  for name, layout in pairs(o.layouts) do
    if not at[name] then
      fail(("layouts: \"%s\" is not among the columns (%s)"):format(name, column_list(columns)), 3)
    end
    local r = types[name]
    local kind = r and not r.is_array and core.copy_kind(r.base_oid, false)
    if not LAYOUT_KINDS[kind] then
      fail(("layouts: column \"%s\" (%s) is not a date or timestamp"):format(
        name, r and r.type_name or "?"), 3)
    end
    local parse = kind == "date" and text.date_layout(layout, "iso")
                  or text.timestamp_layout(layout, "iso")
    conv[#conv + 1] = { at[name], parse, name, r.type_name, layout, kind == "date" }
  end
  table.sort(conv, function(a, b) return a[1] < b[1] end)
  if COPY_SINKS[strategy] or #conv == 0 then return nil end
  return conv
end

-- Row row_no's values with the layout columns' strings read (into vals,
-- reused): vals, or nil, the refusal's message and SQLSTATE, worded as
-- db:copy's encoders word it.
local function convert_row(conv, row, vals, ncols, row_no)
  for j = 1, ncols do vals[j] = row[j] end
  for k = 1, #conv do
    local c = conv[k]
    local v = vals[c[1]]
    if type(v) == "string" then
      local x, err = c[2](v)
      if x == nil then
        local what = c[6] and "a date" or "a timestamp"
        local range = err.sqlstate == "22008" and (" whose fields are in range (month 1-12, a day "
          .. "of that month, hour 0-24, minute 0-59, second 0-60)") or ""
        return nil, ("row %d, column \"%s\" (%s): expected %s in the layout %s%s, got string %s")
          :format(row_no, c[3], c[4], what, c[5], range, (("%q"):format(v):gsub("\\\n", "\\n"))),
          err.sqlstate
      end
      vals[c[1]] = x
    end
  end
  return vals
end

local function prepare(o, strategy, nconn, reject, next_item, resume)
  local db = o.db
  -- peek at the first item: a model gives the table and the columns
  local first = next_item()
  local model = type(first) == "table" and model_of(first) or nil
  local tbl = o.table or (model and model.table)
  if tbl == nil then fail("table = \"name\" is required", 2) end
  local qtable = db:quote_table(tbl)
  if not qtable then
    fail("table must be \"name\", \"schema.name\" or {schema, name}, got " .. tostring(tbl), 2)
  end
  local shown = type(tbl) == "table" and table.concat(tbl, ".") or tbl
  if not db:query_one("select to_regclass($1) is not null as ok", qtable).ok then
    fail(("table \"%s\" does not exist"):format(shown), 2)
  end
  local columns = o.columns or (model and model.column_names) or M.table_columns(db, qtable)
  if type(columns) ~= "table" or #columns == 0 then
    fail("columns must be a non-empty list of column names", 2)
  end
  local dist = o.freeze and citus.distribution(db, qtable)
  if dist then
    fail(("freeze = true has no effect on a Citus table (\"%s\" is a %s table): Citus does not "
          .. "pass FREEZE on to its shards, whose pages stay unfrozen; drop freeze"):format(shown,
          dist == "hash" and "distributed" or dist), 2)
  end
  if o.freeze and db:query_one("select exists(select 1 from " .. qtable .. ") as e").e then
    fail(("freeze = true needs an empty table (COPY FREEZE needs it truncated in the same "
          .. "transaction, and table \"%s\" has rows): truncate it first or drop freeze"):format(shown), 2)
  end
  local is_column = {}
  for _, c in ipairs(columns) do is_column[c] = true end
  local convert = o.layouts and layout_converters(db, o, qtable, columns, strategy)
  local ctx = { opts = o, tbl = tbl, qtable = qtable, shown = shown, columns = columns,
                multi = nconn > 1 or o.before_commit ~= nil, rejected = 0 }
  if reject then
    local window = not STAGING[strategy] and 2 * nconn
                   * math.max(o.reject_chunk or 100000, o.batch_rows or 1000, o.sync_every or 1000)
    ctx.rejects = loadrejects.new(o, nconn, columns, reader_of(o.rows), window or nil, resume)
  end
  local prog
  -- a CSV file: the line shows the bytes read of its size
  local reader = reader_of(o.rows)
  if not o.quiet then
    prog = progress.new {
      label = o.label or (shown .. " " .. strategy),
      total = o.total or (type(o.rows) == "table" and not is_source(o.rows) and #o.rows or nil),
      total_bytes = reader and reader.file_size,
      silent = o.summary == false,
    }
  end
  return {
    o = o, db = db, strategy = strategy, nconn = nconn, ctx = ctx,
    columns = columns, ncols = #columns, is_column = is_column,
    next_item = next_item, item = first, prog = prog, reader = reader,
    conns = { db }, opened = {}, n = 0, put = 0, bytes = 0,
    convert = convert, converted = convert and {},
  }
end

-- Open the other connections (connections = N) and a sink on each.
local function open_sinks(run)
  local sc = run.o.synchronous_commit
  if run.nconn > 1 then run.conns = more_connections(run.db, run.nconn) end
  if sc then
    for _, c in ipairs(run.conns) do
      c:query("select set_config('synchronous_commit', $1, false)", sc)
    end
  end
  local rej = run.ctx.rejects
  for k, c in ipairs(run.conns) do
    run.ctx.on_reject = rej and rej:handler(k, run.put)
    local was = c:status()
    local ok, s = pcall(sinks[run.strategy], c, run.ctx)
    if not ok then
      -- a sink that began a transaction and then failed to open (a
      -- column with no binary encoder, a missing table) leaves none open
      if was == "idle" and c:status() ~= "idle" then pcall(c.rollback, c) end
      if type(s) == "string" then
        -- said to the load's caller: no line of sluice's own code
        s = s:gsub("^[^\n]-%.lua:%d+: ", "")
        if s:sub(1, 6) ~= "load: " then s = "load: " .. s end
      end
      error(s, 0)
    end
    run.opened[k] = s
  end
end

-- The values of input item row_no in column order: the item itself when
-- it is an array, else vals filled from its keys (a model object's hooks
-- run first).  For an item that is no row: nil, "load: row N: ...", and
-- the SQLSTATE a reject gets for it (22P04: wrong width or keys, 23514: a
-- model's validation; none: not a table, which no mode accepts).
local function row_values(run, item, vals, row_no)
  if type(item) ~= "table" then
    return nil, ("load: row %d: expected a table of values, got %s"):format(row_no, type(item))
  end
  local ncols, columns = run.ncols, run.columns
  if rawget(item, 1) ~= nil then
    if rawget(item, ncols) == nil or rawget(item, ncols + 1) ~= nil then
      return nil, width_error(row_no, table.maxn(item), columns), "22P04"
    end
    return item
  end
  local m = model_of(item)
  if m then
    local valid, why = item:check()
    if not valid then return nil, ("load: row %d: %s"):format(row_no, tostring(why)), "23514" end
    if m.before_save then m.before_save(item) end
  end
  local found = 0
  for j = 1, ncols do
    local v = rawget(item, columns[j])
    vals[j] = v
    if v ~= nil then found = found + 1 end
  end
  -- a plain table's every key must name a column: a misspelt name
  -- would otherwise load as NULL
  if not m and count_keys(item) ~= found then
    return nil, unknown_key_error(item, row_no, run.is_column, columns), "22P04"
  end
  if found == 0 and not m then
    return nil, ("load: row %d: an empty table (give the values in column order or by "
                 .. "column name; all NULL is {sluice.null, ...})"):format(row_no), "22P04"
  end
  return vals
end

-- Put every item into the sinks, dealt round-robin to the connections.
local function put_rows(run, limit_rows, limit_bytes)
  local ncols, nconn, prog, next_item = run.ncols, run.nconn, run.prog, run.next_item
  local reader = run.reader
  local put = run.opened[1].put
  local handles = {}
  for k, s in ipairs(run.opened) do handles[k] = s.handle or s end
  local handle = handles[1]
  local vals = {}
  local n, bytes, k = run.n, run.bytes, run.put -- k: rows put (dealt round-robin)
  local stop_n, stop_bytes = n + (limit_rows or math.huge), bytes + (limit_bytes or math.huge)
  local item = run.item
  local rej = run.ctx.rejects
  if rej and run.opened[1].refuses then
    -- db:batch refuses a value it cannot send in add(), before the
    -- server sees the row: in reject mode that row is set aside too
    local add = put
    put = function(h, ...)
      local ok, err = pcall(add, h, ...)
      if ok then return end
      local msg, code = batch.refusal(err)
      if not msg then error(err, 0) end
      k = k - 1
      run.put = k
      rej:refuse({ ... }, "load: " .. msg, code, n)
    end
  end
  local convert, converted = run.convert, run.converted
  while item ~= nil do
    local row, why, code = row_values(run, item, vals, n + 1)
    if row and convert then
      row, why, code = convert_row(convert, row, converted, ncols, n + 1)
      if not row and not rej then
        -- refused as db:copy refuses it: the same words and SQLSTATE
        run.n = n -- the rows before it were put
        error(core.new_error { sqlstate = code, message = why }, 0)
      end
    end
    n = n + 1
    run.n = n
    if row then
      for j = 1, ncols do bytes = bytes + vsize(row[j]) end
      run.bytes = bytes
      k = k + 1
      run.put = k
      if rej then rej:note(n, k) end
      if nconn > 1 then handle = handles[(k - 1) % nconn + 1] end
      put(handle, unpack(row, 1, ncols))
    elseif rej and code then
      -- reject mode sets a row of the wrong shape aside (the sinks never
      -- see it); else it ends the load
      rej:note(n)
      rej:refuse(item, why, code, n)
    else
      run.n = n - 1 -- the rows before it were put
      error(why, 0)
    end
    if prog and n % 256 == 0 then prog:update(n, bytes, reader and reader.bytes_read) end
    if n >= stop_n or bytes >= stop_bytes then
      -- a checkpoint: where the input goes on, before reading on
      run.pos = run.position and run.position() or ""
      run.item = next_item()
      return run.item ~= nil
    end
    item = next_item()
  end
  run.item = nil
  return false
end

-- The rows each COPY sink's server counted must be the rows it was
-- given less those it set aside: anything else (a trigger or rule that
-- skipped or added rows) is an error, never silence.
local function check_counts(run, put0)
  local nconn, n = run.nconn, run.put - (put0 or 0)
  for k, s in ipairs(run.opened) do
    if s.loaded then
      local given = n >= k and math.floor((n - k) / nconn) + 1 or 0
      local expect = given - (s.rejected and s.rejected() or 0)
      if s.loaded ~= expect then
        -- what is committed then is what the server counted (or, in a
        -- transaction still open, nothing)
        local done = s.final == "committed" and s.loaded or 0
        error(core.new_error { count_mismatch = true, committed_rows = done, in_doubt_rows = 0,
          message = ("load: the server counted %d rows loaded where %d were sent%s (a trigger "
                     .. "or rule on table \"%s\" skipped or added rows)%s"):format(
               s.loaded, expect, nconn > 1 and (" on connection " .. k) or "", run.ctx.shown,
               done > 0 and ("; the %d rows it counted were committed"):format(done) or "") }, 0)
      end
    end
  end
end

-- Finish every sink, then commit those that commit at the end (several
-- connections), with Ctrl-C held: the server's answers say what they
-- did, and an interrupt is raised between them.
local function finish_sinks(run)
  local ok, err = outcome.held(function()
    for _, s in ipairs(run.opened) do
      s.finish()
      outcome.check()
    end
    check_counts(run) -- before the COMMITs that are still to come
    -- every row is sent: the caller may still say no (a parallel
    -- load's worker waits here for the others)
    if run.o.before_commit then run.o.before_commit() end
    for _, s in ipairs(run.opened) do
      if s.commit then
        s.commit()
        outcome.check()
      end
    end
  end)
  if not ok then error(err, 0) end
end


local function load_rows(run)
  open_sinks(run)
  put_rows(run)
  finish_sinks(run)
  if run.ctx.rejects then run.ctx.rejects:finish() end
end

-- What a load on one connection committed, once its sink is finished or
-- aborted: the claim for its error, rows committed, rows in doubt.
local function claim_one(run)
  local s, n = run.opened[1], run.n
  local rejected = run.ctx.rejects and run.ctx.rejects.count or 0
  local c, d = 0, 0
  if s.counts then
    c, d = s.counts()
  elseif s.final == "committed" then
    c = n
  elseif s.final == "doubt" then
    d = n
  end
  local t = {}
  if rejected > 0 and c > 0 then
    t[1] = ("%d rows were committed (rows handed to on_reject are not among them)"):format(c)
  elseif c > 0 then
    t[1] = ("rows 1-%d were committed"):format(c)
  else
    t[1] = d > 0 and "nothing was committed for certain" or "nothing was committed"
  end
  if d > 0 then
    t[#t + 1] = ("rows %d-%d may or may not have been committed (the connection was lost "
                 .. "before the server answered: check the table)"):format(c + 1, c + d)
  end
  if rejected == 0 and c + d > 0 and n > c + d then
    t[#t + 1] = ("nothing from row %d on was"):format(c + d + 1)
  end
  return table.concat(t, "; "), c, d
end

-- The same for several connections: connection k took rows k, k + N,
-- k + 2N, ...
local function claim_many(run)
  local n, nconn = run.put, run.nconn
  local function dealt(k) return n >= k and math.floor((n - k) / nconn) + 1 or 0 end
  local yes, maybe, c, d = {}, {}, 0, 0
  for k, s in ipairs(run.opened) do
    if s.final == "committed" then
      yes[#yes + 1] = k
      c = c + dealt(k)
    elseif s.final == "doubt" then
      maybe[#maybe + 1] = k
      d = d + dealt(k)
    end
  end
  if #yes == 0 and #maybe == 0 then
    return "nothing was committed (every connection's transaction was rolled back)", 0, 0
  end
  local t = {}
  if #yes > 0 then
    t[1] = ("connection %s of %d committed its rows (%d rows)"):format(table.concat(yes, ", "),
                                                                      nconn, c)
  end
  if #maybe > 0 then
    t[#t + 1] = ("connection %s may or may not have committed its rows (%d rows: the "
                 .. "connection was lost before the server answered COMMIT; check the table)")
                :format(table.concat(maybe, ", "), d)
  end
  t[#t + 1] = ("the other connections' rows were rolled back (connection k of %d took rows k, "
               .. "k + %d, k + %d, ...)"):format(nconn, nconn, 2 * nconn)
  return table.concat(t, "; "), c, d
end

-- The error a failed load raises: what stopped it, saying what the load
-- committed (err.committed_rows, err.in_doubt_rows).  An error raised
-- before the sinks were open stands as it is: nothing was sent.
local function load_error(run, err)
  if #run.opened < run.nconn then return err end
  if type(err) == "table" and err.count_mismatch then return err end
  -- a COPY's error names its line: the load's row (one connection)
  local ctx = type(err) == "table" and type(err.context) == "string" and err.context
  -- (text and binary: one line a row; CSV counts line feeds in values)
  local line = ctx and run.nconn == 1 and COPY_FORMAT[run.strategy] and not run.ctx.rejects
               and run.strategy ~= "copy_csv"
               and tonumber(("\n" .. ctx):match("\nCOPY [^\n]-, line (%d+)"))
  if line and err.row == nil then
    err = outcome.reworded(err, ("row %d: "):format(line), { row = line })
  end
  local text, c, d
  if run.nconn == 1 then
    text, c, d = claim_one(run)
  else
    text, c, d = claim_many(run)
  end
  if run.nconn == 1 and type(err) == "table" and err.committed_rows == c
     and err.in_doubt_rows == d and (run.opened[1].numbered or c == 0) then
    -- db:batch's, db:pipeline's or the COPY's error says it already,
    -- in the load's row numbers
    return err
  end
  return outcome.reworded(err, "load: " .. text .. ": ",
                          { committed_rows = c, in_doubt_rows = d })
end

-- After the rows: abort the sinks of a failed load, reset
-- synchronous_commit, close the other connections.
local function cleanup(run, ok)
  if not ok then
    for _, s in ipairs(run.opened) do s.abort() end
  end
  if run.ctx.rejects then run.ctx.rejects:close() end
  if run.o.synchronous_commit then
    for _, c in ipairs(run.conns) do
      if c:status() == "idle" then pcall(c.exec, c, "RESET synchronous_commit") end
    end
  end
  for k = 2, #run.conns do pcall(run.conns[k].close, run.conns[k]) end
end

-- Load the rows and clean up: true, or false and the error to raise.
local function attempt(run)
  local ok, err = pcall(load_rows, run)
  cleanup(run, ok)
  if not ok then err = load_error(run, err) end
  return ok, err
end

-- Index ix of saved could not be recreated (ierr): raise, with the
-- definitions to restore by hand and the load's own error, if any, at
-- the line that called sluice.load (`level` above this function).
local function recreate_failed(saved, ix, ierr, ok, err, level)
  local defs = {}
  for i, x in ipairs(saved) do defs[i] = x.def .. ";" end
  local msg = ("load: could not recreate index %s (%s)%s; the definitions to restore by hand:\n%s")
    :format(ix.name, one_line(ierr), ok and "" or (" after the load failed: " .. one_line(err)),
            table.concat(defs, "\n"))
  local sluice = require "sluice"
  if not sluice.is_error(ierr) then error(msg, level + 1) end
  -- keep the error object (a lost connection stays 08006)
  local e = {}
  for k, v in pairs(ierr) do e[k] = v end
  e.message = msg
  error(sluice.error(e), 0)
end

-- attempt(run) with the secondary indexes dropped, and recreated from
-- their saved definitions whatever happened (a failed load must not
-- leave the table without them).  Returns what attempt returned and the
-- seconds the recreation took.
local function attempt_without_indexes(run)
  local db = run.db
  -- the build's settings, for this session until the indexes are built
  -- (set first: a value the server refuses stops the load before it began)
  local reset = {}
  for _, name in ipairs{ "maintenance_work_mem", "max_parallel_maintenance_workers" } do
    local v = run.o[name]
    if v ~= nil then
      local sok, serr = pcall(db.query, db, "select set_config($1, $2, false)", name, tostring(v))
      if not sok then
        for _, n in ipairs(reset) do pcall(db.exec, db, "RESET " .. n) end
        error(serr, 0)
      end
      reset[#reset + 1] = name
    end
  end
  local saved = M.secondary_indexes(db, run.ctx.qtable)
  -- all or none dropped: a half-done drop is never left behind
  db:transaction(function()
    for _, ix in ipairs(saved) do db:exec("DROP INDEX " .. ix.name) end
  end)
  local ok, err = attempt(run)
  local ti = progress.now()
  if db:status() ~= "idle" then pcall(db.rollback, db) end
  run.indexes = {}
  for _, ix in ipairs(saved) do
    local t1 = progress.now()
    local iok, ierr = pcall(conn.unbounded, db, db.exec, db, ix.def)
    -- level 3: this function, M.load, the caller's line
    if not iok then recreate_failed(saved, ix, ierr, ok, err, 3) end
    run.indexes[#run.indexes + 1] = { name = ix.name, seconds = progress.now() - t1 }
  end
  for _, name in ipairs(reset) do pcall(db.exec, db, "RESET " .. name) end
  return ok, err, progress.now() - ti
end

local function summary(run, t0, wal0, index_seconds)
  local seconds = progress.now() - t0
  local n, bytes = run.n, run.bytes
  local rejected = run.ctx.rejects and run.ctx.rejects.count or 0
  return {
    strategy = run.strategy, table = run.ctx.shown,
    rows = n, read = n, loaded = n - rejected, rejected = rejected,
    bytes = bytes, seconds = seconds,
    rows_per_s = n / seconds, mb_per_s = bytes / seconds / 1e6,
    wal_bytes = wal_since(run.db, wal0), index_seconds = index_seconds,
    indexes = run.indexes,
  }
end

------------------------------------------------- checkpointed loads
-- checkpoint = "name": the rows go in chunks (checkpoint_rows rows or
-- checkpoint_bytes bytes of values, whichever comes first), each in its
-- own transaction together with its ledger row (checkpoint.lua); a run
-- goes on from the ledger.

local DEFAULT_CK_ROWS, DEFAULT_CK_BYTES = 100000, 64 * 1024 * 1024

-- The positionable input behind rows (a CSV reader, a source object with
-- next/position/seek/identity), or nil.
local function source_of(rows)
  return reader_of(rows) or (is_source(rows) and rows) or nil
end

-- The input's next_item, placed after the rows of the ledger's row `led`
-- (seek to its position, or read and skip rows_read rows), and a function
-- that tells the position to record.
local function positioned(rows, src, led)
  local next_item
  if src and type(src.next) == "function" then
    next_item = function() return (src:next()) end
  else
    next_item = items(rows)
  end
  local done = led and tonumber(led.rows_read) or 0
  if done > 0 then
    if src and led.position ~= "" then
      src:seek(led.position)
    else
      for _ = 1, done do
        if next_item() == nil then
          fail(("checkpoint \"%s\": the input ended after fewer rows than the ledger says were "
                .. "read (%d): it is not the input of the earlier run"):format(led.name, done), 4)
        end
      end
    end
  end
  local position = src and function() return src:position() end or nil
  return next_item, position
end

-- The chunks of a checkpointed load: each one's sinks, rows, ledger row
-- and COMMIT.  run.ck: { ledger, name, identity, rows, bytes, committed =
-- { read, loaded, rejected } through the last commit, chunk_from }.
local function load_chunks(run)
  local ck, db, rej = run.ck, run.db, run.ctx.rejects
  run.ctx.in_tx = true
  repeat
    ck.chunk_from = run.n + 1
    local put0 = run.put
    db:begin()
    run.opened = {}
    open_sinks(run)
    local more = put_rows(run, ck.rows, ck.bytes)
    local ok, err = outcome.held(function()
      for _, s in ipairs(run.opened) do
        s.finish()
        outcome.check()
      end
      if rej then rej:flush_pending() end
      check_counts(run, put0)
      local rejected = rej and rej.count or 0
      checkpoint.save(db, ck.ledger, ck.name, {
        target = run.ctx.shown, identity = ck.identity, strategy = run.strategy,
        position = more and run.pos or "", rows_read = run.n, rows_loaded = run.n - rejected,
        rows_rejected = rejected, rejects_size = rej and rej:file_size() or nil, done = not more,
      })
      ck.committing = true
      db:commit()
      ck.committing = false
      ck.committed = { read = run.n, loaded = run.n - rejected, rejected = rejected }
      ck.chunks = ck.chunks + 1
      ck.chunk_from = run.n + 1 -- nothing of the next chunk yet (Ctrl-C now: nothing to roll back)
      outcome.check()
    end)
    if not ok then error(err, 0) end
  until not more
  if rej then rej:finish() end
end

-- The error of a checkpointed load: what the ledger holds, and that a
-- run again goes on.
local function checkpoint_error(run, err)
  local ck = run.ck
  local c = ck.committed
  local t = {}
  if c.read > 0 then
    t[1] = ("rows 1-%d are committed and in the ledger (%d loaded, %d rejected)")
           :format(c.read, c.loaded, c.rejected)
  else
    t[1] = "nothing is committed"
  end
  if ck.committing then
    t[2] = ("the COMMIT of rows %d-%d got no answer (the ledger knows whether it went through)")
           :format(ck.chunk_from, run.n)
  elseif run.n >= ck.chunk_from then
    t[2] = ("rows %d-%d were rolled back"):format(ck.chunk_from, run.n)
  end
  t[#t + 1] = "run the load again to go on"
  return outcome.reworded(err, ("load: checkpoint \"%s\": %s: "):format(ck.name, table.concat(t, "; ")), {
    committed_rows = c.loaded, in_doubt_rows = ck.committing and (run.n - c.read) or 0,
    checkpoint = ck.name, retryable = checkpoint.retryable(err), cause_message = one_line(err),
    committed_read = c.read,
  })
end

-- An error before the chunks (reading the ledger, the input's position,
-- the table): nothing more was committed by this run.
local function early_error(o, err)
  if type(err) == "table" and err.checkpoint then return err end
  if type(err) ~= "table" or not err.sqlstate then return err end -- misuse, input
  return outcome.reworded(err, ("load: checkpoint \"%s\": nothing more was committed (what the "
    .. "ledger holds stands); run the load again to go on: "):format(o.checkpoint), {
    committed_rows = 0, in_doubt_rows = 0, checkpoint = o.checkpoint,
    retryable = checkpoint.retryable(err), cause_message = one_line(err),
  })
end

-- One run of a checkpointed load on db: returns its summary, or raises.
local function checkpoint_attempt(o, db, strategy, reject)
  local ledger, why = checkpoint.ledger(db)
  if not ledger then fail("checkpoint: " .. why, 3) end
  checkpoint.ensure(db, ledger)
  local src = source_of(o.rows)
  local identity = checkpoint.identity(o.rows, src)
  local led = checkpoint.get(db, ledger, o.checkpoint)
  if led and led.identity ~= identity then
    error(("load: checkpoint \"%s\" belongs to another input (%s); this load reads %s: "
           .. "sluice.reset_checkpoint(db, \"%s\") starts it over"):format(o.checkpoint,
           led.identity, identity, o.checkpoint), 0)
  end
  local t0 = progress.now()
  if led and led.done then
    local r = { strategy = strategy, table = led.target, rows = led.rows_read, read = led.rows_read,
                loaded = led.rows_loaded, rejected = led.rows_rejected, bytes = 0, seconds = 0,
                rows_per_s = 0, mb_per_s = 0, index_seconds = 0, checkpoint = o.checkpoint,
                resumed_from = led.rows_read, chunks = 0, already_done = true }
    if not o.quiet and o.summary ~= false then
      io.stderr:write(("load: checkpoint \"%s\" is complete (%d rows read, %d loaded, %d "
                       .. "rejected): nothing to do\n"):format(o.checkpoint, led.rows_read,
                       led.rows_loaded, led.rows_rejected))
    end
    return r
  end
  local next_item, position = positioned(o.rows, src, led)
  next_item = transformed(o, next_item)
  local base = led and led.rows_read or 0
  local resume = led and { rows = base, rejected = led.rows_rejected,
                           rejects_size = led.rejects_size ~= core.null and led.rejects_size or nil }
  local oo = setmetatable({ db = db }, { __index = o })
  local run = prepare(oo, strategy, 1, reject, next_item, resume)
  run.n, run.position = base, position
  run.ck = { ledger = ledger, name = o.checkpoint, identity = identity, chunks = 0,
             rows = o.checkpoint_rows or DEFAULT_CK_ROWS,
             bytes = o.checkpoint_bytes or DEFAULT_CK_BYTES,
             committed = { read = base, loaded = led and led.rows_loaded or 0,
                           rejected = led and led.rows_rejected or 0 } }
  local wal0 = wal_lsn(db)
  local ok, err = pcall(load_chunks, run)
  if not ok then
    for _, s in ipairs(run.opened) do s.abort() end
    if db:status() ~= "idle" then pcall(db.rollback, db) end
    if run.ctx.rejects then run.ctx.rejects:close() end
    if run.prog then run.prog:finish(run.n, run.bytes) end
    if type(err) == "table" and err.checkpoint then error(err, 0) end
    error(checkpoint_error(run, err), 0)
  end
  local result = summary(run, t0, wal0, 0)
  result.checkpoint, result.resumed_from, result.chunks = o.checkpoint, base, run.ck.chunks
  result.rows_per_s = (run.n - base) / result.seconds
  if run.prog then run.prog:finish(run.n, run.bytes, result.rejected) end
  return result
end

-- Whether the input can go back to a ledger position after a retry.
local function can_go_back(rows)
  local src = source_of(rows)
  return type(rows) == "table" and not src or (src ~= nil and type(src.seek) == "function")
end

-- A new connection to db's target, as db was (search_path, TimeZone, DateStyle,
-- silence bound); tried until `patience` seconds passed (a server that
-- restarts refuses connections for a while).
local function reconnect(db, patience, settings)
  local target = conn.target(db)
  if not target then return nil, "the connection's target is not known" end
  local deadline = progress.now() + patience
  local wait = 0.25
  local last
  repeat
    local ok, c = pcall(conn.connect, target, { timeout = db:timeout() })
    if ok then
      c:query("select set_config('search_path', $1, false), set_config('TimeZone', $2, false), "
              .. "set_config('DateStyle', $3, false)", settings.sp, settings.tz, settings.ds)
      return c
    end
    last = c
    if not core.sleep(wait) then return nil, "interrupted (Ctrl-C)" end
    wait = math.min(wait * 2, 4)
  until progress.now() > deadline
  return nil, last
end

-- A checkpointed load, with retries: after an error that retrying may
-- cure (checkpoint.retryable), connect again and go on from the ledger.
local function checkpointed(o, strategy, reject)
  local db, tries = o.db, 0
  local attempt_once = function(...)
    local ok, res = pcall(checkpoint_attempt, ...)
    if ok then return res end
    error(early_error(o, res), 0)
  end
  local settings = db:query_one("select current_setting('search_path') as sp, "
                                .. "current_setting('TimeZone') as tz, "
                                .. "current_setting('DateStyle') as ds")
  while true do
    local ok, res = pcall(attempt_once, o, db, strategy, reject)
    if ok then
      if db ~= o.db then res.db = db end
      return res
    end
    local err = res
    tries = tries + 1
    if not (o.retries and tries <= o.retries and type(err) == "table" and err.retryable) then
      error(err, 0)
    end
    if not can_go_back(o.rows) then
      error(outcome.reworded(err, "load: retries need an input that can go back to the ledger's "
        .. "position (a list, a sluice.csv reader, a generator's rows); not retried: ", {}), 0)
    end
    local backoff = math.min(0.5 * 2 ^ (tries - 1), 8)
    local upto = err.committed_read or 0
    io.stderr:write(("load: checkpoint \"%s\": %s; %s; retrying (%d of %d) in %.1f s\n")
                    :format(o.checkpoint, upto > 0 and ("rows 1-%d are committed"):format(upto)
                            or "nothing more is committed", one_line(err.cause_message or err.message),
                            tries, o.retries, backoff))
    if not core.sleep(backoff) then error(err, 0) end
    local c, why = reconnect(db, 60, settings)
    if not c then
      error(outcome.reworded(err, ("load: checkpoint \"%s\": could not connect again (%s): ")
                                  :format(o.checkpoint, one_line(why)), {}), 0)
    end
    pcall(db.close, db)
    db = c
  end
end

--- sluice.load(opts) -> summary (see the top of this file).
function M.load(o)
  local strategy, nconn, reject = check_opts(o)
  check_idle(o.db)
  local parallel = require "sluice.parallel"
  -- `--nodes` and `--shard` give the defaults of nodes and shard
  if o.nodes == nil or o.shard == nil then
    local dn, ds = parallel.default_nodes(), parallel.default_shard()
    if (o.nodes == nil and dn) or (o.shard == nil and ds) then
      local c = {}
      for k, v in pairs(o) do c[k] = v end
      c.nodes, c.shard = o.nodes or dn, o.shard or ds
      o = c
    end
  end
  local jobs = o.jobs or parallel.default_jobs()
  if o.nodes and jobs == 1 and o.jobs == nil then jobs = #o.nodes end
  if jobs > 1 or o.shard then
    -- a share of the input (shard) is cut as jobs = N cuts it, also for 1
    local s = parallel.load(o, jobs, strategy, o.jobs ~= nil or o.shard ~= nil or o.nodes ~= nil)
    if s then return s end -- else: --jobs's default, for an input it cannot cut
  end
  if o.checkpoint then return checkpointed(o, strategy, reject) end
  local run = prepare(o, strategy, nconn, reject, transformed(o, items(o.rows)))
  local t0 = progress.now()
  local wal0 = wal_lsn(o.db)
  local ok, err, index_seconds
  if o.drop_indexes then
    ok, err, index_seconds = attempt_without_indexes(run)
  else
    ok, err = attempt(run)
  end
  local rejected = run.ctx.rejects and run.ctx.rejects.count or nil
  if not ok then
    if run.prog then run.prog:finish(run.n, run.bytes) end
    error(err, 0)
  end
  local result = summary(run, t0, wal0, index_seconds or 0)
  if run.prog then run.prog:finish(run.n, run.bytes, rejected or 0) end
  return result
end

return M
