--- Settling a move out of a staging table: the rows one INSERT ... SELECT
-- (or an upsert's INSERT ... ON CONFLICT) moves from a staging table into
-- its target, with the rows the server refuses for their own fault set
-- aside and every other row moved.  db:upsert's reject mode uses it, and
-- so can any load that stages rows first (an UNLOGGED staging table).
--
--   local settle = require "sluice.settle"
--   local moved, rejected = settle.move(db, {
--     staging = stage,            -- quoted table name
--     sql = function(where)       -- the move, restricted to the rows
--       return ("INSERT INTO t (a, b) SELECT a, b FROM %s%s ORDER BY sluice_seq")
--         :format(stage, where and (" WHERE " .. where) or "")
--     end,
--     columns = {"a", "b"},       -- quoted: the values on_reject gets
--     skipped = copy_rejected,    -- input rows the staging COPY refused
--   })
--   settle.hand_over(on_reject, copy_rejections, rejected)
--
-- settle.move(db, opts) -> moved, rejected
--   opts.staging  the staging table, quoted (schema-qualified or not).
--   opts.seq      its row-order column, quoted (default sluice_seq): a
--                 bigint, unique, ascending in the order the rows were
--                 staged - an identity column added to the staging table
--                 before its COPY (ALTER TABLE ... ADD COLUMN sluice_seq
--                 bigint GENERATED ALWAYS AS IDENTITY).  Gaps are fine (a
--                 COPY in reject mode sends a failed chunk again, which
--                 uses up identity values): the k-th staged row in seq
--                 order is taken to be the k-th input row the COPY did not
--                 refuse.
--   opts.sql      function(where) -> the move statement.  `where` is nil
--                 for the whole move, else an SQL condition on the staging
--                 table's columns (seq BETWEEN lo AND hi) that the
--                 statement must apply to every read of the staging table.
--   opts.columns  the staged columns, quoted: a refused row's values are
--                 read back from the staging table as text.
--   opts.skipped  optional: the sorted list of input row numbers that
--                 never reached the staging table (the COPY's rejections),
--                 to number the refused staged rows as input rows.
--   opts.prepare  optional: function() run once, after the whole move
--                 failed and before the ranges are moved (db:upsert drops
--                 the staged rows that a later row of their key
--                 supersedes).  It must not renumber the seq column.
--   opts.check    optional: function() called after each statement
--                 (default outcome.check: a held Ctrl-C stops the move).
--
-- What it does: the move runs once, whole (under the savepoint
-- sluice_move when a transaction is open).  A clean move costs that
-- savepoint and nothing else.  When the server refuses it for a row's own
-- fault (SQLSTATE classes 22, 23, 44, P0: a bad value, NOT NULL, CHECK,
-- a foreign key, a unique index, a trigger's RAISE), the move is undone
-- and settled by ranges of seq: an index on seq is made, the range of
-- staged rows is split in halves, each half moved on its own (under a
-- savepoint, or as its own statement in autocommit), in ascending seq
-- order, a failing half split again down to the single staged row, which
-- is set aside.  Later ranges see what earlier ones moved, as rows given
-- in order would.  The cost is about 2 * log2(staged rows) statements per
-- refused row, each reading its range through the index.
--
-- Returns moved (the sum of the statements' row counts) and the refused
-- rows, sorted by row: a list of { values = {...} (text, nil for NULL, in
-- opts.columns order), err = the server's error object, row = the input
-- row number, seq = the staged row's seq }.  Nothing is handed over here
-- (settle.hand_over does, once the caller has committed).
--
-- Transactions: inside a transaction everything stays in it (the
-- savepoints are released into it; the caller commits).  With no
-- transaction open, each statement commits on its own: the whole move, or
-- each range of a settled one.
--
-- An error that is no row's fault (a lost connection, a cancel, a missing
-- table, Ctrl-C through opts.check) stops the move and is raised as it is,
-- with fields moved_rows (row counts of the statements that succeeded),
-- settled_seq (staged rows with seq up to this one were moved or set
-- aside; nil when none was) and rejected (the refused rows found so far,
-- as above).  Inside a transaction the move is rolled back to sluice_move
-- first (so nothing it did remains; the transaction stays usable); in
-- autocommit the ranges moved before are committed.
local outcome = require "sluice.outcome"
local NULL = require("sluice.core").null

local M = {}



--- Is err the server's refusal of a row for its own fault?  relayed:
-- the server relays its nodes' errors as XX000 (Citus), which then count.
function M.row_fault(err, relayed)
  local code = type(err) == "table" and err.sqlstate
  return require("sluice.core").row_fault(code, relayed)
end

local SP = "sluice_move"
local SP_RANGE = "sluice_move_range"

-- Run sql; returns true, rows or false, err.
local function try(db, sql)
  local ok, n = pcall(db.exec, db, sql)
  if ok then return true, tonumber(n) or 0 end
  return false, n
end

-- The rank of each staged seq among the staged rows: gaps[i] = {seq,
-- missing identity values just before it}; rank(s) = s - the gaps up to s.
local function read_gaps(db, staging, seq)
  local rows = db:query(([[
select seq::text as s, gap::text as g from (
  select %s as seq, %s - lag(%s, 1, 0::bigint) over (order by %s) - 1 as gap from %s) g
 where gap > 0 order by seq]]):format(seq, seq, seq, seq, staging))
  local gaps = {}
  for i, r in ipairs(rows) do gaps[i] = { tonumber(r.s), tonumber(r.g) } end
  return gaps
end

-- Number the refused rows (sorted by seq) as input rows: rank among the
-- staged rows, then past the skipped ones.
local function number_rows(rejected, gaps, skipped)
  local g, sum, j = 1, 0, 1
  for _, r in ipairs(rejected) do
    while gaps[g] and gaps[g][1] <= r.seq do
      sum = sum + gaps[g][2]
      g = g + 1
    end
    -- the k-th staged row is the k-th input row not skipped
    local row = r.seq - sum + (j - 1)
    while skipped[j] and skipped[j] <= row do
      row = row + 1
      j = j + 1
    end
    r.row = row
    r.values = r.values or {}
  end
end

-- Read the refused rows' values back, as text.
local function read_values(db, o, rejected)
  if #rejected == 0 then return end
  local seqs, by_seq = {}, {}
  for i, r in ipairs(rejected) do
    seqs[i] = ("%d"):format(r.seq)
    by_seq[seqs[i]] = r
  end
  local cols = {}
  for i, c in ipairs(o.columns) do cols[i] = ("%s::text as c%d"):format(c, i) end
  local rows = db:query(("select %s::text as sluice_seq, %s from %s where %s = any($1::bigint[])")
    :format(o.seq, table.concat(cols, ", "), o.staging, o.seq), "{" .. table.concat(seqs, ",") .. "}")
  local n = #o.columns
  for _, row in ipairs(rows) do
    local r = by_seq[row.sluice_seq]
    local values = {}
    for i = 1, n do
      local v = row["c" .. i]
      if v ~= NULL then values[i] = v end
    end
    r.values = values
  end
end

--- settle.move(db, opts) -> moved, rejected (see the top of this file).
function M.move(db, o)
  assert(type(o) == "table" and type(o.staging) == "string" and type(o.sql) == "function"
         and type(o.columns) == "table", "settle.move: staging, sql and columns are required")
  local seq = o.seq or "sluice_seq"
  local check = o.check or outcome.check
  local in_tx = db:status() == "intrans"
  local st = { moved = 0, rejected = {}, settled = nil }

  -- a non-row error: undo (in a transaction), say what was done, raise
  local function stop(err)
    if in_tx then
      pcall(db.exec, db, "ROLLBACK TO SAVEPOINT " .. SP)
      pcall(db.exec, db, "RELEASE SAVEPOINT " .. SP)
    end
    if not in_tx and st.gaps then
      -- what autocommit left done: the rows refused so far, numbered
      -- (their values too, when the connection still answers)
      pcall(read_values, db, { seq = seq, staging = o.staging, columns = o.columns }, st.rejected)
      number_rows(st.rejected, st.gaps, o.skipped or {})
    end
    if type(err) == "table" and not outcome.interrupt_of(err) then
      err.moved_rows = in_tx and 0 or st.moved
      err.settled_seq = (not in_tx) and st.settled or nil
      err.rejected = (not in_tx) and st.rejected or {}
    end
    error(err, 0)
  end

  if in_tx then db:exec("SAVEPOINT " .. SP) end
  local ok, r = try(db, o.sql(nil))
  if ok then
    if in_tx then db:exec("RELEASE SAVEPOINT " .. SP) end
    st.moved = r
    check()
    return r, {}
  end
  local relayed = require("sluice.citus").relays_errors(db)
  if not M.row_fault(r, relayed) then stop(r) end
  -- settle by ranges
  local body = function()
    if in_tx then db:exec("ROLLBACK TO SAVEPOINT " .. SP) end
    local b = db:query_one(("select min(%s)::text as lo, max(%s)::text as hi from %s")
      :format(seq, seq, o.staging))
    local gaps = read_gaps(db, o.staging, seq)
    st.gaps = gaps
    db:exec(("CREATE INDEX ON %s (%s)"):format(o.staging, seq))
    db:exec("ANALYZE " .. o.staging)
    if o.prepare then o.prepare() end
    check()
    local lo, hi = tonumber(b.lo), tonumber(b.hi)
    -- depth first, ascending: the whole range failed already
    local stack = {}
    if lo and lo < hi then
      local mid = math.floor((lo + hi) / 2)
      stack[1] = { mid + 1, hi }
      stack[2] = { lo, mid }
    elseif lo then
      st.rejected[1] = { seq = lo, err = r }
      st.settled = lo
    end
    while #stack > 0 do
      local range = table.remove(stack)
      local a, z = range[1], range[2]
      if in_tx then db:exec("SAVEPOINT " .. SP_RANGE) end
      local rok, res = try(db, o.sql(("%s BETWEEN %d AND %d"):format(seq, a, z)))
      if rok then
        if in_tx then db:exec("RELEASE SAVEPOINT " .. SP_RANGE) end
        st.moved = st.moved + res
        st.settled = z
      else
        if in_tx then
          db:exec("ROLLBACK TO SAVEPOINT " .. SP_RANGE)
          db:exec("RELEASE SAVEPOINT " .. SP_RANGE)
        end
        if not M.row_fault(res, relayed) then error(res, 0) end
        if a == z then
          st.rejected[#st.rejected + 1] = { seq = a, err = res }
          st.settled = z
        else
          local mid = math.floor((a + z) / 2)
          stack[#stack + 1] = { mid + 1, z }
          stack[#stack + 1] = { a, mid }
        end
      end
      check()
    end
    read_values(db, { seq = seq, staging = o.staging, columns = o.columns }, st.rejected)
    number_rows(st.rejected, gaps, o.skipped or {})
    if in_tx then db:exec("RELEASE SAVEPOINT " .. SP) end
  end
  local bok, e = pcall(body)
  if not bok then stop(e) end
  return st.moved, st.rejected
end

--- settle.hand_over(on_reject, ...) -> nil, or the first error on_reject
-- raised and the row it raised for.  Each argument after on_reject is a
-- list of rejections sorted by row ({values, err, row} or {values =,
-- err =, row =}); they are merged and handed to on_reject(values, err,
-- row) in row order.  An error on_reject raises does not stop the others
-- from being handed over.
function M.hand_over(on_reject, ...)
  local lists, pos = { ... }, {}
  for i = 1, select("#", ...) do pos[i] = 1 end
  local first_err, first_row
  while true do
    local best, brow
    for i, l in ipairs(lists) do
      local x = l[pos[i]]
      if x then
        local row = x.row or x[3]
        if not brow or row < brow then best, brow = i, row end
      end
    end
    if not best then break end
    local x = lists[best][pos[best]]
    pos[best] = pos[best] + 1
    local ok, e = pcall(on_reject, x.values or x[1], x.err or x[2], brow)
    if not ok and first_err == nil then first_err, first_row = e, brow end
  end
  return first_err, first_row
end

return M
