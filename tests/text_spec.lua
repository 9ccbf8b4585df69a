-- sluice.text's per-row helpers (their results, checked against what
-- PostgreSQL gives the same input, and that a loop calling each one stays
-- compiled), and db:copy's / sluice.load's layouts option.
local H = require "helper"
local sluice = require "sluice"

local text = sluice.text
local NULL = sluice.null

-- A script's loops under jit.v: the script text is built from `loops`
-- ({ name, body } where body is one line of Lua using `s` (the i-th
-- input string) and `out`), each loop on its own line; returns the jit.v
-- output and the line of each loop.
local function jit_run(setup, loops)
  local tmp = os.tmpname()
  local script = tmp .. ".lua"
  local lines = {
    "local sluice = require 'sluice'",
    "local text = sluice.text",
    setup,
    "require('jit.v').start(" .. ("%q"):format(tmp) .. ")",
  }
  local at = {}
  for _, l in ipairs(loops) do
    lines[#lines + 1] = ("for i = 1, 200000 do local s = IN[i %% #IN + 1]; %s end"):format(l[2])
    local _, nl = table.concat(lines, "\n"):gsub("\n", "")
    at[l[1]] = nl + 1
  end
  lines[#lines + 1] = "require('jit.v').off()"
  H.write(script, table.concat(lines, "\n") .. "\n")
  local code, _, err = H.sluice(H.q(script))
  local out = H.slurp(tmp)
  os.remove(tmp); os.remove(script)
  assert(code == 0, err)
  return out, at, script:match("[^/]+$")
end

-- How LuaJIT ran the loop at `line` (jit.v output): "compiled" (a looping
-- trace, stopped at no function LuaJIT does not compile, and no trace of
-- it or of its side traces aborted), "stitched", "aborted" or "none".  A
-- side trace may stitch (a rare path: a COPY's flush every 64 KiB).
local function loop_state(out, name, line)
  local esc = name:gsub("%p", "%%%0")
  local here = esc .. ":" .. line .. " "
  local root, stitched, aborted = {}, false, false
  for l in out:gmatch("[^\n]+") do
    local n = l:match("^%[TRACE%s+(%d+) " .. here)
    if n then root[n] = true end
  end
  for l in out:gmatch("[^\n]+") do
    local parent = l:match("^%[TRACE%s+%d+ %((%d+)/")
    if l:find("^%[TRACE%s+%d+ " .. here .. "stitch ") then stitched = true end
    -- a trace that starts elsewhere (in a helper that got hot first) and
    -- runs into the loop may abort: which code gets hot first depends on
    -- where LuaJIT's hot counters land (as in jit_spec.lua)
    if l:find("^%[TRACE %-%-%- " .. here) or (l:find("^%[TRACE %-%-%- ") and parent and root[parent]) then
      aborted = true
    end
  end
  local looped = out:find("%[TRACE%s+%d+ " .. here .. "loop%]")
  if aborted then return "aborted" end
  if stitched then return "stitched" end
  return looped and "compiled" or "none"
end

describe("sluice.text", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "text_spec")
    db:exec("set timezone = 'UTC'")
  end)
  teardown(function()
    db:exec("drop schema text_spec cascade")
    db:close()
  end)

  describe("date and timestamp layouts", function()
    -- { our layout, PostgreSQL's to_date/to_timestamp format, inputs }
    local CASES = {
      { "MM/DD/YYYY", "MM/DD/YYYY", { "03/07/2024", "3/7/2024", "12/31/1999", "02/29/2000" } },
      { "DD.MM.YYYY HH:MI", "DD.MM.YYYY HH24:MI", { "07.03.2024 14:05", "1.1.2001 0:00" } },
      { "YYYY-MM-DD", "YYYY-MM-DD", { "2024-03-07", "0001-01-01", "9999-12-31" } },
      { "YYYYMMDD", "YYYYMMDD", { "20240307", "19700101" } },
      { "DD/MM/YY", "DD/MM/YY", { "07/03/24", "31/12/69", "01/01/70", "15/06/99", "01/01/00" } },
      { "YYYY-MM-DD HH24:MI:SS", "YYYY-MM-DD HH24:MI:SS", { "2024-03-07 23:59:59", "1999-01-08 04:05:06" } },
      { "MM/DD/YYYY HH:MI:SS AM", "MM/DD/YYYY HH12:MI:SS AM",
        { "03/07/2024 12:00:00 AM", "03/07/2024 12:30:00 PM", "03/07/2024 1:05:09 PM", "03/07/2024 11:59:59 am" } },
      { "YYYY-MM-DD\"T\"HH24:MI:SS.FF", "YYYY-MM-DD\"T\"HH24:MI:SS.US",
        { "2024-03-07T01:02:03.5", "2024-03-07T01:02:03.000001", "2024-03-07T01:02:03.123456" } },
    }

    it("give the epoch seconds PostgreSQL's to_date / to_timestamp give the same text", function()
      for _, c in ipairs(CASES) do
        local d, ts = text.date_layout(c[1]), text.timestamp_layout(c[1])
        for _, s in ipairs(c[3]) do
          local want = db:query_one("select extract(epoch from to_date($1, $2))::float8 as d, "
            .. "extract(epoch from to_timestamp($1, $2))::float8 as ts", s, c[2])
          assert.are.equal(want.d, d(s), c[1] .. " " .. s)
          assert.are.equal(want.ts, ts(s), c[1] .. " " .. s)
          assert.are.equal(want.d, text.date(s, c[1]))
          assert.are.equal(want.ts, text.timestamp(s, c[1]))
        end
      end
    end)

    it("give ISO text the server reads back to the same value", function()
      for _, c in ipairs(CASES) do
        local d, ts = text.date_layout(c[1], "iso"), text.timestamp_layout(c[1], "iso")
        for _, s in ipairs(c[3]) do
          local want = db:query_one("select to_date($1, $2)::text as d, "
            .. "to_timestamp($1, $2)::timestamp::text as ts", s, c[2])
          assert.are.equal(want.d, db:query_one("select $1::date::text as v", d(s)).v)
          assert.are.equal(want.ts, db:query_one("select $1::timestamp::text as v", ts(s)).v)
        end
      end
      assert.are.equal("2024-03-07", text.date_layout("MM/DD/YYYY HH24:MI", "iso")("03/07/2024 13:00"))
      assert.are.equal("2024-03-07 13:00:00",
                       text.timestamp_layout("MM/DD/YYYY HH24:MI", "iso")("03/07/2024 13:00"))
    end)

    it("read two-digit years as the server does: 70-99 are 19xx, 00-69 20xx", function()
      local p = text.date_layout("MM/DD/YY", "iso")
      for _, yy in ipairs { "00", "01", "49", "68", "69", "70", "71", "99" } do
        local s = "01/02/" .. yy
        db:exec("set datestyle = 'ISO, MDY'")
        local server = db:query_one("select $1::date::text as v", s)
        assert.are.equal(server.v, p(s), s)
      end
      db:exec("reset datestyle")
    end)

    it("read 24:00 and :60 as the server reads them", function()
      local p = text.timestamp_layout("YYYY-MM-DD HH24:MI:SS")
      for _, s in ipairs { "2016-12-31 24:00:00", "2016-12-31 23:59:60" } do
        local want = db:query_one("select extract(epoch from $1::timestamp)::float8 as v", s).v
        assert.are.equal(want, p(s), s)
      end
      -- a date ignores the time, as date_in does
      local want = db:query_one("select extract(epoch from '2016-12-31 24:00:00'::date)::float8 as v").v
      assert.are.equal(want, text.date("2016-12-31 24:00:00", "YYYY-MM-DD HH24:MI:SS"))
    end)

    it("refuse what the server refuses, with its SQLSTATE: 22008 out of range, 22007 bad form",
       function()
      local p = text.date_layout("MM/DD/YYYY")
      for _, c in ipairs {
        { "02/30/2020", "2020-02-30" }, { "02/29/2023", "2023-02-29" }, { "13/01/2020", "2020-13-01" },
        { "04/31/2020", "2020-04-31" }, { "00/10/2020", "2020-00-10" },
      } do
        local v, err = p(c[1])
        assert.is_nil(v)
        assert.is_true(sluice.is_error(err))
        local server = H.error_of(db.query, db, "select $1::date", c[2])
        assert.are.equal(server.sqlstate, err.sqlstate, c[1])
        assert.are.equal("22008", err.sqlstate)
        assert.are.equal(('date/time field value out of range: "%s" (layout MM/DD/YYYY)'):format(c[1]),
                         err.message)
      end
      for _, s in ipairs { "2020-02-03", "03/07/24", "03/07/2024 ", " 03/07/2024", "3/7/20245", "03.07.2024",
                           "aa/bb/cccc", "", "03/07/2024\0" } do
        local v, err = p(s)
        assert.is_nil(v, s)
        assert.are.equal("22007", err.sqlstate, s)
        assert.truthy(err.message:find("invalid input syntax for type date: ", 1, true), err.message)
      end
      local _, err = text.timestamp_layout("DD.MM.YYYY HH:MI")("07.03.2024 25:00")
      assert.are.equal("22008", err.sqlstate)
      _, err = text.timestamp_layout("MM/DD/YYYY HH:MI AM")("03/07/2024 13:00 PM")
      assert.are.equal("22008", err.sqlstate)
      _, err = text.timestamp_layout("DD.MM.YYYY HH:MI", "iso")("07.03.2024 14:5x")
      assert.are.equal("invalid input syntax for type timestamp: \"07.03.2024 14:5x\" (layout DD.MM.YYYY HH:MI)",
                       err.message)
    end)

    it("pass NULL through and refuse other values and bad layouts at the caller's line", function()
      local p = text.date_layout("MM/DD/YYYY")
      assert.is_nil(p(nil))
      assert.are.equal(NULL, p(NULL))
      local err = H.error_of(p, 20240307)
      assert.truthy(err:find("sluice.text.date: expected a string, got number", 1, true), err)
      err = H.error_of(text.date_layout, "MM/DD/YYYYT")
      assert.truthy(err:find([[sluice.text.date_layout: layout "MM/DD/YYYYT": "T" at byte 11 begins no ]]
                             .. "layout token", 1, true), err)
      err = H.error_of(text.timestamp_layout, "HH24:MI:SS")
      assert.truthy(err:find("a layout needs a year (YYYY or YY), a month (MM) and a day (DD)", 1, true), err)
      err = H.error_of(text.timestamp_layout, "MM/DD/YYYY HH24:MI AM")
      assert.truthy(err:find("HH24 is a 24-hour clock", 1, true), err)
      err = H.error_of(text.date, "01/01/2020", 5)
      assert.truthy(err:find("the layout must be a string, got number", 1, true), err)
      err = H.error_of(text.date_layout, "MM/DD/YYYY", "text")
      assert.truthy(err:find([[as must be "epoch" or "iso", got text]], 1, true), err)
    end)
  end)

  describe("string helpers", function()
    it("trim spaces, tabs and line ends at both ends only", function()
      assert.are.equal("a b", text.trim("  a b \t\r\n"))
      assert.are.equal("a", text.trim("a"))
      assert.are.equal("", text.trim("   "))
      assert.are.equal("", text.trim(""))
      assert.are.equal("\0x\0", text.trim(" \0x\0 "))
      for _, s in ipairs { " x ", "\tx", "x\n", "\v\fx\r", "  x y  " } do
        assert.are.equal(s:match("^%s*(.-)%s*$"), text.trim(s))
      end
    end)

    it("lower and upper ASCII letters only", function()
      assert.are.equal("user@example.com", text.lower("User@Example.COM"))
      assert.are.equal("éCOLE", text.upper("école"))     -- é (not ASCII) stays as it is
      assert.are.equal("École", text.lower("ÉCOLE"))
      assert.are.equal(NULL, text.lower(NULL))
    end)

    it("split_at, before and after the first separator, nil when there is none", function()
      assert.are.same({ "user", "example.com" }, { text.split_at("user@example.com", "@") })
      assert.are.same({ "a", "b@c" }, { text.split_at("a@b@c", "@") })
      assert.are.same({ "", "" }, { text.split_at("@", "@") })
      assert.are.same({ "k", "v" }, { text.split_at("k::v", "::") })
      assert.are.same({ "a.", "" }, { text.split_at("a.%", "%") }) -- no pattern
      assert.is_nil(text.split_at("abc", "@"))
      assert.are.equal("user", text.before("user@x", "@"))
      assert.are.equal("x", text.after("user@x", "@"))
      assert.is_nil(text.before("user", "@"))
      assert.is_nil(text.after("user", "@"))
      assert.is_nil(text.after(nil, "@"))
      local err = H.error_of(text.after, "a@b", "")
      assert.truthy(err:find("sluice.text.after: the separator must be a non-empty string", 1, true), err)
      err = H.error_of(text.split_at, {}, "@")
      assert.truthy(err:find("sluice.text.split_at: expected a string, got table", 1, true), err)
    end)

    it("read numbers with grouping and a decimal comma as the server's to_number does", function()
      for _, c in ipairs {
        { "1.234,56", true, "9G999D99" }, { "1,234.56", false, "9G999D99" },
        { "-1.234.567,5", true, "S9G999G999D9" }, { "1234,5", true, "9999D9" }, { "0,25", true, "9D99" },
      } do
        -- to_number in the C locale: G is ',' and D is '.'
        db:exec("set lc_numeric = 'C'")
        local swapped = c[1]:gsub("[.,]", { ["."] = ",", [","] = "." })
        local want = db:query_one("select to_number($1, $2)::float8 as v", c[2] and swapped or c[1], c[3]).v
        assert.are.equal(want, text.number(c[1], c[2]), c[1])
      end
      assert.are.equal(1234.5, text.number(" 1,234.5 "))
      assert.are.equal(1000, text.number("1e3"))
      assert.are.equal(0.1, text.number("0.1"))
      assert.are.equal(tonumber("123.456789"), text.number("123.456789"))
      assert.are.equal(42, text.number(42))
      for _, s in ipairs { "1,5", "12,34", "1,2345", ",123", "", " ", "-", "abc", "1e", "inf", "nan",
                           "0x10", "1 000", "1.5.6" } do
        assert.is_nil(text.number(s), s)
      end
      assert.are.equal(1.5, text.number("1,5", true))
      assert.is_nil(text.number("1.5", true))
      assert.are.equal(NULL, text.number(NULL))
    end)
  end)

  describe("in compiled loops", function()
    it("each helper's loop compiles; string.match's does not", function()
      local loops = {
        { "date_layout", "out[i] = us(s)" },
        { "timestamp_layout", "out[i] = eu(s .. ' 14:05')" },
        { "date", "out[i] = text.date(s, 'MM/DD/YYYY')" },
        { "iso", "out[i] = iso(s)" },
        { "trim", "out[i] = text.trim(pad[i % 2 + 1] .. s)" },
        { "lower", "out[i] = text.lower(s)" },
        { "upper", "out[i] = text.upper(s)" },
        { "split_at", "local a, b = text.split_at(s, '/'); out[i] = b" },
        { "before", "out[i] = text.before(s, '/')" },
        { "after", "out[i] = text.after(s, '/')" },
        { "number", "out[i] = text.number(nums[i % 3 + 1], true) or 0" },
        { "control", "out[i] = s:match('^(%d+)/')" },
      }
      local out, at, name = jit_run([[
        IN = {}
        for i = 1, 500 do IN[i] = ("%02d/%02d/%04d"):format(i % 12 + 1, i % 28 + 1, 1950 + i % 80) end
        local us = text.date_layout("MM/DD/YYYY")
        local eu = text.timestamp_layout("MM/DD/YYYY HH24:MI")
        local iso = text.date_layout("MM/DD/YYYY", "iso")
        local pad = { " ", "" }
        local nums = { "1.234,5", "12", "x" }
        local out = {}]], loops)
      for _, l in ipairs(loops) do
        local want = l[1] == "control" and "stitched" or "compiled"
        assert.are.equal(want, loop_state(out, name, at[l[1]]), l[1] .. "\n" .. out)
      end
    end)

    it("a COPY loop with layouts compiles, in binary and text", function()
      local loops = {
        { "binary", "cpb:row(i, s, s .. ' 1:05 PM', s)" },
        { "text", "cpt:row(i, s, s .. ' 1:05 PM', s)" },
      }
      local out, at, name = jit_run(([[
        IN = {}
        for i = 1, 500 do IN[i] = ("%%02d/%%02d/%%04d"):format(i %% 12 + 1, i %% 28 + 1, 1950 + i %% 80) end
        local db = sluice.connect(%q)
        db:exec("create temp table t (n int, d date, ts timestamp, tz timestamptz)")
        local L = { layouts = { d = "MM/DD/YYYY", ts = "MM/DD/YYYY HH:MI AM", tz = "MM/DD/YYYY" } }
        L.format = "binary"
        local cpb = db:copy("t", L)
        local lt = { layouts = L.layouts, format = "text" }
        local cpt]]):format(H.url()), {
        { "binary", loops[1][2] },
        { "text", "if i == 1 then assert(cpb:finish() == 200000); cpt = db:copy('t', lt) end; "
                  .. loops[2][2] },
      })
      for _, l in ipairs(loops) do
        assert.are.equal("compiled", loop_state(out, name, at[l[1]]), l[1] .. "\n" .. out)
      end
    end)
  end)

  describe("db:copy layouts", function()
    before_each(function()
      db:exec("drop table if exists lt; create table lt (n int, d date, ts timestamp, tz timestamptz)")
    end)

    local L = { d = "MM/DD/YYYY", ts = "DD.MM.YYYY HH:MI", tz = "YYYYMMDD HH12:MI:SS AM" }
    local ROWS = {
      { 1, "03/07/2024", "07.03.2024 14:05", "20240307 1:05:09 PM" },
      { 2, "2/29/2000", "1.1.2001 0:00", "19991231 12:00:00 AM" },
      { 3, 86400, 0.5, NULL },          -- epoch seconds pass as they do without a layout
      { 4, NULL, nil, "20240307 12:59:59 PM" },
    }

    local function expected()
      -- what the server makes of the same text by its own formats
      local t = {}
      for i, r in ipairs(ROWS) do
        t[i] = db:query_one([[select case when $1::text ~ '/' then to_date($1, 'MM/DD/YYYY')::text
                                          else to_timestamp($1::float8)::date::text end as d,
                                     case when $2::text ~ ':' then to_timestamp($2, 'DD.MM.YYYY HH24:MI')::timestamp::text
                                          else to_timestamp($2::float8)::timestamp::text end as ts,
                                     to_timestamp($3, 'YYYYMMDD HH12:MI:SS AM')::text as tz]],
                            r[2] == NULL and NULL or tostring(r[2]),
                            r[3] == nil and NULL or tostring(r[3]), r[4])
      end
      return t
    end

    local function stored()
      local t = {}
      for i, r in ipairs(db:query("select d::text, ts::text, tz::text from lt order by n")) do
        t[i] = { d = r.d, ts = r.ts, tz = r.tz }
      end
      return t
    end

    for _, format in ipairs { "binary", "text", "csv" } do
      it("reads strings by the column's layout in C (" .. format .. ")", function()
        local cp = db:copy("lt", { format = format, layouts = L })
        assert.is_not_nil(require("sluice.copy").fast_rows[cp])
        for _, r in ipairs(ROWS) do cp:row(r[1], r[2], r[3], r[4]) end
        assert.are.equal(#ROWS, cp:finish())
        assert.are.same(expected(), stored())
        -- cp:rows (the C encoders) store the same
        db:exec("truncate lt")
        cp = db:copy("lt", { format = format, layouts = L })
        local list = {}
        for i, r in ipairs(ROWS) do list[i] = { r[1], r[2], r[3] == nil and NULL or r[3], r[4] } end
        cp:rows(list)
        cp:finish()
        assert.are.same(expected(), stored())
      end)

      it("refuses a value its layout does not read, naming row, column, value and layout (" .. format
         .. ")", function()
        for _, c in ipairs {
          { "02/30/2024", "22008", 'row 2, column "d" (date): expected a date in the layout MM/DD/YYYY whose '
            .. 'fields are in range (month 1-12, a day of that month, hour 0-24, minute 0-59, second 0-60), '
            .. 'got string "02/30/2024"' },
          { "2024-03-07", "22007", 'row 2, column "d" (date): expected a date in the layout MM/DD/YYYY, got '
            .. 'string "2024-03-07"' },
        } do
          db:exec("truncate lt")
          local cp = db:copy("lt", { "n", "d" }, { format = format, layouts = { d = "MM/DD/YYYY" } })
          cp:row(1, "01/01/2024")
          local err = H.error_of(cp.row, cp, 2, c[1])
          assert.are.equal(c[2], err.sqlstate)
          assert.are.equal(c[3], err.message)
          assert.are.equal("d", err.column)
          assert.are.equal("failed", cp.state)
          assert.are.equal(0, H.count(db, "lt"))
          -- the C path, the same
          cp = db:copy("lt", { "n", "d" }, { format = format, layouts = { d = "MM/DD/YYYY" } })
          local err2 = H.error_of(cp.rows, cp, { { 1, "01/01/2024" }, { 2, c[1] } })
          assert.are.equal(c[3], err2.message)
        end
        local cp = db:copy("lt", { "n", "ts" }, { format = format, layouts = { ts = "DD.MM.YYYY HH:MI" } })
        local err = H.error_of(cp.row, cp, 1, "07.03.2024 24:30")
        assert.are.equal("22008", err.sqlstate)
        assert.truthy(err.message:find('column "ts" (timestamp without time zone): expected a timestamp in the '
                                       .. 'layout DD.MM.YYYY HH:MI whose', 1, true), err.message)
      end)

      it("sets refused rows aside in reject mode (" .. format .. ")", function()
        local got = {}
        local cp = db:copy("lt", { "n", "d" }, { format = format, layouts = { d = "MM/DD/YYYY" },
          on_reject = function(values, err, row) got[#got + 1] = { row, values[2], err.sqlstate } end })
        for i = 1, 1000 do
          cp:row(i, i == 10 and "02/30/2024" or i == 500 and "2024-01-01" or ("%d/%d/2024"):format(i % 12 + 1, 1))
        end
        assert.are.equal(998, cp:finish())
        assert.are.same({ { 10, "02/30/2024", "22008" }, { 500, "2024-01-01", "22007" } }, got)
        assert.are.equal(998, H.count(db, "lt"))
        assert.are.equal(0, db:query_one("select count(*)::int as c from lt where d <> make_date(2024, n % 12 + 1, 1)").c)
      end)
    end

    it("are refused for columns that are no date or timestamp, unknown columns and bad layouts", function()
      for _, c in ipairs {
        { { n = "MM/DD/YYYY" }, 'copy: layouts: column "n" (integer) is not a date or timestamp' },
        { { x = "MM/DD/YYYY" }, 'copy: layouts: "x" is not one of the columns loaded into "lt"' },
        { { d = "MM/DD" }, 'copy: layouts: column "d": layout "MM/DD": a layout needs a year' },
        { { d = 5 }, "copy: layouts must map column names to layout strings, got string = number" },
        { "MM/DD/YYYY", "copy: layouts must be a table { column = \"layout\" }, got string" },
      } do
        local err = H.error_of(db.copy, db, "lt", { layouts = c[1] })
        assert.truthy(err:find(c[2], 1, true), err)
      end
      db:exec("create table lt_arr (d date[])")
      local err = H.error_of(db.copy, db, "lt_arr", { layouts = { d = "MM/DD/YYYY" } })
      assert.truthy(err:find('column "d" (date[]) is not a date or timestamp', 1, true), err)
      assert.are.equal("idle", db:status())
    end)

    it("read a timestamptz's layout text as local time in the session TimeZone", function()
      db:exec("set timezone = 'America/New_York'")
      for _, format in ipairs { "binary", "text" } do
        db:exec("truncate lt")
        local cp = db:copy("lt", { "n", "tz" }, { format = format, layouts = { tz = "MM/DD/YYYY HH24:MI" } })
        cp:row(1, "07/01/2024 12:00")
        cp:row(2, "01/15/2024 12:00")
        cp:finish()
        local r = db:query("select (tz = '2024-07-01 12:00'::timestamptz and n = 1 or "
                           .. "tz = '2024-01-15 12:00'::timestamptz and n = 2) as ok from lt")
        assert.are.same({ true, true }, { r[1].ok, r[2].ok })
      end
      db:exec("set timezone = 'UTC'")
    end)
  end)

  describe("sluice.load layouts", function()
    before_each(function()
      db:exec("drop table if exists ll; create table ll (n int primary key, d date, ts timestamp)")
    end)

    local function rows(bad)
      local t = {}
      for i = 1, 50 do t[i] = { i, ("%d/%d/2024"):format(i % 12 + 1, i % 28 + 1), ("%d.%d.2024 %d:30"):format(
        i % 28 + 1, i % 12 + 1, i % 24) } end
      if bad then t[bad][2] = "02/30/2024" end
      return t
    end
    local LAY = { d = "MM/DD/YYYY", ts = "DD.MM.YYYY HH24:MI" }
    local CHECK = "select count(*)::int as c from ll where d = make_date(2024, n % 12 + 1, n % 28 + 1) "
                  .. "and ts = make_timestamp(2024, n % 12 + 1, n % 28 + 1, n % 24, 30, 0)"

    for _, st in ipairs { "copy_binary", "copy_text", "copy_csv", "batch", "pipeline", "rowwise_tx", "upsert",
                          "unlogged_staging" } do
      it("stores the same values and refusals with strategy " .. st, function()
        local s = sluice.load { db = db, table = "ll", rows = rows(), strategy = st, quiet = true, layouts = LAY }
        assert.are.equal(50, s.rows)
        assert.are.equal(50, db:query_one(CHECK).c)
        db:exec("truncate ll")
        local err = H.error_of(sluice.load, { db = db, table = "ll", rows = rows(7), strategy = st, quiet = true,
                                              layouts = LAY })
        assert.are.equal("22008", err.sqlstate)
        assert.truthy(err.message:find('row 7, column "d" (date): expected a date in the layout MM/DD/YYYY '
                                       .. 'whose fields are in range', 1, true), err.message)
        assert.truthy(err.message:find('got string "02/30/2024"', 1, true), err.message)
        assert.are.equal(0, H.count(db, "ll"))
        local got = {}
        s = sluice.load { db = db, table = "ll", rows = rows(7), strategy = st, quiet = true, layouts = LAY,
                          on_reject = function(values, e, row) got[#got + 1] = { row, values[2], e.sqlstate } end }
        assert.are.equal(49, s.loaded)
        assert.are.same({ { 7, "02/30/2024", "22008" } }, got)
        assert.are.equal(49, db:query_one(CHECK).c)
      end)
    end

    it("refuses layouts for other columns before loading anything", function()
      local err = H.error_of(sluice.load, { db = db, table = "ll", rows = rows(), strategy = "batch", quiet = true,
                                            layouts = { n = "YYYYMMDD" } })
      assert.truthy(err:find('load: layouts: column "n" (integer) is not a date or timestamp', 1, true), err)
      err = H.error_of(sluice.load, { db = db, table = "ll", rows = rows(), quiet = true,
                                      layouts = { zz = "YYYYMMDD" } })
      assert.truthy(err:find('load: layouts: "zz" is not among the columns (n, d, ts)', 1, true), err)
      err = H.error_of(sluice.load, { db = db, table = "ll", rows = rows(), quiet = true,
                                      layouts = { d = "YYYYMMD" } })
      assert.truthy(err:find('load: layouts: column "d": layout "YYYYMMD"', 1, true), err)
      assert.are.equal(0, H.count(db, "ll"))
    end)
  end)
end)
