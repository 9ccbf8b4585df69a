-- luacheck: std +busted
-- File sinks (sluice.sink.file): what they write is what PostgreSQL loads
-- back.  Every round trip goes through psql's \copy (a separate client,
-- not sluice), then the table is compared with the rows written.
local H = require "helper"
local sluice = require "sluice"
local ffi = require "ffi"

pcall(ffi.cdef, [[ int getpid(void); ]])

local NULL = sluice.null
local DIR = os.getenv("TMPDIR") or "/tmp"
local TAG = ("sluice-sink-%d"):format(ffi.C.getpid())

local function tmp(name) return DIR .. "/" .. TAG .. "-" .. name end

local slurp = H.slurp

local write = H.write

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Files left in DIR whose names start with prefix (temporary files of a
-- sink that was not finished would show up here).
local function leftovers(prefix)
  local p = io.popen("ls -1 " .. H.q(DIR))
  local out = {}
  for name in p:lines() do
    if name:sub(1, #prefix) == prefix then out[#out + 1] = name end
  end
  p:close()
  return out
end

-- Run psql with one \copy command (stdin from `input` when given).
local function psql_copy(copy_cmd, input)
  local cmd = "psql -X -q -v ON_ERROR_STOP=1 " .. H.q(H.url())
    .. " -c " .. H.q(copy_cmd)
  if input then cmd = input .. " | " .. cmd end
  local rc, out, err = H.run(cmd)
  assert(rc == 0, ("psql failed (%d): %s\n%s"):format(rc, err, out))
end

-- The nasty values: every byte COPY text or CSV treats specially, empty
-- vs NULL, the end-of-data marker, the NULL marker as data, unicode.
local NASTY = {
  "plain", "", "back\\slash", "tab\there", "new\nline", "cr\rhere",
  "crlf\r\n", 'double "quote"', "comma, here", "\\.", "\\N", "NULL",
  "  spaces  ", "ünïcødé ✓ 日本", "\"", ",", "\\", "semi;colon",
  "trailing\\", "{braces}",
}

local function nasty_rows()
  local rows = {}
  for i, s in ipairs(NASTY) do
    rows[#rows + 1] = { i, s, i / 8, i % 2 == 0, { i, i + 1 }, { k = s } }
  end
  -- NULL in every column but id
  rows[#rows + 1] = { #NASTY + 1, NULL, NULL, NULL, NULL, NULL }
  rows[#rows + 1] = { #NASTY + 2, "x", -0.1, false, {}, { 1, 2 } }
  return rows
end

local COLS = { "id", "s", "n", "b", "a", "j" }
local TYPES = { id = "int4", n = "float8", b = "bool", a = "int4[]", j = "jsonb" }

-- The table's rows as Lua values, in the shape the rows were written.
local function table_rows(db)
  local cjson = require "cjson"
  local out = {}
  for i, r in ipairs(db:query("select id, s, n, b, a::text as a, j::text as j "
                              .. "from sink_t order by id")) do
    local a = r.a
    if a ~= NULL then
      local list = {}
      for v in a:gmatch("%-?%d+") do list[#list + 1] = tonumber(v) end
      a = list
    end
    out[i] = { r.id, r.s, r.n, r.b, a, r.j ~= NULL and cjson.decode(r.j) or NULL }
  end
  return out
end

describe("sluice.sink.file", function()
  local db

  setup(function()
    db = H.connect()
    H.schema(db, "sink_spec")
  end)

  teardown(function()
    for _, name in ipairs(leftovers(TAG)) do os.remove(DIR .. "/" .. name) end
    if db then
      db:exec("DROP SCHEMA IF EXISTS sink_spec CASCADE")
      db:close()
    end
  end)

  before_each(function()
    -- psql connects on its own: the table lives in a schema it can name
    db:exec("DROP TABLE IF EXISTS sink_t; CREATE TABLE sink_t (id int4, "
            .. "s text, n float8, b bool, a int4[], j jsonb)")
  end)

  for _, fmt in ipairs({ "csv", "text" }) do
    for _, gz in ipairs({ false, true }) do
      local label = fmt .. (gz and ", gzip" or ", plain")
      it("writes " .. label .. " that psql \\copy loads back to the same rows", function()
        local path = tmp("rt." .. fmt .. (gz and ".gz" or ""))
        local rows = nasty_rows()
        local s = sluice.sink.file(path, { format = fmt, gzip = gz,
                                          columns = COLS, types = TYPES })
        assert.are.equal(3, s:rows({ rows[1], rows[2], rows[3] }))
        for i = 4, #rows do s:row(unpack(rows[i], 1, 6)) end
        assert.are.equal(#rows, s:finish())
        assert.are.equal("finished", s.state)
        local data = slurp(path)
        assert.are.equal(gz, data:sub(1, 2) == "\31\139")
        local opts = fmt == "csv" and " (format csv, header)" or ""
        if gz then
          psql_copy("\\copy sink_spec.sink_t from stdin" .. opts, "zcat " .. H.q(path))
        else
          psql_copy("\\copy sink_spec.sink_t from " .. H.q(path) .. opts)
        end
        assert.are.same(rows, table_rows(db))
        os.remove(path)
      end)
    end
  end

  it("writes exactly what a COPY stream sends (same encoders)", function()
    -- the same rows through db:copy (CSV) and through a sink: the loaded
    -- tables match, and the sink's CSV parses back with the CSV reader
    local rows = nasty_rows()
    local cp = db:copy("sink_t", COLS, { format = "csv" })
    cp:rows(rows)
    cp:finish()
    local via_copy = table_rows(db)
    db:exec("TRUNCATE sink_t")
    local path = tmp("same.csv")
    local s = sluice.sink.file(path, { columns = COLS, types = TYPES })
    s:rows(rows)
    s:finish()
    db:copy_from_file("sink_spec.sink_t", path)
    assert.are.same(via_copy, table_rows(db))
    local n = 0
    for row in sluice.csv.rows(path, { null = "" }) do
      n = n + 1
      assert.are.equal(tostring(rows[n][1]), row.id)
      assert.are.equal(rows[n][2], row.s)
    end
    assert.are.equal(#rows, n)
    os.remove(path)
  end)

  it("encodes untyped values by their Lua type", function()
    local path = tmp("untyped.txt")
    local s = sluice.sink.file(path, { format = "text", columns = { "a", "b", "c" } })
    s:row(1, 0.1, true)
    s:row(-2.5, 2^53, false)
    s:row(nil, NULL, { 1, "x y", { "n\"q" } })
    s:row(ffi.new("int64_t", 9007199254740993LL), "t\tab", "")
    s:finish()
    assert.are.equal("1\t0.1\ttrue\n-2.5\t9007199254740992\tfalse\n"
                     .. "\\N\t\\N\t{1,\"x y\",{\"n\\\\\"q\"}}\n"
                     .. "9007199254740993\tt\\tab\t\n", slurp(path))
    os.remove(path)
  end)

  it("honours delimiter and null, and keeps values that look like NULL", function()
    db:exec("CREATE TABLE sink_dn (id int, s text)")
    local path = tmp("dn.csv")
    local s = sluice.sink.file(path, { columns = { "id", "s" }, delimiter = ";",
                                       null = "NULL" })
    s:row(1, "NULL")
    s:row(2, NULL)
    s:row(3, "a;b")
    s:row(4, "")
    s:finish()
    assert.are.equal('id;s\n1;"NULL"\n2;NULL\n3;"a;b"\n4;""\n', slurp(path))
    psql_copy("\\copy sink_spec.sink_dn from " .. H.q(path)
              .. " (format csv, header, delimiter ';', null 'NULL')")
    local got = db:query("select id, s from sink_dn order by id")
    assert.are.same({ "NULL", NULL, "a;b", "" },
                    { got[1].s, got[2].s, got[3].s, got[4].s })
    os.remove(path)

    -- text format: a custom delimiter is escaped; a value equal to the
    -- NULL text cannot be told apart, so it is an error
    path = tmp("dn.txt")
    s = sluice.sink.file(path, { format = "text", columns = { "id", "s" },
                                 delimiter = "|", null = "" })
    s:row(1, "a|b")
    s:row(2, NULL)
    local ok, err = pcall(s.row, s, 3, "")
    assert.is_false(ok)
    assert.matches("row 3, column \"s\" %(untyped%): the value's text is the "
                   .. "sink's NULL text", err)
    assert.are.equal("failed", s.state)
    assert.is_false(exists(path))
  end)

  it("quotes numbers, booleans and int64 that hold a custom CSV delimiter", function()
    db:exec("CREATE TABLE sink_dd (n float8, i int8, b bool, t timestamp, s text)")
    local cols = { "n", "i", "b", "t", "s" }
    local types = { "float8", "int8", "bool", "timestamp", "text" }
    -- the first row's file text per delimiter: a field holding it is quoted
    for _, c in ipairs {
      { ".", '"1.5".-2.t.1970-01-01 00:00:00."x.y"\n"-0.25".9007199254740993.f.'
             .. '"2023-11-14 22:13:20.5".\n' },
      { " ", '1.5 -2 t "1970-01-01 00:00:00" x.y\n-0.25 9007199254740993 f '
             .. '"2023-11-14 22:13:20.5" \n' },
      { "-", '1.5-"-2"-t-"1970-01-01 00:00:00"-x.y\n"-0.25"-9007199254740993-f-'
             .. '"2023-11-14 22:13:20.5"-\n' },
      { "t", '1.5t-2t"t"t1970-01-01 00:00:00tx.y\n-0.25t9007199254740993tft'
             .. '2023-11-14 22:13:20.5t\n' },
      { "1", '"1.5"1-21t1"1970-01-01 00:00:00"1x.y\n-0.251"9007199254740993"1f1'
             .. '"2023-11-14 22:13:20.5"1\n' },
      { ":", '1.5:-2:t:"1970-01-01 00:00:00":x.y\n-0.25:9007199254740993:f:'
             .. '"2023-11-14 22:13:20.5":\n' },
    } do
      local d = c[1]
      local path = tmp("dd.csv")
      local s = sluice.sink.file(path, { columns = cols, types = types,
                                         delimiter = d, header = false })
      s:row(1.5, -2, true, 0, "x.y")
      s:row(-0.25, 9007199254740993LL, false, 1700000000.5, NULL)
      assert.are.equal(2, s:finish())
      assert.are.equal(c[2], slurp(path), d)
      db:exec("TRUNCATE sink_dd")
      psql_copy("\\copy sink_spec.sink_dd from " .. H.q(path)
                .. " (format csv, delimiter '" .. d .. "')")
      local got = db:query("select n, i::text, b, t::text, s from sink_dd order by n desc")
      assert.are.same({ { n = 1.5, i = "-2", b = true, t = "1970-01-01 00:00:00", s = "x.y" },
                        { n = -0.25, i = "9007199254740993", b = false,
                          t = "2023-11-14 22:13:20.5", s = NULL } }, got, d)
      os.remove(path)
    end
  end)

  it("writes to standard output with \"-\"", function()
    local code = [[
      local sluice = require "sluice"
      io.write("")
      local s = sluice.sink.file("-", {format = "text", columns = {"id", "s"}})
      s:row(1, "tab\there")
      s:row(2, sluice.null)
      s:row(3, "new\nline")
      io.stderr:write(s:finish(), " rows\n")
    ]]
    local rc, out, err = H.sluice("-e " .. H.q(code))
    assert.are.equal(0, rc, err)
    assert.are.equal("1\ttab\\there\n2\t\\N\n3\tnew\\nline\n", out)
    assert.are.equal("3 rows\n", err)
    -- gzip to stdout, loaded by psql through zcat
    db:exec("CREATE TABLE sink_out (id int, s text)")
    local path = tmp("stdout.gz")
    code = code:gsub('format = "text"', 'format = "csv", gzip = true')
    rc, out, err = H.sluice("-e " .. H.q(code))
    assert.are.equal(0, rc, err)
    write(path, out)
    psql_copy("\\copy sink_spec.sink_out from stdin (format csv, header)",
              "zcat " .. H.q(path))
    local got = db:query("select id, s from sink_out order by id")
    assert.are.same({ "tab\there", NULL, "new\nline" }, { got[1].s, got[2].s, got[3].s })
    os.remove(path)
  end)

  it("raises a write error with the path (disk full)", function()
    local s = sluice.sink.file("/dev/full", { columns = { "a" } })
    local ok, err = pcall(function()
      for i = 1, 100000 do s:row(i) end
      s:finish()
    end)
    assert.is_false(ok)
    assert.matches("/dev/full: No space left on device", err)
    assert.are.equal("failed", s.state)
    ok, err = pcall(s.row, s, 1)
    assert.is_false(ok)
    assert.matches("the sink failed earlier", err)
  end)

  it("raises a write error found only when the output is closed, plain or gzip", function()
    -- one row stays in the buffers until finish(): the write and the
    -- gzip trailer happen there
    for _, gz in ipairs { false, true } do
      local s = sluice.sink.file("/dev/full", { columns = { "a" }, gzip = gz })
      s:row(1)
      local ok, err = pcall(s.finish, s)
      assert.is_false(ok)
      assert.matches("/dev/full: No space left on device", err)
      assert.are.equal("failed", s.state)
    end
  end)

  it("raises EPIPE when the reader of standard output goes away", function()
    local errf = tmp("epipe.err")
    local code = [[
      local s = require("sluice").sink.file("-", {columns = {"a"}})
      for i = 1, 2000000 do s:row(i) end
      s:finish()
    ]]
    local rc = H.run("sh -c " .. H.q(H.q(H.exe) .. " -e " .. H.q(code) .. " 2>"
                                     .. H.q(errf) .. " | head -c 10 >/dev/null"))
    assert.are.equal(0, rc)
    assert.matches("%-: Broken pipe", slurp(errf))
    os.remove(errf)
  end)

  it("never leaves a half-written file under the path", function()
    local path = tmp("keep.csv")
    write(path, "old contents\n")
    -- abort: the old file stays, no temporary file is left
    local s = sluice.sink.file(path, { columns = { "a" } })
    s:row(1)
    s:flush()
    assert.is_true(s:abort())
    assert.is_false(s:abort())
    assert.are.equal("old contents\n", slurp(path))
    -- a bad value ends the sink the same way
    s = sluice.sink.file(path, { columns = { "a" } })
    s:row("fine")
    local ok, err = pcall(s.row, s, "nul\0byte")
    assert.is_false(ok)
    assert.matches("NUL byte", err)
    assert.are.equal("old contents\n", slurp(path))
    -- dropped unfinished: the garbage collector discards it
    s = sluice.sink.file(path, { columns = { "a" } })
    for i = 1, 50000 do s:row(i) end
    assert.are.equal(1, #leftovers(TAG .. "-keep.csv.sluice-"))
    s = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.are.same({}, leftovers(TAG .. "-keep.csv.sluice-"))
    assert.are.equal("old contents\n", slurp(path))
    -- finish replaces it
    s = sluice.sink.file(path, { columns = { "a" }, header = false })
    s:row(7)
    assert.are.equal(1, s:finish())
    assert.are.equal("7\n", slurp(path))
    ok, err = pcall(s.row, s, 1)
    assert.is_false(ok)
    assert.matches("row: the sink is already finished", err)
    os.remove(path)
  end)

  it("checks its arguments", function()
    local function err_of(path, opts)
      -- called from a Lua function here, so errors carry this file's line
      local ok, err = pcall(function() local s = sluice.sink.file(path, opts); return s end)
      assert.is_false(ok)
      return err
    end
    assert.matches("sink_spec.lua:%d+: sink.file: columns must be",
                   err_of(tmp("x"), {}))
    assert.matches("unknown option 'colums'", err_of(tmp("x"), { colums = { "a" } }))
    assert.matches("format must be", err_of(tmp("x"), { columns = { "a" }, format = "binary" }))
    assert.matches("unknown type 'money'",
                   err_of(tmp("x"), { columns = { "a" }, types = { "money" } }))
    assert.matches("delimiter must be one byte",
                   err_of(tmp("x"), { columns = { "a" }, delimiter = "\\" }))
    -- a one-column NULL row would be the end-of-data line "\."
    for _, fmt in ipairs { "text", "csv" } do
      assert.matches("sink.file: null must not begin with \\. (a row of one NULL would be the "
                     .. "end-of-data line)", err_of(tmp("x"), { columns = { "a" }, format = fmt,
                                                              null = "\\.x" }), 1, true)
    end
    assert.matches("sink_spec.lua:%d+: " .. DIR .. "/nope/x.csv: cannot create: "
                   .. "No such file or directory", err_of(DIR .. "/nope/x.csv",
                                                          { columns = { "a" } }))
    local s = sluice.sink.file(tmp("count.csv"), { columns = { "a", "b" } })
    local ok, err = pcall(s.row, s, 1)
    assert.is_false(ok)
    assert.matches("row 1: expected 2 values %(a, b%), got 1", err)
  end)
end)
