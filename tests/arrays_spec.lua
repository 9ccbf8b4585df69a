-- luacheck: std +busted
-- A Lua table given for an array column must be a Lua array: keys 1..n
-- and nothing else.  A nil inside it (which makes # ambiguous) or a key
-- that is not an index used to be dropped silently ({1, nil, 3} stored
-- as {1}, {x = 1} as {}); now every path refuses such a table with the
-- same words, and sluice.null stays the way to write a NULL element.
local H = require "helper"
local sluice = require "sluice"
local null = sluice.null

local EXPECTED = "an array (a table with keys 1..n only: a NULL element must be sluice.null, not nil)"

-- tables whose border # may hide elements, or that are not arrays at all
local function bad_values()
  local holey = {}
  holey[1] = 1; holey[3] = 3
  local t = {
    { col = "a", v = { 1, nil, 3 } },
    { col = "a", v = holey },
    { col = "a", v = { x = 1 } },
    { col = "a", v = { 1, 2, x = 3 } },
    { col = "a", v = { [0] = 5, 1 } },
    { col = "a", v = { [1.5] = 1 } },
    { col = "m", v = { { 1, 2 }, { 3, nil, 5 } } },
    { col = "m", v = { { 1, 2 }, { 3, 4, k = 1 } } },
    { col = "f", v = { 1.5, nil, 2.5 } },
    { col = "s", v = { "a", nil, "c" } },
  }
  return t
end

describe("array values", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "arrays_spec")
    db:exec("create table arr (id int, a int[], m int[], f float8[], s text[])")
  end)
  teardown(function()
    db:exec("drop schema arrays_spec cascade")
    db:close()
  end)
  before_each(function() db:exec("truncate arr") end)

  local function row_for(case)
    local r = { 1, null, null, null, null }
    local at = { a = 2, m = 3, f = 4, s = 5 }
    r[at[case.col]] = case.v
    return r
  end

  local function count() return db:query_one("select count(*)::int as n from arr").n end

  local paths = {
    copy_binary = function(r)
      local cp = db:copy("arr", nil, { format = "binary" })
      cp:row(unpack(r, 1, 5)); cp:finish()
    end,
    copy_text = function(r)
      local cp = db:copy("arr", nil, { format = "text" })
      cp:row(unpack(r, 1, 5)); cp:finish()
    end,
    copy_csv = function(r)
      local cp = db:copy("arr", nil, { format = "csv" })
      cp:rows({ r }); cp:finish()
    end,
    batch = function(r)
      local b = db:batch("arr", { "id", "a", "m", "f", "s" })
      b:add(unpack(r, 1, 5)); b:close()
    end,
    pipeline = function(r)
      local pl = db:pipeline("insert into arr values ($1, $2, $3, $4, $5)")
      pl:send(unpack(r, 1, 5)); pl:close()
    end,
  }

  for name, load in pairs(paths) do
    it("refuses a table that is not an array: " .. name, function()
      for i, case in ipairs(bad_values()) do
        local ok, err = pcall(load, row_for(case))
        assert.is_false(ok, name .. " case " .. i)
        assert.matches(EXPECTED, tostring(err), 1, true)
        assert.are.equal(0, count(), name .. " case " .. i)
        if db:status() ~= "idle" then db:rollback() end
        assert.are.equal("idle", db:status())
      end
    end)

    it("loads arrays with sluice.null elements and empty arrays exactly: " .. name, function()
      load({ 1, { 1, null, 3 }, { { 1, null }, { 3, 4 } }, { 1.5, null, -2.25 }, { "a", null, "" } })
      load({ 2, {}, null, {}, { "x,y", "{}", "NULL" } })
      local got = {}
      for i, r in ipairs(db:query("select id, a::text, m::text, f::text, s::text from arr order by id")) do
        got[i] = table.concat({ r.id, tostring(r.a), tostring(r.m), tostring(r.f), tostring(r.s) }, " ")
      end
      assert.are.same({ '1 {1,NULL,3} {{1,NULL},{3,4}} {1.5,NULL,-2.25} {a,NULL,""}',
                        '2 {} ' .. tostring(null) .. ' {} {"x,y","{}","NULL"}' }, got)
    end)
  end

  it("refuses a table that is not an array in a file sink", function()
    local dir = H.tmpdir()
    for i, case in ipairs(bad_values()) do
      local s = sluice.sink.file(dir .. "/out.csv", { format = "csv", columns = { "a" }, types = { "int4[]" } })
      local ok, err = pcall(s.row, s, case.col == "a" and case.v or { 1, nil, 3 })
      assert.is_false(ok, "case " .. i)
      assert.matches(EXPECTED, tostring(err), 1, true)
    end
    os.execute("rm -rf " .. H.q(dir))
  end)

  -- the same slip one level up: a nil inside a list of rows ended it early
  it("refuses a list of rows with a nil inside (cp:rows, sluice.load, save_all) and loads nothing", function()
    local list = { { 1, null, null, null, null }, nil, { 3, null, null, null, null } }
    local cp = db:copy("arr")
    local ok, err = pcall(cp.rows, cp, list)
    assert.is_false(ok)
    assert.matches("rows: expected a list of rows (a table with keys 1..n only), got a table with a nil "
      .. "inside or a key that is not an index", tostring(err), 1, true)
    ok, err = pcall(cp.rows, db:copy("arr"), { { 1, nil, null, null, null } })
    assert.is_false(ok)
    assert.matches("row 1 (element 1 of the list): expected 5 values (id, a, m, f, s), got a table with a "
      .. "nil inside or a key that is not an index", tostring(err), 1, true)
    ok, err = pcall(sluice.load, { db = db, table = "arr", rows = list, quiet = true })
    assert.is_false(ok)
    assert.matches("load: rows must be a list with keys 1..n only (a nil inside it would end the load "
      .. "early), got a table with a nil inside", tostring(err), 1, true)
    ok, err = pcall(sluice.load, { db = db, table = "arr", rows = { list[1], x = list[1] }, quiet = true })
    assert.is_false(ok)
    assert.matches('got a table with key "x"', tostring(err), 1, true)
    local M = sluice.model { table = "arr", columns = { { "id", "int" } } }
    ok, err = pcall(M.save_all, M, db, { { id = 1 }, nil, { id = 3 } })
    assert.is_false(ok)
    assert.matches("save_all: the source must be a list with keys 1..n only", tostring(err), 1, true)
    assert.are.equal(0, count())
    assert.are.equal("idle", db:status())
  end)
end)
