--- What sluice needs to know about a Citus cluster (the distributed
-- PostgreSQL extension) behind a connection: whether the server runs
-- Citus, how a table is distributed, and what that changes for a load.
--
-- A connection's answer to "is this Citus?" is asked once and kept (weak
-- keys: it goes with the connection).
--
-- What changes on Citus, and why (the README's "Loading into Citus"):
-- - A worker's refusal of a row in a COPY or an INSERT ... SELECT into a
--   distributed table reaches the client as SQLSTATE XX000 without the
--   COPY's line number (Citus relays the worker's message, not its
--   code), so reject mode treats XX000 as a row's fault on a Citus
--   server and finds the row by halves (relays_errors).
-- - An ON CONFLICT target must hold the distribution column: Citus only
--   allows unique indexes that do (conflict_key_check), so a key without
--   it is refused before any row is sent.
-- - COPY FREEZE has no effect on a distributed table's shards, and
--   load refuses freeze there rather than promise it.
local M = {}

local known = setmetatable({}, { __mode = "k" })

--- Does db's server run Citus (the extension is created in its database)?
function M.is_citus(db)
  local v = known[db]
  if v == nil then
    v = db:query_one("select exists (select 1 from pg_extension where extname = 'citus') as c").c
    known[db] = v
  end
  return v
end

--- Does the server relay its nodes' errors as XX000 (a Citus cluster)?
M.relays_errors = M.is_citus

--- How table qtable (quoted) is distributed: nil when it is not a Citus
-- table; else the method ("hash", "reference", "append", "range" or
-- "local" for a table added to the metadata) and the distribution
-- column's name (nil for reference and local tables).
function M.distribution(db, qtable)
  if not M.is_citus(db) then return nil end
  local r = db:query_one([[
select p.partmethod::text as m,
       case when p.partkey is not null
            then column_to_column_name(p.logicalrelid, p.partkey) end as col,
       p.repmodel::text as rep
  from pg_dist_partition p where p.logicalrelid = to_regclass($1)]], qtable)
  if not r then return nil end
  local method = ({ h = "hash", a = "append", r = "range" })[r.m]
  if r.m == "n" then method = r.rep == "t" and "reference" or "local" end
  local col = r.col
  if col == require("sluice.core").null then col = nil end
  return method, col
end

--- For an ON CONFLICT key (a list of column names) on table qtable:
-- nil when it can serve, else the message saying why not (a hash-
-- distributed table whose key lacks the distribution column).
function M.conflict_key_check(db, qtable, shown, key)
  local method, col = M.distribution(db, qtable)
  if method ~= "hash" and method ~= "range" and method ~= "append" then return nil end
  for _, k in ipairs(key) do
    if k == col then return nil end
  end
  return ("table \"%s\" is distributed by column \"%s\" (Citus), and a conflict key must "
          .. "hold it: Citus allows unique indexes only on the distribution column and "
          .. "others; key is (%s)"):format(shown, col, table.concat(key, ", "))
end

return M
