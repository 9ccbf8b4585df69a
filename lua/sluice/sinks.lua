--- The sinks of sluice.load: one per strategy, each taking rows for one
-- connection (db:batch, db:pipeline, db:copy, db:upsert or an UNLOGGED
-- staging table underneath).  load.lua opens one per connection, puts
-- every row through it, then finishes or aborts it.
local outcome = require "sluice.outcome"
local batch = require "sluice.batch"
local conn = require "sluice.conn"
local settle = require "sluice.settle"

local function insert_sql(db, qtable, cols)
  local q, p = {}, {}
  for i, c in ipairs(cols) do q[i] = db:quote_ident(c); p[i] = "$" .. i end
  return ("INSERT INTO %s (%s) VALUES (%s)"):format(qtable, table.concat(q, ", "),
                                                    table.concat(p, ", "))
end

-- A sink takes rows (put(handle, v1..vN)) and is then finished (commits
-- what it began) or aborted (rolls back; never raises).  With ctx.in_tx
-- (a checkpointed load: checkpoint.lua) the load holds a transaction and
-- commits it; the sinks of copy_*, batch, pipeline, upsert and
-- unlogged_staging then run inside it and commit nothing.  One sink per
-- connection; `put` is fetched once, not looked up per row (a call of
-- the same function on every stream it is dealt to).
--
-- Every call here passes quiet = true: the load draws the one progress
-- line and writes the one summary (its streams draw none of theirs).
--
-- What a sink committed, for the load's error: a sink that commits as it
-- goes has counts() -> rows committed, rows in doubt (in the load's row
-- numbers when `numbered`: its errors then already say what the load
-- committed); any other commits all its rows in one step (finish, or
-- commit with several connections), which notes in s.final what the
-- server answered: "committed", or "doubt" when no answer came.  Those
-- steps run with Ctrl-C held (outcome.lua).

local sinks = {}

-- the COPY strategies and their formats
sinks.COPY_FORMAT = { copy_text = "text", copy_csv = "csv", copy_binary = "binary" }
local COPY_FORMAT = sinks.COPY_FORMAT

-- Run fn, the step that commits the sink's rows, noting in s.final what
-- the server's answer says it did.  Raises fn's error.
local function committing(s, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then
    s.final = "committed"
  elseif outcome.unanswered(err) then
    s.final = "doubt"
  end
  if not ok then error(err, 0) end
end

local function batch_counts(b)
  return function() return b.rows_committed, b.rows_in_doubt end
end

-- Rowwise: db:batch with one row per statement is exactly one INSERT and
-- one round trip per row, with db:batch's type-aware value encoding.
function sinks.rowwise_autocommit(db, ctx)
  local b = db:batch(ctx.tbl, ctx.columns, { rows = 1, on_reject = ctx.on_reject, quiet = true })
  return {
    handle = b, put = b.add, counts = batch_counts(b), numbered = true,
    refuses = ctx.on_reject ~= nil,
    finish = function() b:close() end,
    abort = function() batch.drop(b) end,
  }
end

function sinks.rowwise_tx(db, ctx)
  local every = ctx.opts.commit_every
  db:begin()
  local b = db:batch(ctx.tbl, ctx.columns, { rows = 1, transaction = "caller",
                                             on_reject = ctx.on_reject, quiet = true })
  local put = b.add
  local s = { handle = b, committed = 0, doubt = 0, refuses = ctx.on_reject ~= nil }
  s.counts = function() return s.committed, s.doubt end
  -- COMMIT what was added so far, held: the answer decides what the
  -- counts say, and Ctrl-C is raised once they are right
  local function commit_all()
    local upto = b.rows_added - (ctx.rejects and ctx.rejects.count or 0)
    local ok, err = outcome.held(function()
      local cok, cerr = pcall(db.commit, db)
      if cok then
        s.committed = upto
      elseif outcome.unanswered(cerr) then
        s.doubt = upto - s.committed
      end
      if not cok then error(cerr, 0) end
      outcome.check()
    end)
    if not ok then error(err, 0) end
  end
  if every then
    local n = 0
    s.handle = nil
    s.put = function(_, ...)
      put(b, ...)
      n = n + 1
      if n % every == 0 then
        commit_all()
        db:begin()
      end
    end
  else
    s.put = put
  end
  s.finish = function()
    b:close()
    commit_all()
  end
  s.abort = function() batch.drop(b); pcall(db.rollback, db) end
  return s
end

function sinks.batch(db, ctx)
  local tx = ctx.multi -- several connections: commit all at the end
  if tx then db:begin() end
  local b = db:batch(ctx.tbl, ctx.columns, {
    rows = ctx.opts.batch_rows or 1000, max_age_ms = ctx.opts.max_age_ms,
    transaction = (tx or ctx.in_tx) and "caller" or nil, on_reject = ctx.on_reject,
    quiet = true,
  })
  local s = {
    handle = b, put = b.add, refuses = ctx.on_reject ~= nil,
    finish = function() b:close() end,
    abort = function() batch.drop(b); if tx then pcall(db.rollback, db) end end,
  }
  if tx then
    s.commit = function() committing(s, db.commit, db) end
  elseif not ctx.in_tx then
    s.counts, s.numbered = batch_counts(b), true
  end
  return s
end

function sinks.pipeline(db, ctx)
  local tx = ctx.multi
  if tx then db:begin() end
  local pl = db:pipeline(insert_sql(db, ctx.qtable, ctx.columns),
                         { sync_every = ctx.opts.sync_every, on_reject = ctx.on_reject,
                           quiet = true })
  local s = {
    handle = pl, put = pl.send, refuses = ctx.on_reject ~= nil,
    finish = function() pl:close() end,
    -- never close(): that would commit the open group
    abort = function() pcall(pl.abort, pl); if tx then pcall(db.rollback, db) end end,
  }
  if tx then
    s.commit = function() committing(s, db.commit, db) end
  elseif not ctx.in_tx then
    s.counts = function() return pl.rows_committed, pl.rows_in_doubt end
    s.numbered = true
  end
  return s
end

local function copy_sink(db, ctx, format)
  local freeze = ctx.opts.freeze
  local reject = ctx.on_reject
  -- reject mode too: the chunks go under savepoints in one transaction,
  -- committed at the end (one commit, as plain COPY: a failure loads
  -- nothing)
  local tx = not ctx.in_tx and (ctx.multi or freeze or reject)
  if tx then db:begin() end
  if freeze then db:exec("TRUNCATE " .. ctx.qtable) end
  local cp = db:copy(ctx.tbl, ctx.columns, { format = format, freeze = freeze or nil,
                                            on_reject = reject, quiet = true,
                                            reject_chunk = reject and ctx.opts.reject_chunk,
                                            layouts = ctx.opts.layouts })
  local s = {
    handle = cp, put = cp.row,
    abort = function()
      if cp.state == "open" then pcall(cp.abort, cp) end
      if tx then pcall(db.rollback, db) end
    end,
  }
  -- the server's count, checked by the load against the rows sent
  local function finish() s.loaded = cp:finish() end
  if reject then s.rejected = function() return cp.rows_rejected end end
  if tx then
    s.finish = finish
    s.commit = function() committing(s, db.commit, db) end
  elseif ctx.in_tx then
    s.finish = finish -- the load commits
  else
    -- a COPY outside a transaction commits when it ends
    s.finish = function() committing(s, finish) end
  end
  return s
end

for name, format in pairs(COPY_FORMAT) do
  sinks[name] = function(db, ctx) return copy_sink(db, ctx, format) end
end

function sinks.upsert(db, ctx)
  local key = ctx.opts.key
  if key == nil then
    key = require("sluice.load").primary_key(db, ctx.qtable)
    if #key == 0 then
      error(("load: strategy \"upsert\" needs key = {columns} (table \"%s\" has no "
             .. "primary key)"):format(ctx.shown), 0)
    end
  end
  local up = db:upsert(ctx.tbl, ctx.columns, { key = key, on_reject = ctx.on_reject, quiet = true,
                                               reject_chunk = ctx.on_reject and ctx.opts.reject_chunk,
                                               layouts = ctx.opts.layouts })
  local s = { handle = up, put = up.row, abort = function() pcall(up.abort, up) end }
  s.finish = function()
    local ok, err = pcall(up.finish, up)
    if ok or type(err) == "table" and (err.committed_rows or 0) > 0 then
      s.final = "committed" -- committed, then interrupted (upsert.lua)
    elseif type(err) == "table" and (err.in_doubt_rows or 0) > 0 then
      s.final = "doubt" -- its COMMIT got no answer
    end
    if not ok then error(err, 0) end
  end
  return s
end

local staging_seq = 0

function sinks.unlogged_staging(db, ctx)
  staging_seq = staging_seq + 1
  -- in the target's schema, named after this backend so concurrent loads
  -- never share one
  local schema = db:query_one("select n.nspname::text as s from pg_class c join pg_namespace n "
    .. "on n.oid = c.relnamespace where c.oid = to_regclass($1)", ctx.qtable).s
  local stage_name = ("sluice_staging_%d_%d"):format(db:info().backend_pid, staging_seq)
  local stage = db:quote_ident(schema) .. "." .. db:quote_ident(stage_name)
  local q = {}
  for i, c in ipairs(ctx.columns) do q[i] = db:quote_ident(c) end
  local clist = table.concat(q, ", ")
  -- reject mode: the COPY sets bad values aside, the move the rows the
  -- target refuses (settle.lua, by ranges of the staging order), all in
  -- one transaction (the staging table too), committed at the end
  local on_reject = ctx.on_reject
  local tx = on_reject and not ctx.in_tx
  if tx then db:begin() end
  db:exec(("CREATE UNLOGGED TABLE %s AS SELECT %s FROM %s WITH NO DATA")
    :format(stage, clist, ctx.qtable))
  local copy_rej = {}
  local ok, cp = pcall(function()
    if on_reject then
      db:exec(("ALTER TABLE %s ADD COLUMN sluice_seq bigint GENERATED ALWAYS AS IDENTITY")
              :format(stage))
    end
    return db:copy({ schema, stage_name }, ctx.columns, {
      on_reject = on_reject and function(values, err, row)
        copy_rej[#copy_rej + 1] = { values, err, row }
      end,
      reject_chunk = on_reject and ctx.opts.reject_chunk, quiet = true,
      layouts = ctx.opts.layouts })
  end)
  if not ok then
    if tx then pcall(db.rollback, db) else pcall(db.exec, db, "DROP TABLE IF EXISTS " .. stage) end
    error(cp, 0)
  end
  local move_rej = {}
  local function move()
    local sql = ("INSERT INTO %s (%s) SELECT %s FROM %s"):format(ctx.qtable, clist, clist, stage)
    if not on_reject then return conn.unbounded(db, db.exec, db, sql) end
    local skipped = {}
    for i, x in ipairs(copy_rej) do skipped[i] = x[3] end
    local _
    _, move_rej = conn.unbounded(db, settle.move, db, {
      staging = stage, columns = q, skipped = skipped,
      sql = function(where)
        return sql .. (where and (" WHERE " .. where) or "") .. " ORDER BY sluice_seq"
      end,
    })
  end
  -- the rows set aside, once they are committed (or in the load's
  -- transaction)
  local function hand_over()
    local err, row = settle.hand_over(on_reject, copy_rej, move_rej)
    if err ~= nil then
      error(type(err) == "string" and ("load: on_reject raised for row %d: %s"):format(row, err)
            or err, 0)
    end
  end
  local s
  s = {
    handle = cp, put = cp.row,
    finish = function()
      local fok, err = pcall(function()
        cp:finish()
        outcome.check()
        if tx then
          move()
          db:exec("DROP TABLE " .. stage)
          committing(s, db.commit, db)
        else
          committing(s, move)
        end
      end)
      -- a Ctrl-C noticed meanwhile waits until the staging table is gone
      local sig = outcome.take()
      if tx and not fok then pcall(db.rollback, db) end
      pcall(db.exec, db, "DROP TABLE IF EXISTS " .. stage)
      if not fok then error(err, 0) end
      if on_reject then hand_over() end
      if sig then outcome.raise(sig) end
    end,
    abort = function()
      if cp.state == "open" then pcall(cp.abort, cp) end
      if tx then pcall(db.rollback, db) end
      pcall(db.exec, db, "DROP TABLE IF EXISTS " .. stage)
    end,
  }
  return s
end

return sinks
