--- Staged upsert: db:upsert(table, columns, opts).
--
-- The pattern of Kafka Connect's JDBC sink and dbt's incremental models:
-- rows stream by COPY (db:copy, the fastest path) into a temporary
-- staging table, then one INSERT ... SELECT ... ON CONFLICT (key) DO
-- UPDATE moves them into the target - all in one transaction.
--
--   local up = db:upsert("metrics", {"host", "ts", "v"},
--                        {key = {"host", "ts"}})
--   for ... do up:row(host, ts, v) end
--   local changed = up:finish()       -- rows inserted or updated
--
-- opts.key     the conflict target: a column name or a list of them (a
--              unique index or constraint on exactly these must exist)
-- opts.update  columns to update on conflict (default: every column not
--              in key); an empty list means ON CONFLICT DO NOTHING
-- opts.format, opts.json_encode, opts.chunk_size, opts.layouts: passed to
--              db:copy
-- opts.quiet  true: no progress at all.  Otherwise, on a terminal, the
--              live progress line while rows are staged (sluice.progress:
--              after a second, redrawn at the COPY's flushes) and at
--              finish() the summary "<table> upsert: N rows, R rows/s, X
--              MB/s, m:ss" (N the rows staged, the time including the
--              move; in reject mode "read N = loaded L + rejected R" after
--              it) on stderr; --quiet and a stderr that is no terminal:
--              the summary only.
-- opts.on_reject  function(values, err, row): reject mode - rows refused
--              for their own fault (SQLSTATE classes 22, 23, 44, P0) are
--              handed over and every other row is upserted.  The staging
--              COPY runs in db:copy's reject mode (opts.reject_chunk rows
--              per chunk, default 100000): a bad value or a wrong value
--              count is set aside there, with the values as given.  The
--              move runs under a savepoint; when the server refuses it
--              (CHECK, NOT NULL, a foreign key, a trigger, a unique index
--              other than the key ...) it is settled by ranges of staged
--              rows (sluice/settle.lua): each row it refuses is set aside
--              with its staged values as text (nil for NULL) and the
--              server's error.  With duplicate keys only the last staged
--              row of a key is moved (as always), so it alone can be
--              refused: the key is then left as the table had it, and the
--              earlier rows of that key are neither moved nor handed over.
--              `row` is the input row number (1-based, every value list
--              given to up:row / up:rows counts).  on_reject is called
--              once the upsert is committed (or released into the
--              caller's transaction), in row order, and may use the
--              connection; if it raises, the others are still handed
--              over and then an error says so (the upsert stays done).
--              A clean upsert costs one savepoint more; a failing move
--              about 2 * log2(staged rows) statements per refused row.
--
-- Duplicate keys among the staged rows: the last one staged wins.  The
-- staging table has an identity column numbering rows in COPY order, and
-- the move keeps one row per key with DISTINCT ON (key) ORDER BY key,
-- that number DESC (PostgreSQL itself would refuse a statement that
-- updates the same row twice).  Rows whose key holds a NULL never
-- conflict, so every one of them is inserted (unless the unique index is
-- NULLS NOT DISTINCT: then a NULL is a key like any other).
--
-- Transactions: with no transaction open, db:upsert begins one and
-- finish() commits it; inside the caller's transaction it uses a
-- savepoint instead, and the caller commits.  Any error (a bad row, a
-- constraint, the move, a value up:row refuses) rolls back everything
-- the upsert did and is re-raised; the connection is usable at once.
-- The staging table is dropped at the end (ON COMMIT DROP as well).
-- While the upsert is open its COPY holds the connection.
--
-- up:row(v1, ..., vN), up:rows(list)  as the COPY stream's
-- up:finish() -> rows inserted or updated, rows staged (loaded into the
--   staging table); in reject mode also rows rejected (up.rows_rejected:
--   the COPY's and the move's).  In reject mode an error that is no row's
--   fault says "upsert: nothing was committed", with committed_rows = 0.
-- up:abort()  -> rolls everything back
-- up.state   "open", "finished", "aborted" or "failed"
-- An upsert dropped without finish() or abort() aborts its COPY when
-- collected, but its transaction stays open until the script rolls it
-- back (garbage collection cannot run SQL safely): always end it.
local outcome = require "sluice.outcome"
local citus = require "sluice.citus"
local settle = require "sluice.settle"
local progress = require "sluice.progress"
local callable = require("sluice.values").callable
local copy = require "sluice.copy"

local M = {}

local seq = 0

local function list_of(v, what)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then return nil, what .. " must be a column name or a list of them" end
  for i, c in ipairs(v) do
    if type(c) ~= "string" or c == "" then
      return nil, ("%s[%d] must be a non-empty string"):format(what, i)
    end
  end
  return v
end

-- Is there a unique index on exactly the key columns that treats NULLs
-- as equal (PostgreSQL 15's NULLS NOT DISTINCT)?  The flag is read
-- through to_jsonb so that servers before 15, which lack the column,
-- answer false.
local UNIQUE_SQL = [[
select i.indexrelid::int8 as ix, a.attname::text as col, i.indnkeyatts::int as nkeys,
       coalesce((to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false) as nnd
  from pg_index i
  join pg_attribute a on a.attrelid = i.indrelid
   and a.attnum = any(i.indkey[0:i.indnkeyatts - 1])
 where i.indrelid = to_regclass($1) and i.indisunique]]

local function nulls_not_distinct(db, qtable, key)
  local want, cols, nkeys = {}, {}, {}
  for _, k in ipairs(key) do want[k] = true end
  for _, r in ipairs(db:query(UNIQUE_SQL, qtable)) do
    if r.nnd then
      cols[r.ix] = (cols[r.ix] or 0) + (want[r.col] and 1 or 0)
      nkeys[r.ix] = r.nkeys
    end
  end
  for ix, n in pairs(cols) do
    if n == #key and nkeys[ix] == #key then return true end
  end
  return false
end

-- The statement that moves the staged rows into the target: one row per
-- key, the last staged winning.  A row whose key holds a NULL never
-- conflicts with another (unless the unique index says NULLS NOT
-- DISTINCT), so those rows all go in as they are: DISTINCT ON would
-- merge them into one.  Returns function(where) -> the statement, where
-- (an SQL condition on the staging table, or nil) restricting every read
-- of the staging table (sluice.settle's contract); and the DELETE that
-- drops the staged rows a later row of their key supersedes (reject
-- mode settles ranges with it).
local function move_sql(db, qtable, staging, clist, qkey, key, sets)
  local klist = table.concat(qkey, ", ")
  local action = #sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING"
  local last = ("SELECT DISTINCT ON (%s) %s, sluice_seq FROM %s %%s ORDER BY %s, sluice_seq DESC")
    :format(klist, clist, staging, klist)
  local nnd = nulls_not_distinct(db, qtable, key)
  local notnull, anynull = {}, {}
  for i, k in ipairs(qkey) do
    notnull[i] = k .. " IS NOT NULL"
    anynull[i] = k .. " IS NULL"
  end
  notnull = table.concat(notnull, " AND ")
  anynull = table.concat(anynull, " OR ")
  local superseded = ("DELETE FROM %s WHERE sluice_seq IN (SELECT sluice_seq FROM (SELECT "
    .. "sluice_seq, row_number() OVER (PARTITION BY %s ORDER BY sluice_seq DESC) AS n FROM %s%s) d "
    .. "WHERE n > 1)"):format(staging, klist, staging, nnd and "" or (" WHERE " .. notnull))
  return function(where)
    local src
    if nnd then
      src = last:format(where and ("WHERE " .. where) or "")
    else
      local also = where and (" AND (" .. where .. ")") or ""
      src = ("(%s) UNION ALL SELECT %s, sluice_seq FROM %s WHERE (%s)%s")
        :format(last:format("WHERE " .. notnull .. also), clist, staging, anynull, also)
    end
    return ("INSERT INTO %s (%s) SELECT %s FROM (%s) s ORDER BY sluice_seq ON CONFLICT (%s) DO %s")
      :format(qtable, clist, clist, src, klist, action)
  end, superseded
end

-- An upsert object is { state = "open" | "finished" | "aborted" |
-- "failed" } with the methods of U.  What it works with (db, cp - its
-- COPY stream -, row_fn, staging, move_sql, savepoint) is kept here, in
-- `inner`, out of the script's reach; weak keys: it goes with its
-- upsert, and refers to nothing that refers back to it.
local U = {}
local UPSERT_MT = { __index = U }
local inner = setmetatable({}, { __mode = "k" })

-- Undo everything the upsert did (never raises).
local function undo(u)
  u.state = "aborted"
  local x = inner[u]
  if x.prog then x.prog:hide() end
  if x.cp.state == "open" then pcall(x.cp.abort, x.cp) end
  local db = x.db
  if x.savepoint then
    pcall(db.rollback_to, db, x.savepoint)
    pcall(db.release, db, x.savepoint)
  else
    pcall(db.rollback, db)
  end
end

-- A refused value or a failed send ends the COPY and leaves the
-- upsert's transaction aborted: roll it back before raising, so the
-- connection is usable at once (pcall compiles, the row loop stays in
-- its trace).
local function failed(u, fname, err)
  undo(u)
  if type(err) == "table" and inner[u].on_reject and not outcome.interrupt_of(err) then
    error(outcome.reworded(err, "upsert: nothing was committed (everything the upsert did was "
      .. "rolled back): ", { committed_rows = 0, in_doubt_rows = 0 }), 0)
  end
  if type(err) == "string" then
    -- the stream's message names the row and column; say what it undid,
    -- at the line that called up:row (level 3: failed, U.row, caller)
    error(("%s (upsert:%s: everything the upsert did was rolled back)"):format(err, fname), 3)
  end
  error(err, 0)
end

local function check_open(u, fname)
  if u.state ~= "open" then error(("upsert:%s: the upsert is %s"):format(fname, u.state), 3) end
end

function U.row(u, ...)
  if u.state ~= "open" then check_open(u, "row") end
  local x = inner[u]
  local ok, err = pcall(x.row_fn, x.cp, ...)
  if not ok then failed(u, "row", err) end
end

function U.rows(u, list)
  check_open(u, "rows")
  local cp = inner[u].cp
  local ok, err = pcall(cp.rows, cp, list)
  if not ok then failed(u, "rows", err) end
  return err
end

-- The input rows the staging COPY refused (sorted: it hands them over in
-- row order).
local function copy_rejected_rows(x)
  local rows = {}
  for i, r in ipairs(x.copy_rej) do rows[i] = r[3] end
  return rows
end

-- The move: one statement, or in reject mode settled by ranges
-- (sluice.settle) -> rows inserted or updated.
local function move(x)
  if not x.on_reject then return (x.db:exec(x.move_sql(nil))) end
  local changed, rejected = settle.move(x.db, {
    staging = x.staging, sql = x.move_sql, columns = x.qcols,
    skipped = copy_rejected_rows(x),
    prepare = function() x.db:exec(x.superseded_sql) end,
  })
  x.move_rej = rejected
  return changed
end

-- Reject mode, once the upsert is done: hand every rejection over in row
-- order (the COPY's and the move's merged); an error on_reject raises is
-- raised once all are handed over.
local function hand_over(u, x, changed, staged)
  local err, row = settle.hand_over(x.on_reject, x.copy_rej, x.move_rej or {})
  if err == nil then return end
  local what = x.savepoint and "is done in the caller's transaction" or "is committed"
  local prefix = ("upsert: on_reject raised for row %d (the upsert %s: %d rows staged, %d "
    .. "inserted or updated, %d rejected; every other rejected row was handed over): ")
    :format(row, what, staged, changed, u.rows_rejected)
  if type(err) == "table" and not outcome.interrupt_of(err) then
    error(outcome.reworded(err, prefix, { row = row }), 0)
  end
  error(prefix .. tostring(err), 0)
end

-- finish() runs with Ctrl-C held (outcome.lua), so that the server's
-- answer to COMMIT, not the moment of an interrupt, says what happened.
function U.finish(u)
  if u.state ~= "open" then error("upsert:finish: the upsert is " .. u.state, 2) end
  local x = inner[u]
  local db = x.db
  local committing, staged_n = false, nil
  local sig, ok, changed, staged = outcome.held_take(function()
    staged_n = x.cp:finish()
    outcome.check()
    local affected = move(x)
    outcome.check()
    db:exec("DROP TABLE " .. x.staging)
    committing = not x.savepoint
    if x.savepoint then db:release(x.savepoint) else db:commit() end
    committing = false
    return affected, staged_n
  end)
  if not ok then
    if committing and outcome.unanswered(changed) then
      -- COMMIT went out and no answer came: nobody can tell
      u.state = "failed"
      error(outcome.reworded(changed, "upsert: the connection was lost before the server "
        .. "answered COMMIT: the upsert may or may not have been committed (check the "
        .. "table): ", { committed_rows = 0, in_doubt_rows = staged_n or 0 }), 0)
    end
    undo(u)
    if x.on_reject and type(changed) == "table" and not outcome.interrupt_of(changed) then
      error(outcome.reworded(changed, "upsert: nothing was committed (everything the upsert "
        .. "did was rolled back): ", { committed_rows = 0, in_doubt_rows = 0 }), 0)
    end
    error(changed, 0)
  end
  u.state = "finished"
  if x.on_reject then
    u.rows_rejected = #x.copy_rej + #(x.move_rej or {})
  end
  if x.prog and not sig then
    if x.on_reject then
      x.prog:finish(staged + #x.copy_rej, x.cp.bytes_sent, u.rows_rejected)
    else
      x.prog:finish(staged, x.cp.bytes_sent)
    end
  end
  if sig then
    local what = x.savepoint and "done in the caller's transaction (nothing is committed here"
      or "committed ("
    error(outcome.reworded("interrupted (" .. sig .. ")",
      ("upsert: %s%s%d staged rows, %d inserted or updated) before the interrupt was noticed: ")
        :format(what, x.savepoint and "; " or "", staged, changed),
      { committed_rows = x.savepoint and 0 or staged, in_doubt_rows = 0 }), 0)
  end
  if x.on_reject then
    hand_over(u, x, changed, staged)
    return changed, staged, u.rows_rejected
  end
  return changed, staged
end

function U.abort(u)
  if u.state ~= "open" then return false end
  undo(u)
  return true
end

-- opts.key and opts.update for columns cols, checked (misuse raises at
-- the line that called db:upsert); update defaults to the columns not
-- in key.
local function key_and_update(cols, opts)
  local key, err = list_of(opts.key, "key")
  if not key or #key == 0 then error("upsert: " .. (err or "opts.key must not be empty"), 3) end
  local in_cols = {}
  for _, c in ipairs(cols) do in_cols[c] = true end
  local is_key = {}
  for _, k in ipairs(key) do
    if not in_cols[k] then
      error(("upsert: key column \"%s\" is not among the columns"):format(k), 3)
    end
    is_key[k] = true
  end
  local update = opts.update
  if update == nil then
    update = {}
    for _, c in ipairs(cols) do
      if not is_key[c] then update[#update + 1] = c end
    end
  else
    update, err = list_of(update, "update")
    if not update then error("upsert: " .. err, 3) end
  end
  return key, update
end

-- The options db:copy takes (the others are refused, as key_and_update
-- does).
local function copy_options(opts)
  local copy_opts = {}
  for k, v in pairs(opts) do
    if k == "format" or k == "json_encode" or k == "chunk_size" or k == "reject_chunk"
       or k == "layouts" then
      copy_opts[k] = v
    elseif k ~= "key" and k ~= "update" and k ~= "on_reject" and k ~= "quiet" then
      error("upsert: unknown option '" .. tostring(k)
            .. "' (key, update, format, json_encode, chunk_size, on_reject, reject_chunk, quiet, "
            .. "layouts)", 3)
    end
  end
  if opts.on_reject ~= nil and not callable(opts.on_reject) then
    error("upsert: on_reject must be a function(values, err, row), got "
          .. type(opts.on_reject), 3)
  end
  if opts.reject_chunk ~= nil and opts.on_reject == nil then
    error("upsert: reject_chunk needs on_reject", 3)
  end
  return copy_opts
end

--- db:upsert(table, columns, opts) -> upsert (see the top of this file).
function M.upsert(db, tbl, columns, opts)
  if type(opts) ~= "table" then error("upsert: opts with a key are required", 2) end
  local qtable, shown = db:quote_table(tbl)
  if not qtable then
    error("upsert: the table must be \"name\", \"schema.name\" or {schema, name}", 2)
  end
  local cols, err = list_of(columns, "columns")
  if not cols or #cols == 0 then error("upsert: " .. (err or "columns must not be empty"), 2) end
  local key, update = key_and_update(cols, opts)
  local copy_opts = copy_options(opts)
  local not_citus_key = #key > 0 and citus.conflict_key_check(db, qtable, shown, key)
  if not_citus_key then error("upsert: " .. not_citus_key, 2) end

  local q = function(c) return db:quote_ident(c) end
  local qcols, qkey, sets = {}, {}, {}
  for i, c in ipairs(cols) do qcols[i] = q(c) end
  for i, c in ipairs(key) do qkey[i] = q(c) end
  for i, c in ipairs(update) do sets[i] = q(c) .. " = excluded." .. q(c) end
  local clist = table.concat(qcols, ", ")

  local status = db:status()
  if status == "inerror" then
    error("upsert: the transaction on this connection has failed; roll it back first", 2)
  end
  seq = seq + 1
  local name = "sluice_upsert_" .. seq
  local staging = "pg_temp." .. q(name)
  local u = setmetatable({ state = "open" }, UPSERT_MT)
  -- the staging COPY ticks the upsert's progress; finish() writes the
  -- summary, once the rows are moved
  local prog = progress.of(opts, shown .. " upsert")
  copy_opts.quiet = prog == nil or nil
  local x = { db = db, staging = staging, on_reject = opts.on_reject, qcols = qcols, prog = prog }
  inner[u] = x
  if status == "idle" then
    db:begin()
  else
    x.savepoint = name
    db:savepoint(name)
  end
  local ok, e = pcall(function()
    db:exec(("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA")
      :format(q(name), clist, qtable))
    db:exec(("ALTER TABLE %s ADD COLUMN sluice_seq bigint GENERATED ALWAYS AS IDENTITY")
      :format(staging))
    x.move_sql, x.superseded_sql = move_sql(db, qtable, staging, clist, qkey, key, sets)
    if x.on_reject then
      -- the COPY's rejections wait (in row order) until the upsert is done
      local rej = {}
      x.copy_rej = rej
      copy_opts.on_reject = function(values, why, row) rej[#rej + 1] = { values, why, row } end
    end
    x.cp = copy.copy(db, { "pg_temp", name }, cols, copy_opts, prog)
    x.row_fn = x.cp.row
  end)
  if not ok then
    x.cp = x.cp or { state = "none" }
    undo(u)
    error(e, 0)
  end
  return u
end

return M
