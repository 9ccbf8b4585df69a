--- sluice: load data into PostgreSQL from Lua.
--
-- This module is the public entry point.  It builds on the C core
-- (sluice.core: connections, statements, the throwaway server) and adds the
-- parts that are easier in Lua.  The methods and fields of every object
-- (db, COPY streams, batches, ...) are assembled in one place, api.lua,
-- required first: no object exists before its type is complete.
local core = require "sluice.core"
require "sluice.api"
local conn = require "sluice.conn"
local ffi = require "ffi"

ffi.cdef [[ long long strtoll(const char *s, char **end, int base); ]]

local int64_t = ffi.typeof("int64_t")
local uint64_t = ffi.typeof("uint64_t")

-- int8 values beyond 2^53 come back as int64 cdata (exact)
core.set_helper("int64", function(s)
  return ffi.C.strtoll(s, nil, 10)
end)

-- a value refused inside sluice's own modules (a load's rows) names the
-- script's line, not theirs
core.set_helper("own_dir", (debug.getinfo(1, "S").source:match("^@(.*/)[^/]*$")) or "\0")

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

--- Connect to PostgreSQL.
-- target: a libpq conninfo string ("host=... dbname=...") or a
-- postgres:// URI.  Without one, DATABASE_URL is used, and without that
-- libpq's PG* environment variables (PGHOST, PGDATABASE, ...; PGPASSWORD
-- and ~/.pgpass work as with psql).
-- opts.timeout: seconds a wait on the server may pass with no byte from
-- it before the connection is closed (default 300; 0 or false: none).
function sluice.connect(target, opts)
  if target ~= nil and type(target) ~= "string" then
    error("sluice.connect: target must be a conninfo string or a URI, got "
          .. type(target), 2)
  end
  if target == nil then
    target = os.getenv("DATABASE_URL") or ""
  end
  return conn.connect(target, opts, 2)
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
sluice.text = require "sluice.text"
sluice.sink = require "sluice.sink"
sluice.progress = require "sluice.progress"

-- The collector's step multiplier: 400 (LuaJIT's default is 200).  A
-- loading loop makes a string per field and a table per row; at the
-- default pace garbage piles up between the collector's steps, and what
-- that costs swings with the heap's size (the same read took 0.67 or
-- 1.2 s).  Measured with bench/transform.lua (medians of 3, the same
-- machine): reading its CSV as keyed rows 1.43 -> 0.79 s of CPU per
-- million rows, the script with sluice.text's helpers 2.18 -> 1.52 s;
-- the plain script and bench/csv_read.lua's keyed read unchanged (2.5 s,
-- 0.84 s).  A script may set its own: collectgarbage("setstepmul", n).
collectgarbage("setstepmul", 400)

-- The larger parts are loaded at their first use (sluice.gen, the first
-- time a script names it), so that a script that reads and copies keeps
-- a small heap: LuaJIT's collector works in proportion to the live heap,
-- and with these ~470 KB loaded, reading a CSV file took ~15% more CPU
-- (bench/csv_read.lua's file: 1.04 against 0.89 s per million rows).
local LAZY = {
  gen = function() return require "sluice.gen" end,
  model = function() return require "sluice.model" end,
  load = function() return require("sluice.load").load end,
  compare = function() return require("sluice.compare").compare end,
  rejects = function() return require("sluice.rejects").open end,
  read_rejects = function() return require("sluice.rejects").read end,
  checkpoints = function() return require("sluice.checkpoint").list end,
  reset_checkpoint = function() return require("sluice.checkpoint").reset end,
  parallel = function() return require("sluice.parallel").parallel end,
  -- the jobs a load runs with when it names none (`sluice --jobs N`)
  parallel_jobs = function() return require("sluice.parallel").default_jobs end,
}
setmetatable(sluice, {
  lazy = LAZY, -- the prompt loads them all, for completion and help
  __index = function(t, k)
    local make = LAZY[k]
    if make == nil then return nil end
    local v = make()
    rawset(t, k, v)
    return v
  end,
})
-- sluice.worker: { index, count } inside a worker of sluice.parallel or a
-- parallel load (set there), nil outside

return sluice
