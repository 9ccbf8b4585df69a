-- luacheck: std +busted
-- One value, one meaning: every Lua value into every common column type
-- gives the same stored value on every path (COPY binary, text and CSV,
-- db:copy's "auto", batch, pipeline, upsert, row by row, staging, file
-- sinks loaded back with the server's COPY), or the same refusal (the
-- same SQLSTATE).  db:query's parameters carry no column type: they are
-- compared where the README says they agree.
local H = require "helper"
local sluice = require "sluice"
local ffi = require "ffi"

local SCHEMA = "values_spec"

-- column types, and whether they have a binary encoder (the others load
-- in text when the format is "auto"; explicit binary is refused)
local TYPES = {
  { "text", true }, { "varchar(8)", true }, { "int2", true }, { "int4", true },
  { "int8", true }, { "numeric", true }, { "float4", true }, { "float8", true },
  { "bool", true }, { "date", true }, { "timestamp", true }, { "timestamptz", true },
  { "time", false }, { "interval", false }, { "uuid", true }, { "bytea", true },
  { "json", true }, { "jsonb", true }, { "text[]", true }, { "int4[]", true },
  { "float8[]", true }, { "date[]", true },
}

-- the adversarial values: label, value
local VALUES = {
  { "sluice.null", sluice.null }, { "true", true }, { "false", false },
  { "0", 0 }, { "1", 1 }, { "42", 42 }, { "-7", -7 }, { "1.5", 1.5 }, { "0.1", 0.1 },
  { "1e300", 1e300 }, { "inf", 1 / 0 }, { "-inf", -1 / 0 }, { "nan", 0 / 0 },
  { "-0.0", -0.0 }, { "2^53", 2 ^ 53 }, { "2^53+2", 2 ^ 53 + 2 }, { "1e20", 1e20 },
  { "5e-324", 5e-324 }, { "1e-40", 1e-40 },
  { "5LL", ffi.new("int64_t", 5) }, { "2^53+1 LL", ffi.new("int64_t", 9007199254740993LL) },
  { "2^64-1 ULL", 18446744073709551615ULL },
  { "''", "" }, { "'42'", "42" }, { "' 42 '", " 42 " }, { "'1.5'", "1.5" },
  { "'abc'", "abc" }, { "'true'", "true" }, { "'t'", "t" }, { "'yes'", "yes" }, { "'0'", "0" },
  { "'2016-03-19'", "2016-03-19" }, { "'2016-03-19 12:34:56'", "2016-03-19 12:34:56" },
  { "'2016-03-19T12:34:56Z'", "2016-03-19T12:34:56Z" },
  { "'2016-03-19 12:34:56+02'", "2016-03-19 12:34:56+02" },
  { "'03/19/2016'", "03/19/2016" }, { "'Mar 19 2016'", "Mar 19 2016" },
  { "'epoch'", "epoch" }, { "'infinity'", "infinity" }, { "'12:34'", "12:34" },
  { "'1 day'", "1 day" }, { "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
  { "'\\x00ff'", "\\x00ff" }, { "'{1,2}'", "{1,2}" }, { "'{\"a b\",NULL}'", '{"a b",NULL}' },
  { "'{{1,2},{3,4}}'", "{{1,2},{3,4}}" }, { "'{1,'", "{1," }, { "'[1,2]'", "[1,2]" },
  { "'{\"a\":1}'", '{"a":1}' }, { "NUL", "a\0b" }, { "bad UTF-8", "\255" },
  { "{}", {} }, { "{1,2,3}", { 1, 2, 3 } }, { "{'a','b'}", { "a", "b" } }, { "{1.5}", { 1.5 } },
  { "{x=1}", { x = 1 } }, { "{true}", { true } }, { "{{1},{2}}", { { 1 }, { 2 } } },
  { "{1,null}", { 1, sluice.null } }, { "{'2016-03-19'}", { "2016-03-19" } },
}

-- the load strategies compared (the reference is batch)
local STRATEGIES = { "batch", "copy_binary", "copy_text", "copy_csv", "pipeline", "upsert",
                     "rowwise_autocommit", "unlogged_staging" }

local db, tmp

local function outcomes_of(t, out)
  for _, r in ipairs(db:query(("select id, c::text as c from %s"):format(t))) do
    local v = r.c == sluice.null and "NULL" or r.c
    out[r.id] = out[r.id] and (out[r.id] .. " and stored " .. v) or ("= " .. v)
  end
  return out
end

local function fresh(ty)
  db:exec(("drop table if exists v; create table v (id int primary key, c %s)"):format(ty))
  return "v"
end

local function refused(err)
  return "refused " .. tostring(type(err) == "table" and err.sqlstate or err)
end

local PATHS = {}

for _, strategy in ipairs(STRATEGIES) do
  PATHS[strategy] = function(ty)
    local t, out, rows = fresh(ty), {}, {}
    for i, v in ipairs(VALUES) do rows[i] = { i, v[2] } end
    local ok, err = pcall(sluice.load, { db = db, table = t, strategy = strategy, quiet = true,
      key = strategy == "upsert" and { "id" } or nil, on_error = "reject", rows = rows,
      on_reject = function(_, e, row) out[row] = refused(e) end })
    if not ok then return nil, err end
    return outcomes_of(t, out)
  end
end

-- db:copy with the default format ("auto": binary when it can)
PATHS.copy_auto = function(ty)
  local t, out = fresh(ty), {}
  local cp = db:copy(t, { "id", "c" }, { on_reject = function(_, e, row) out[row] = refused(e) end })
  for i, v in ipairs(VALUES) do cp:row(i, v[2]) end
  cp:finish()
  return outcomes_of(t, out)
end

-- the sink's name of a type it has no encoder of its own for (it writes
-- their text as a text column's)
local SINK_TYPE = { ["varchar(8)"] = "text", time = "text", interval = "text" }

-- a CSV file sink with the column's type, loaded back by the server's
-- COPY: a value the sink refuses, or the file the server refuses
PATHS.csv_sink = function(ty)
  local t, out = fresh(ty), {}
  for i, v in ipairs(VALUES) do
    local path = ("%s/%d.csv"):format(tmp, i)
    local sink = sluice.sink.file(path, { columns = { "id", "c" }, format = "csv",
                                          types = { "int4", SINK_TYPE[ty] or ty } })
    local ok, err = pcall(sink.row, sink, i, v[2])
    if ok then
      sink:finish()
      ok, err = pcall(db.exec, db, ("copy %s from '%s' (format csv, header)"):format(t, path))
    else
      sink:abort()
    end
    if not ok then out[i] = refused(err) end
  end
  return outcomes_of(t, out)
end

-- db:query: its parameters carry no column type (the server infers
-- them), so the README's exceptions are left out: tables (refused as
-- parameters), strings holding a NUL byte (sent as binary bytes), and
-- numbers into date/time, interval, bytea and int8 columns (sent as their
-- digits: no epoch seconds, no 2^53 check, bytea reads its text), and
-- strings into bytea (sent as text, which bytea reads as escapes or \x
-- hex; the other paths store a string's bytes).
local function query_compares(ty, v)
  local lt = type(v)
  if lt == "table" or (lt == "string" and v:find("\0", 1, true)) then return false end
  if lt == "number" and (ty:find("date") or ty:find("time") or ty == "interval"
                         or ty == "bytea" or ty == "int8") then
    return false
  end
  if lt == "string" and ty == "bytea" then return false end -- text: escapes and \x hex
  return true
end

PATHS.query = function(ty)
  local t, out = fresh(ty), {}
  for i, v in ipairs(VALUES) do
    if query_compares(ty, v[2]) then
      local ok, err = pcall(db.query, db, ("insert into %s values ($1, $2)"):format(t), i, v[2])
      if not ok then out[i] = refused(err) end
    else
      out[i] = "skip"
    end
  end
  return outcomes_of(t, out)
end

local PATH_ORDER = { "copy_binary", "copy_text", "copy_csv", "copy_auto", "pipeline", "upsert",
                     "rowwise_autocommit", "unlogged_staging", "csv_sink", "query" }

describe("one value, one meaning", function()
  setup(function()
    db = H.connect()
    H.schema(db, SCHEMA)
    tmp = H.tmpdir()
    -- a zone with daylight saving time, so that a timestamptz read in the
    -- wrong zone shows
    db:exec("set timezone = 'America/New_York'")
  end)
  teardown(function()
    db:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE")
    db:close()
    os.execute("rm -rf " .. H.q(tmp))
  end)

  for _, spec in ipairs(TYPES) do
    local ty, binary = spec[1], spec[2]
    it("into " .. ty .. ": every path stores the same value or gives the same refusal", function()
      local ref = assert(PATHS.batch(ty))
      local diffs = {}
      for _, name in ipairs(PATH_ORDER) do
        if name == "copy_binary" and not binary then
          -- no binary encoder: an explicit binary load is refused at once,
          -- leaving no transaction open
          local ok, err = PATHS.copy_binary(ty)
          assert.is_nil(ok)
          assert.are.equal(('load: copy: column "c" (%s) has no binary encoder; use format '
            .. '"text" or "csv"'):format(db:query_one(("select format_type(%s, null) as t")
              :format(("'%s'::regtype"):format(ty))).t), err)
          assert.are.equal("idle", db:status())
        else
          local got = assert(PATHS[name](ty))
          for i, v in ipairs(VALUES) do
            local a, b = ref[i] or "missing", got[i] or "missing"
            if b ~= "skip" and a ~= b then
              diffs[#diffs + 1] = ("%s, %s: batch %s, %s %s"):format(ty, v[1], a, name, b)
            end
          end
        end
      end
      assert.are.same({}, diffs)
      -- and the reference itself is what a script would expect for a few
      -- values every type agrees on
      assert.are.equal("= NULL", ref[1])
    end)
  end

  it("nil is NULL on every path that takes a value list", function()
    local t = fresh("text")
    local cp = db:copy(t, { "id", "c" })
    cp:row(1, nil)
    cp:finish()
    local b = db:batch(t, { "id", "c" })
    b:add(2, nil)
    b:close()
    local pl = db:pipeline("insert into v values ($1, $2)")
    pl:send(3, nil)
    pl:close()
    db:query("insert into v values ($1, $2)", 4, nil)
    assert.are.same({ { id = 1 }, { id = 2 }, { id = 3 }, { id = 4 } },
                    db:query("select id from v where c is null order by id"))
  end)
end)
