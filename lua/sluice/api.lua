--- The API of sluice's objects, assembled here and only here.
--
-- Every userdata type comes from the C core (runtime/lib_sluice.c) as
-- core.types.<name> = { mt = its metatable, methods = its methods
-- table, field = its read-only field getter (types with fields),
-- private = functions for the Lua library only (batch) }.  This module,
-- required by init.lua before any object exists, completes them once:
--
--   * the methods written in Lua join their type's methods table, from
--     the two explicit lists below, DB_METHODS and BATCH_METHODS;
--   * each type with read-only fields gets its final __index, a Lua
--     function: the methods table first, then the C field getter.
--     LuaJIT cannot record a call through a C __index, so a loop calling
--     cp:row(...) on such a type would never compile (nor would the
--     script's own per-row code in it); a Lua __index is recorded inline.
--     A COPY stream's `row` is its compiled row writer when it has one
--     (copy.lua's fast_rows): see copy_index.
--
-- Every method and field of every object, by type (C tables in runtime/):
--
--   db        lib_conn_methods (lib_conn.c): exec, query, query_one,
--             prepare, status, info, quote_ident, on_notice,
--             set_timeout, timeout, close, is_closed; and DB_METHODS
--             below.  No fields.
--   stmt      lib_stmt_methods (lib_conn.c): query, query_one, exec, close
--   tmpdb     lib_tmpdb_methods (lib_tmpdb.c): conninfo, uri, dir, pid, stop,
--             restart
--   csv       lib_csv_methods (lib_csv.c): next, record, position, seek,
--             identity, close; fields line,
--             offset, record_offset, path, header, bytes_read, file_size
--             (csv_index there)
--   copy      lib_copy_methods (lib_copy.c): row, rows, flush, finish,
--             abort; fields lib_copy_field: rows_sent, bytes_sent,
--             buffered, buffer_size, chunk_size, format, state, columns,
--             path (a file sink, lib_sink.c, is a "sluice.copy" too)
--   copyout   lib_copyout_methods (lib_copyout.c): close, and __call;
--             fields lib_copyout_field: rows, state
--   batch     lib_batch_methods (lib_batch.c): add, poll; BATCH_METHODS
--             below; fields lib_batch_field: buffered, rows_added,
--             buffered_bytes, rows_per_statement, statement, state,
--             rows_committed, rows_in_doubt
--   pipeline  lib_pipeline_methods (lib_pipeline.c): send, sync, close,
--             abort; fields lib_pipeline_field: rows_sent, rows_done,
--             rows_committed, rows_in_doubt, sync_every, state
--
-- (An upsert, db:upsert(), is a Lua object: upsert.lua.)
--
-- Nothing private is reachable from an object: the batch's internal
-- functions (send, values, reset, release, set_counts) are
-- core.types.batch.private, which batch.lua calls as functions; what the
-- Lua library keeps per object lives in tables owned by its module
-- (conn.lua, batch.lua, upsert.lua), not in the object.
local core = require "sluice.core"
local conn = require "sluice.conn"
local copy = require "sluice.copy"
local batch = require "sluice.batch"
local pipeline = require "sluice.pipeline"
local upsert = require "sluice.upsert"
local csv = require "sluice.csv"

local T = core.types

--- The connection's methods written in Lua (beside lib_conn_methods).
local DB_METHODS = {
  -- conn.lua: transactions, savepoints, table names
  begin = conn.begin,
  commit = conn.commit,
  rollback = conn.rollback,
  savepoint = conn.savepoint,
  release = conn.release,
  rollback_to = conn.rollback_to,
  transaction = conn.transaction,
  quote_table = conn.quote_table,
  -- copy.lua: COPY in and out
  copy = copy.copy,
  copy_out = copy.copy_out,
  -- batch.lua, pipeline.lua, upsert.lua
  batch = batch.batch,
  pipeline = pipeline.pipeline,
  upsert = upsert.upsert,
  -- csv.lua (the file's bytes straight to COPY: runtime/lib_csv.c)
  copy_from_file = csv.copy_from_file,
}

--- The batch's methods written in Lua (beside lib_batch_methods).
local BATCH_METHODS = {
  flush = batch.flush,
  close = batch.close,
}

local function add_methods(t, list)
  for k, f in pairs(list) do
    if t.methods[k] ~= nil then
      error("sluice.api: " .. t.mt.__name .. " method " .. k .. " is defined twice")
    end
    t.methods[k] = f
  end
end

-- The __index of a type with fields.
local function fields_index(t)
  local methods, field = t.methods, t.field
  return function(self, k)
    local m = methods[k]
    if m ~= nil then return m end
    return field(self, k)
  end
end

-- A COPY stream's: its row() is its compiled writer when it has one.
local function copy_index(t)
  local methods, field, fast_rows = t.methods, t.field, copy.fast_rows
  return function(self, k)
    if k == "row" then
      local w = fast_rows[self]
      if w then return w end
    end
    local m = methods[k]
    if m ~= nil then return m end
    return field(self, k)
  end
end

local function set_index(t, index)
  if t.mt.__index ~= nil then
    error("sluice.api: " .. t.mt.__name .. " already has an __index")
  end
  t.mt.__index = index
end

add_methods(T.conn, DB_METHODS)
add_methods(T.batch, BATCH_METHODS)
set_index(T.csv, fields_index(T.csv))
set_index(T.copy, copy_index(T.copy))
set_index(T.copyout, fields_index(T.copyout))
set_index(T.batch, fields_index(T.batch))
set_index(T.pipeline, fields_index(T.pipeline))

return {}
