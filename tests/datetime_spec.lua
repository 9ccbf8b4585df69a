-- luacheck: std +busted
-- One string, one stored value: a date/time or number string loaded with
-- binary COPY (parsed by sluice's C encoders) must store exactly what text
-- COPY and db:batch store (parsed by the server), or be refused with a
-- clear error naming the row and column.  Every expected value here is
-- the server's own answer, asked for in the same run.
local H = require "helper"

describe("binary COPY stores what text COPY and db:batch store", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "datetime_spec")
    db:exec("SET TimeZone = 'UTC'")
  end)
  teardown(function()
    db:exec("DROP SCHEMA datetime_spec CASCADE")
    db:close()
  end)

  -- The stored value (its ::text, and for floats its bytes) after loading
  -- string s into column v of table tbl by `how` ("binary", "text" or
  -- "batch"); or nil and the error.
  local function load(how, tbl, s, show)
    db:exec("delete from " .. tbl)
    local ok, err = pcall(function()
      if how == "batch" then
        local b = db:batch(tbl, { "v" }, { rows = 1 })
        b:add(s)
        b:close()
      else
        local cp = db:copy(tbl, { "v" }, { format = how })
        local ok2, e2 = pcall(cp.row, cp, s)
        if not ok2 then
          pcall(cp.abort, cp)
          error(e2, 0)
        end
        cp:finish()
      end
    end)
    if not ok then return nil, tostring(err) end
    return db:query_one(("select (%s)::text as v from %s"):format(show or "v::text", tbl)).v
  end

  local function shown(v)
    if type(v) == "string" then return ("%q"):format(v) end
    if type(v) == "number" then
      return v ~= v and "0/0" or ("%.17g"):format(v)
    end
    return "{" .. shown(v[1]) .. "}"
  end

  -- For each value: text COPY and batch (the server) agree; binary stores
  -- the same, or refuses with the encoder's message (row, column, what it
  -- expected, the value).  must_load(v): binary may not refuse v when the
  -- server loads it.
  -- Returns the values binary refused.  no_batch: compare with text COPY
  -- only.
  local function compare(tbl, type_name, values, must_load, show, no_batch)
    local diffs, refused = {}, {}
    for _, s in ipairs(values) do
      local text, terr = load("text", tbl, s, show)
      local batch, berr = text, nil
      if not no_batch then batch, berr = load("batch", tbl, s, show) end
      assert(text == batch, ("%s: text COPY stored %s, batch %s (%s)")
        :format(shown(s), tostring(text), tostring(batch), tostring(terr or berr)))
      local bin, err = load("binary", tbl, s, show)
      if bin == nil then
        local msg = err:match("row 1, .*$") or ""
        local head = 'row 1, column "v" (' .. type_name .. ")"
        local rest = msg:sub(1, #head) == head and msg:sub(#head + 1) or ""
        if not (rest:find("^: expected ") or rest:find("^, element %[1%]: expected ")) then
          diffs[#diffs + 1] = ("%s: binary raised an unclear error: %s"):format(shown(s), err)
        elseif text ~= nil and must_load(s) then
          diffs[#diffs + 1] = ("%s: binary refused it (server stores %s): %s")
            :format(shown(s), tostring(text), msg)
        end
        refused[#refused + 1] = s
      elseif text == nil then
        diffs[#diffs + 1] = ("%s: binary stored %s, the server refuses it: %s")
          :format(shown(s), bin, terr)
      elseif bin ~= text then
        diffs[#diffs + 1] = ("%s: binary stored %s, the server %s"):format(shown(s), bin, text)
      end
    end
    assert.are.same({}, diffs, type_name)
    return refused
  end

  local function set(list)
    local t = {}
    for _, s in ipairs(list) do t[s] = true end
    return function(s) return t[s] or false end
  end

  -- Strings in the ISO form sluice's encoders read: binary must load each
  -- one the server loads, and store what the server stores.
  local ISO = {
    -- 24:00 and the leap second: the next day for timestamps, the same
    -- day for a date (date_in ignores the time of day)
    "2016-12-31 24:00:00", "2016-12-31 23:59:60", "2016-06-30 23:59:60",
    "2016-02-28 24:00", "2016-02-29 24:00:00", "2015-02-28 24:00",
    "2000-01-01 12:59:60.5", "2000-01-01 23:59:60.0000004",
    "2000-01-01 24:00:00.0000001", "2000-01-01 24:00:00.0000004",
    "2000-01-01 24:00:00.000000499999",
    -- a 7th and later fractional digit: rint(strtod(".ddd") * 1e6)
    "2000-01-01 12:00:00.1234565", "2000-01-01 12:00:00.1234575",
    "2000-01-01 12:00:00.1234555", "2000-01-01 12:00:00.0000005",
    "2000-01-01 12:00:00.0000015", "2000-01-01 12:00:00.0000025",
    "2000-01-01 12:00:00.9999995", "2000-01-01 12:00:59.9999995",
    "2000-01-01 23:59:59.9999995", "2000-12-31 23:59:59.9999995",
    "2000-12-31 23:59:59.99999951", "2000-12-31 23:59:59.9999994999999",
    "2000-12-31 23:59:59.99999950000000000000001",
    "2000-01-01 12:00:00.12345650000000000000000000000000000001",
    "2000-01-01 12:00:00.000000", "2000-01-01 12:00:00.5",
    -- separators, offsets, spaces
    "2000-01-01T12:00:00", "2000-01-01t12:00", "2000-01-01  12:00",
    "2000-01-01 12:00:00+05:30", "2000-01-01 12:00:00-0800", "2000-01-01T12:00:00Z",
    "2000-01-01 12:00:00 UTC", "2000-01-01 12:00:00 +05:30", "2000-01-01 12:00+5",
    "2000-01-01 12:00:00-05:30:30", "2000-01-01 12:00+15:59:59", "2000-01-01 12:00:00.5z",
    "2000-01-01 00:00:00+14", "2000-01-01 23:00:00-11", "2000-01-01 24:00:00+05:30",
    "2016-12-31 23:59:60-01:00",
    " 2000-01-01 ", "\t2000-01-01 12:00\n", "2000-1-2 3:04",
    -- calendar edges and far years
    "2000-02-29", "1900-02-28 24:00", "2100-02-28 24:00", "0001-01-01", "0099-12-31",
    "1969-12-31 23:59:59.9999995", "1970-01-01", "10000-01-01", "99999-12-31 23:59:59",
    "294276-12-31 23:59:59.999999",
    "infinity", "-infinity", " Infinity ", "INFINITY", "epoch", " Epoch ",
  }
  -- The issue's cases and more: forms binary may refuse (clearly), but
  -- must never store differently.
  local OTHER = {
    "2000-01-01 12:00:00,5Z", "2000-01-01 12:00:00,5", "2000-01-01T12:00:00,5+01",
    "2016-12-31 23:59:60.5", "2000-01-01 23:59:60.9999999", "2000-01-01 23:59:61",
    "2000-01-01 23:60:00", "2000-01-01 24:00:01", "2000-01-01 24:00:00.0000005",
    "2000-01-01 24:00:00.5", "2000-01-01 24:30", "2000-01-01 25:00",
    "2000-01-01 12:00+530", "2000-01-01 12:00+0530:00", "2000-01-01 12:00+05:3",
    "2000-01-01 12:00+16", "2000-01-01 12:00+15:60", "2000-01-01 12:00 -8",
    "2000-01-01T 12:00", "2000-01-01 T12:00", "2000-01-01 12:00:00.",
    "2000-01-01 12:00:00.5.5", "2000-01-01 12:30.5", "2000-01-01 12:0:0",
    "2015-02-29", "2100-02-29", "2000-13-01", "2000-00-10", "0000-01-01",
    "2000-01-01 BC", "0001-01-01 BC", "4714-11-24 BC", "4714-11-23 BC",
    "294276-12-31 23:59:59.9999995", "294277-01-01", "999999-12-31",
    "5874897-12-31", "5874898-01-01",
    "+infinity", "allballs", "", " ", "2000-01-01 12:00:00 garbage",
    "20000101", "2000-01-01 12:00:00.5 Z", "2000-01-01 12:00:00 +05:30 UTC",
    "Jan 1 2000", "1/2/2000", "2000-01-01 12:00 PM",
    "2000-01-01 12:00:00." .. ("1"):rep(120), -- the server takes it, binary refuses
  }
  local ALL = {}
  for _, s in ipairs(ISO) do ALL[#ALL + 1] = s end
  for _, s in ipairs(OTHER) do ALL[#ALL + 1] = s end

  for _, typ in ipairs { "date", "timestamp", "timestamptz" } do
    it("stores what text COPY and batch store, in a " .. typ .. " column (TimeZone UTC)", function()
      local tbl = "utc_" .. typ
      db:exec(("create table %s (v %s)"):format(tbl, typ))
      local names = { date = "date", timestamp = "timestamp without time zone",
                      timestamptz = "timestamp with time zone" }
      compare(tbl, names[typ], ALL, set(ISO))
    end)
  end

  it("stores what the server stores in a timestamptz column away from UTC", function()
    db:exec("SET TimeZone = 'Asia/Kathmandu'")
    db:exec("create table npt (v timestamptz)")
    db:exec("create table npt_d (v date)")
    -- strings with an offset and without one (read with the zone's rules,
    -- +05:45 here) must load
    local refused = compare("npt", "timestamp with time zone", ALL, set(ISO))
    assert.truthy(#refused > 0) -- the OTHER forms the server refuses
    compare("npt_d", "date", ALL, set(ISO))
    db:exec("SET TimeZone = 'UTC'")
  end)

  -- the class: numbers given as strings
  local NUMBERS = {
    "12", " 12", "12 ", "\t-12\n", "\v12\f", "+5", "-0", "+0", "007", "1e5", "1E5", "12.0", "12.5",
    "0x10", "1_000", "1,5", "", " ", "-", "+", ".", ".5", "5.", "-.5e-3", "+.5E+3",
    "1e", "1e+", "1e 5", "1e+05", "1e-400", "1e309", "4.9e-324", "2.2250738585072011e-308",
    "NaN", "nan", " NAN ", "-nan", "+nan", "Infinity", "-Infinity", "+Infinity", "inf",
    "-inf", "+INF", "infinit", "infinityx", "nan(1)",
    "2147483647", "2147483648", "-2147483648", "-2147483649", "32767", "32768",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "99999999999999999999999",
    "0.1", "0.30000000000000004", "123456789012345678901234567890",
    "1.00000005960464477539062501", "1.000000059604644775390625",
    "1.00000005960464477539062499", "3.4028235e38", "3.40282356779733661637539395458142568448e38",
    "3.4028236e38", "1e-45", "7e-46", "1e-46", "1.4012984643248170709e-45",
    "0e-999", "1e1000", "1e1001", "1e-1000", "1e-1001", "0.000",
    "1.5e1", "-0.0001", "00.00100", "-0.000", "-0e5",
  }
  local NUM_LOADS = set {
    "12", " 12", "12 ", "\t-12\n", "+5", "-0", "+0", "007", "12.0", "12.5", "1e5", "1E5",
    ".5", "5.", "-.5e-3", "+.5E+3", "1e+05", "NaN", "nan", " NAN ", "Infinity", "-Infinity",
    "+Infinity", "inf", "-inf", "+INF", "0.1", "0.30000000000000004",
    "1.00000005960464477539062501", "1.000000059604644775390625",
    "1.00000005960464477539062499", "3.4028235e38", "7e-46", "1.4012984643248170709e-45",
    "0e-999", "1.5e1", "-0.0001", "00.00100", "4.9e-324", "2.2250738585072011e-308",
    "2147483647", "-2147483648", "32767", "9223372036854775807", "-9223372036854775808",
    "99999999999999999999999", "123456789012345678901234567890", "1e1000", "1e-1000",
  }
  local NUM_TYPES = {
    { "int2", "smallint" }, { "int4", "integer" }, { "int8", "bigint" },
    { "float4", "real", "float4send(v)::text || ' ' || v::text" },
    { "float8", "double precision", "float8send(v)::text || ' ' || v::text" },
    { "numeric", "numeric" },
  }
  for _, t in ipairs(NUM_TYPES) do
    it("stores what text COPY and batch store, for number strings in a " .. t[1] .. " column", function()
      local tbl = "n_" .. t[1]
      db:exec(("create table %s (v %s)"):format(tbl, t[1]))
      compare(tbl, t[2], NUMBERS, NUM_LOADS, t[3])
    end)
  end

  -- Lua numbers, where the text paths spell the number out: NaN is the
  -- server's NaN (LuaJIT's 0/0 has its sign bit set), -0 stays -0, and a
  -- real gets the float nearest the double.  Binary refuses a double that
  -- rounds to a real's 0 or infinity; text COPY sends such a real's
  -- nearest text, so these may load there.
  local FLOATS = {
    0 / 0, -(0 / 0), -0.0, 1 / 0, -1 / 0, 0.1, 1 + 2^-24, 1 + 2^-23 + 2^-24, 2^-149,
    2^-150, 2^-1074, 1e308, 2^128 - 2^104, 2^128 - 2^103 - 2^75, 2^128 - 2^103, 1e39,
    123456789.123,
  }
  -- (2^128 - 2^104 is the largest real; 2^128 - 2^103 the halfway point
  -- to the next power of two, which rounds to even: infinity)
  local OUT_OF_REAL = { [2^-150] = true, [2^-1074] = true, [2^128 - 2^103] = true }
  -- (db:batch spells array elements as doubles, whatever the element
  -- type: a real[] element may then round twice; arrays are compared
  -- with text COPY only)
  for _, t in ipairs {
    { "float4", "real", "float4send(v)::text || ' ' || v::text" },
    { "float8", "double precision", "float8send(v)::text || ' ' || v::text" },
    { "float8[]", "double precision[]", "float8send(v[1])::text || ' ' || v::text", true },
    { "float4[]", "real[]", "float4send(v[1])::text || ' ' || v::text", true },
  } do
    it("stores what text COPY and batch store, for Lua numbers in a " .. t[1] .. " column", function()
      local tbl = "lua_" .. t[1]:gsub("%[%]", "_array")
      db:exec(("create table %s (v %s)"):format(tbl, t[1]))
      local values = {}
      for i, x in ipairs(FLOATS) do values[i] = t[1]:find("%[%]") and { x } or x end
      local function must(v)
        local x = type(v) == "table" and v[1] or v
        return not (t[2]:find("real") and OUT_OF_REAL[x])
      end
      compare(tbl, t[2], values, must, t[3], t[4])
    end)
  end
end)
