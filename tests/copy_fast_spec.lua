-- The compiled row writer of COPY streams (copy.lua's FFI fast path), in
-- binary, text and CSV: for every value, valid or not, it must load the
-- same rows as the C encoder, or raise the same error.
local H = require "helper"
local sluice = require "sluice"
local ffi = require "ffi"

local NULL = sluice.null
pcall(ffi.cdef, "int usleep(unsigned int usec);")

describe("COPY row writer", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "copy_fast")
  end)
  teardown(function()
    db:exec("drop schema copy_fast cascade")
    db:close()
  end)

  local COLS = "a int2, b int4, c int8, d float4, e float8, f bool, g text, h numeric, "
    .. "i date, j timestamp, k timestamptz"

  local function reset()
    db:exec("drop table if exists fast; drop table if exists slow")
    db:exec("create table fast (n int, " .. COLS .. ")")
    db:exec("create table slow (n int, " .. COLS .. ")")
  end

  local function contents(t)
    return db:query_one(("select count(*) as n, md5(string_agg(x::text, E'\\n' order by n)) as h "
                         .. "from %s x"):format(t))
  end

  -- Load one row by the stream's row() (the compiled writer) into fast and
  -- by cp:rows() (always the C encoder) into slow; return both outcomes.
  local function both(values, format)
    local row = { 1 }
    for i = 1, 11 do row[i + 1] = values[i] == nil and NULL or values[i] end
    local out = {}
    for _, t in ipairs({ "fast", "slow" }) do
      local cp = db:copy(t, nil, { format = format or "binary" })
      local ok, err
      -- text and CSV leave range checks to the server: its error comes
      -- from finish(), naming the table
      if t == "fast" then
        ok, err = pcall(function() cp:row(unpack(row, 1, 12)); cp:finish() end)
      else
        ok, err = pcall(function() cp:rows({ row }); cp:finish() end)
      end
      out[t] = ok and "ok" or tostring(err):gsub("^[^:]*:%d+: ", ""):gsub("COPY %a+,", "COPY t,")
                                 :gsub("\nWHERE:[^\n]*", "")
    end
    return out.fast, out.slow
  end

  it("is a compiled Lua function for COPY streams, the C method for binary json and for sinks", function()
    reset()
    for _, format in ipairs({ "binary", "text", "csv" }) do
      local cp = db:copy("fast", nil, { format = format })
      assert.are.equal("Lua", debug.getinfo(cp.row, "S").what, format)
      cp:abort()
    end
    db:exec("create table withjson (a int, j jsonb)")
    local cp = db:copy("withjson", nil, { format = "binary" })
    assert.are.equal("C", debug.getinfo(cp.row, "S").what)
    cp:abort()
    cp = db:copy("withjson", nil, { format = "text" })
    assert.are.equal("Lua", debug.getinfo(cp.row, "S").what)
    cp:abort()
    local path = os.tmpname()
    local sink = sluice.sink.file(path, { columns = { "a" } })
    assert.are.equal("C", debug.getinfo(sink.row, "S").what)
    sink:finish()
    os.remove(path)
  end)

  local base = { 1, 2, 3, 1.5, 2.5, true, "x", 1.25, 0, 0, 0 }
  local function with(col, v)
    local r = {}
    for i = 1, 11 do r[i] = base[i] end
    r[col] = v
    return r
  end

  -- per column: values of every Lua type, in range, at the edges and beyond
  local CASES = {
    [1] = { 0, -32768, 32767, 32768, -32769, 1.5, "12", "x", true, 0 / 0, math.huge },
    [2] = { -2147483648, 2147483647, 2147483648, 2.5, "-7", false },
    [3] = { 2 ^ 53, -2 ^ 53, 2 ^ 53 + 2, 2 ^ 63, -2 ^ 63, 1e300, "9223372036854775807",
            ffi.new("int64_t", 42), ffi.new("uint64_t", 7), 0.5 },
    [4] = { 0, -0.0, 1e38, 3.4e38, 1e39, 1e-46, 1e-45, 0 / 0, math.huge, -math.huge, "2.5", "x" },
    [5] = { 1e308, -1e-308, 5e-324, 0 / 0, -math.huge, "1e10", "nan", "abc", ffi.new("int64_t", -3) },
    [6] = { true, false, "t", "false", "yes", 1, 0, "maybe" },
    [7] = { "", "tab\there", "new\nline", "back\\slash", "zoë 日本", "nul\0byte", 12, 1.5, true,
            ffi.new("int64_t", 9), ("long"):rep(5000) },
    [8] = { 0, -0.0, 0.1, 123456789.125, -1e-20, 1e300, 0 / 0, math.huge, "12.3400", "-0.001",
            "1e5", "abc", "NaN", true },
    [9] = { 0, 86399, -86400 * 366, 1e15, "2020-02-29", "2019-02-29", "infinity", "-infinity",
            "x", 12.5, true },
    [10] = { 0, 1.5, -1e10, 1e15, "2020-01-02 03:04:05", "2020-01-02T03:04:05.123456",
             "2020-01-02 03:04:05+02", "294277-01-01", "infinity", "nope", false },
    [11] = { 0, 1700000000.25, "2020-01-02 03:04:05Z", "2020-01-02 03:04:05+05:30",
             "2020-01-02 03:04:05", "-infinity", "2020-13-01 00:00:00+00", {}, 1e300 },
  }

  for _, format in ipairs({ "binary", "text", "csv" }) do
    it(("loads the same rows as the C encoder, or raises the same error, for every value (%s)")
       :format(format), function()
      local compared = 0
      for col, values in pairs(CASES) do
        for _, v in ipairs(values) do
          reset()
          local what = ("%s, column %d, value %s"):format(format, col, tostring(v))
          local fast, slow = both(with(col, v), format)
          assert.are.equal(slow, fast, what)
          if fast == "ok" then
            assert.are.same(contents("slow"), contents("fast"), what)
          end
          compared = compared + 1
        end
      end
      assert.is_true(compared > 100)
    end)
  end

  for _, format in ipairs({ "binary", "text", "csv" }) do
  it("writes NULLs, and many rows across chunk boundaries (" .. format .. ")", function()
    reset()
    local cp = db:copy("fast", nil, { format = format, chunk_size = 1024 })
    local list = {}
    for n = 1, 5000 do
      local r = { n, n % 100, n * 1000, n * 3, n / 3, n / 7, n % 2 == 0, ("v%d"):rep(n % 4):format(n, n, n),
                  n / 8, 86400 * n, 1700000000 + n / 4, ("2024-01-01 00:00:%02d+01"):format(n % 60) }
      for j = 2, 12 do if (n + j) % 11 == 0 then r[j] = NULL end end
      list[n] = r
      -- NULL as sluice.null in even rows, as nil in odd ones
      local args = {}
      for j = 1, 12 do if r[j] ~= NULL or n % 2 == 0 then args[j] = r[j] end end
      cp:row(unpack(args, 1, 12))
    end
    assert.are.equal(5000, cp:finish())
    cp = db:copy("slow", nil, { format = format })
    cp:rows(list)
    cp:finish()
    assert.are.same(contents("slow"), contents("fast"))
    assert.are.equal(5000, contents("fast").n)
  end)
  end

  it("raises count errors and refuses rows after finish, like cp:row", function()
    reset()
    local cp = db:copy("fast", nil, { format = "binary" })
    local err = H.error_of(function() cp:row(1, 2, 3) end)
    assert.matches("row 1: expected 12 values %(n, a, b, c, d, e, f, g, h, i, j, k%), got 3$", err.message)
    cp = db:copy("fast", nil, { format = "binary" })
    cp:row(1, 1, 2, 3, 4, 5, true, "x", 1, 0, 0, 0)
    assert.are.equal(1, cp:finish())
    err = H.error_of(function() cp:row(2, 1, 2, 3, 4, 5, true, "x", 1, 0, 0, 0) end)
    assert.matches("row: the COPY is already finished$", tostring(err))
    assert.are.equal(1, contents("fast").n)
    assert.are.equal("idle", db:status())
  end)

  it("goes with its stream: nothing is kept once the stream is collected", function()
    reset()
    local rows_of = require("sluice.copy").fast_rows
    collectgarbage(); collectgarbage()
    local before = 0
    for _ in pairs(rows_of) do before = before + 1 end
    for _ = 1, 20 do
      local cp = db:copy("fast", nil, { format = "binary" })
      cp:row(1, 1, 2, 3, 4, 5, true, "x", 1, 0, 0, 0)
      cp:finish()
    end
    collectgarbage(); collectgarbage()
    local after = 0
    for _ in pairs(rows_of) do after = after + 1 end
    assert.is_true(after <= before, ("%d writers before, %d after"):format(before, after))
  end)

  it("takes a stream of another shape through the C encoder, never with its own encoders", function()
    db:exec("create table shape_a (x int8, y float8); create table shape_b (x float8, y int8)")
    local a = db:copy("shape_a", nil, { format = "binary" })
    local put = a.row
    local db2 = H.connect()
    local b = db2:copy("copy_fast.shape_b", nil, { format = "binary" })
    put(b, 3, 7) -- a's writer, b's row: b's own column types apply
    assert.are.equal(1, b:finish())
    a:abort()
    db2:close()
    assert.are.same({ x = 3, y = 7 }, db:query_one("select x, y from shape_b"))
  end)

  it("refuses a NULL cdata pointer as the C encoder does (it is not sluice.null)", function()
    reset()
    local np = ffi.cast("const char *", nil)
    local row = { 1, 1, 2, 3, 4, 5, true, np, 1, 0, 0, 0 }
    local cp = db:copy("fast", nil, { format = "binary" })
    local fast_err = H.error_of(function() cp:row(unpack(row, 1, 12)) end)
    cp = db:copy("fast", nil, { format = "binary" })
    local slow_err = H.error_of(function() cp:rows({ row }) end)
    assert.matches('row 1, column "g" %(text%): expected a string, number or boolean, got cdata$',
                   fast_err.message)
    assert.are.equal(slow_err.message, fast_err.message)
    assert.are.equal("22P02", fast_err.sqlstate)
    assert.are.equal(0, contents("fast").n)
  end)

  it("raises the server's error when the connection dies during a flush", function()
    reset()
    local pid = db:query_one("select pg_backend_pid() as p").p
    local cp = db:copy("fast", nil, { format = "binary", chunk_size = 1024 })
    local other = H.connect()
    other:exec("select pg_terminate_backend(" .. pid .. ")")
    -- the backend exits soon after the signal: wait until it is gone
    for _ = 1, 500 do
      if other:query_one("select count(*) as n from pg_stat_activity where pid = $1", pid).n == 0 then
        break
      end
      ffi.C.usleep(10000)
    end
    other:close()
    local ok, err = pcall(function()
      for n = 1, 1000 do cp:row(n, 1, 2, 3, 4, 5, true, "x", 1, 0, 0, 0) end -- FLUSHLINE
    end)
    db = H.connect()
    assert.is_false(ok)
    assert.are.equal("terminating connection due to administrator command", err.message)
    assert.are.equal("57P01", err.sqlstate)
    assert.are.equal("failed", cp.state)
  end)

  it("writes the right stream's row when called on another stream", function()
    reset()
    local a = db:copy("fast", nil, { format = "binary" })
    local w = a.row
    a:finish()
    local b = db:copy("slow", nil, { format = "binary" })
    w(b, 1, 1, 2, 3, 4, 5, true, "x", 1, 0, 0, 0) -- a's writer, b's row
    assert.are.equal(1, b:finish())
    assert.are.equal(1, contents("slow").n)
  end)
end)
