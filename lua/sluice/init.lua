--- sluice: load data into PostgreSQL from Lua.
--
-- This module is the public entry point.  It builds on the C core
-- (sluice.core: connections, statements, the throwaway server) and adds the
-- parts that are easier in Lua: connection targets, transactions, helpers
-- the core calls through the FFI.
local core = require "sluice.core"
local conn = require "sluice.conn"
local ffi = require "ffi"

ffi.cdef [[ long long strtoll(const char *s, char **end, int base); ]]

local int64_t = ffi.typeof("int64_t")
local uint64_t = ffi.typeof("uint64_t")

-- int8 values beyond 2^53 come back as int64 cdata (exact)
core.set_helper("int64", function(s)
  return ffi.C.strtoll(s, nil, 10)
end)

-- int64/uint64 cdata sent as parameters: their decimal text
core.set_helper("cdata_text", function(v)
  if ffi.istype(int64_t, v) then
    return (tostring(v):gsub("LL$", ""))
  elseif ffi.istype(uint64_t, v) then
    return (tostring(v):gsub("ULL$", ""))
  end
  return nil
end)

local sluice = {
  version = core.version,
  --- The NULL sentinel: query results hold it where the database has NULL
  -- (so a row keeps all its keys); it is accepted wherever nil is.  It is
  -- the same value as cjson.null (a NULL light userdata).
  null = core.null,
}

-- LuaJIT cannot record a call to a C __index, so a loop calling
-- cp:row(...) on a type whose __index is the C field getter never
-- compiled (and the script's own per-row code ran interpreted with it).
-- A Lua __index that finds methods in a plain table first keeps such
-- loops compilable; fields (cp.rows_sent, ...) still come from C.
do
  local reg = debug.getregistry()
  for mtname, key in pairs {
    ["sluice.copy"] = "copy_methods", ["sluice.copyout"] = "copyout_methods",
    ["sluice.batch"] = "batch_methods", ["sluice.pipeline"] = "pipeline_methods",
    ["sluice.csv"] = "csv_methods",
  } do
    local mt, methods = reg[mtname], core[key]
    local cindex = mt and mt.__index
    if type(cindex) == "function" and type(methods) == "table" then
      mt.__index = function(self, k)
        local m = methods[k]
        if m ~= nil then return m end
        return cindex(self, k)
      end
    end
  end
  -- a binary COPY stream's row() may be its compiled writer (copy.lua)
  local mt = reg["sluice.copy"]
  local index, fast_rows = mt.__index, require("sluice.copy").fast_rows
  mt.__index = function(self, k)
    if k == "row" then
      local w = fast_rows[self]
      if w then return w end
    end
    return index(self, k)
  end
end

require("sluice.outcome").install(core)
conn.install(core)
require("sluice.copy").install(core)
require("sluice.batch").install(core)
require("sluice.pipeline").install(core)
require("sluice.upsert").install(core)

--- Connect to PostgreSQL.
-- target: a libpq conninfo string ("host=... dbname=...") or a
-- postgres:// URI.  Without one, DATABASE_URL is used, and without that
-- libpq's PG* environment variables (PGHOST, PGDATABASE, ...; PGPASSWORD
-- and ~/.pgpass work as with psql).
function sluice.connect(target)
  if target ~= nil and type(target) ~= "string" then
    error("sluice.connect: target must be a conninfo string or a URI, got "
          .. type(target), 2)
  end
  if target == nil then
    target = os.getenv("DATABASE_URL") or ""
  end
  return conn.connect(target)
end

--- Is v the database NULL (nil or sluice.null)?
function sluice.is_null(v)
  return v == nil or v == core.null
end

--- Make an error object (a table with sqlstate, message, ... and a
-- __tostring like psql's) from a table of fields.
function sluice.error(fields)
  fields.severity = fields.severity or "ERROR"
  return core.new_error(fields)
end

--- Is e a database error object?
function sluice.is_error(e)
  return type(e) == "table" and getmetatable(e) == core.error_meta
end

sluice.tmpdb = require("sluice.tmpdb").start
sluice.csv = require "sluice.csv"
sluice.args = require "sluice.args"
sluice.gen = require "sluice.gen"
sluice.model = require "sluice.model"
sluice.sink = require "sluice.sink"
sluice.progress = require "sluice.progress"
sluice.load = require("sluice.load").load
sluice.compare = require("sluice.compare").compare

return sluice
