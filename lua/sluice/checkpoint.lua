--- The ledger of checkpointed loads: sluice.load{ ..., checkpoint =
-- "name" } commits its rows in chunks and records, in the same
-- transaction as each chunk, how far the input got.  Running the same
-- load again goes on after the last committed chunk; a finished one does
-- nothing and says so.
--
-- The ledger is a table, sluice_ledger, in the database's current schema
-- (created when first needed), one row per checkpoint name:
--   name          the checkpoint's name (primary key)
--   target        the table loaded
--   identity      the input's identity (a CSV file's path, size, mtime
--                 and checksum; a generator's seed and stream; ...): a
--                 load refuses to go on from another input
--   strategy      the strategy it loads with
--   position      where the input goes on (the input's own position(),
--                 e.g. a CSV reader's byte offset, line and record), or
--                 empty: the rows_read first rows are read again and
--                 skipped
--   rows_read, rows_loaded, rows_rejected   through the last commit
--   rejects_size  the rejects file's size at the last commit (a resumed
--                 load cuts the file back to it: each rejected row is in
--                 it once)
--   done          the whole input was loaded
--   started, updated
--
-- sluice.checkpoints(db) -> the ledger's rows (a list of tables), and
-- sluice.reset_checkpoint(db, name) -> whether there was one, to start a
-- load over (its rows stay in the target: delete them yourself).
local outcome = require "sluice.outcome"

local M = {}

M.TABLE = "sluice_ledger"

local DDL = [[
create table if not exists %s (
  name text primary key,
  target text not null,
  identity text not null,
  strategy text not null,
  position text not null default '',
  rows_read bigint not null default 0,
  rows_loaded bigint not null default 0,
  rows_rejected bigint not null default 0,
  rejects_size bigint,
  done boolean not null default false,
  started timestamptz not null default now(),
  updated timestamptz not null default now()
)]]

local SAVE = [[
insert into %s as l (name, target, identity, strategy, position, rows_read, rows_loaded,
                     rows_rejected, rejects_size, done, updated)
values ($1, $2, $3, $4, $5, $6::int8, $7::int8, $8::int8, $9::int8, $10::bool, now())
on conflict (name) do update set target = excluded.target, identity = excluded.identity,
  strategy = excluded.strategy, position = excluded.position, rows_read = excluded.rows_read,
  rows_loaded = excluded.rows_loaded, rows_rejected = excluded.rows_rejected,
  rejects_size = excluded.rejects_size, done = excluded.done, updated = excluded.updated]]

--- The ledger's quoted name on db (the current schema), or nil and why.
function M.ledger(db)
  local r = db:query_one("select current_schema()::text as s")
  if not r or r.s == nil or r.s == require("sluice.core").null then
    return nil, "no schema is current (search_path): the ledger has nowhere to go"
  end
  return db:quote_ident(r.s) .. "." .. db:quote_ident(M.TABLE)
end

--- Create the ledger if it is missing (its own statement, committed).
-- On a Citus cluster it is a reference table: a copy on every node, so
-- that a worker that loads through any node (nodes = {...}, or another
-- machine's --shard) writes its chunk's row in the chunk's transaction,
-- and every node reads the same ledger.
function M.ensure(db, ledger)
  db:exec(DDL:format(ledger))
  local citus = require "sluice.citus"
  if citus.is_citus(db) and citus.distribution(db, ledger) == nil then
    db:query("select create_reference_table($1)", ledger)
  end
end

--- The ledger's row for name, or nil.
function M.get(db, ledger, name)
  local exists = db:query_one("select to_regclass($1) is not null as e", ledger).e
  if not exists then return nil end
  return db:query("select * from " .. ledger .. " where name = $1", name)[1]
end

--- Record a checkpoint (in the caller's transaction).  f: target,
-- identity, strategy, position, rows_read, rows_loaded, rows_rejected,
-- rejects_size (or nil), done.
function M.save(db, ledger, name, f)
  local null = require("sluice.core").null
  db:query(SAVE:format(ledger), name, f.target, f.identity, f.strategy, f.position or "",
           f.rows_read, f.rows_loaded, f.rows_rejected,
           f.rejects_size == nil and null or f.rejects_size, f.done and "true" or "false")
end

--- sluice.checkpoints(db) -> the ledger's rows, by name.
function M.list(db)
  local ledger = assert(M.ledger(db))
  if not db:query_one("select to_regclass($1) is not null as e", ledger).e then return {} end
  return db:query("select * from " .. ledger .. " order by name")
end

--- sluice.reset_checkpoint(db, name) -> true when there was one.
function M.reset(db, name)
  if type(name) ~= "string" or name == "" then
    error("reset_checkpoint: expected a checkpoint name, got " .. type(name), 2)
  end
  local ledger = assert(M.ledger(db))
  if not db:query_one("select to_regclass($1) is not null as e", ledger).e then return false end
  -- a parallel load's chunks are "name#id"
  local _, tag = db:query("delete from " .. ledger .. " where name = $1 or left(name, "
                          .. "length($1) + 1) = $1 || '#'", name)
  return tag ~= "DELETE 0"
end

--- The identity of a load's input: the source's own, else what can be
-- told of a list or an iterator.
function M.identity(rows, src)
  if src and src.identity then return src:identity() end
  if type(rows) == "table" then return ("a list of %d rows"):format(#rows) end
  return "an iterator function"
end

--- Errors after which a checkpointed load with retries = N connects
-- again and goes on: a lost connection (outcome.unanswered), a server shutting
-- down or starting (57P01-57P03), a serialization failure or deadlock.
function M.retryable(err)
  local code = type(err) == "table" and err.sqlstate
  if type(code) ~= "string" then return false end
  return outcome.unanswered(err) or code == "57P01" or code == "57P02" or code == "57P03"
         or code == "40001" or code == "40P01"
end

return M
