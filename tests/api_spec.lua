-- The API of the objects as one place (lua/sluice/api.lua) assembles it:
-- every documented method and field is there, nothing private is
-- reachable from a script's object, and the types with fields keep a
-- Lua __index (LuaJIT compiles the loops that call their methods).
local H = require "helper"
local sluice = require "sluice"

-- Keys a script must never reach: the batch's private functions, and
-- the metamethods and names of a metatable (a table that is its own
-- __index hands them out).
local PRIVATE = {
  "_send", "_reset", "_release", "_values", "_state", "_counts",
  "__index", "__gc", "__tostring", "__call", "__name", "__mode", "__metatable",
}

local function check_private(obj, what)
  for _, k in ipairs(PRIVATE) do
    assert.is_nil(obj[k], what .. "." .. k)
  end
  -- and no "_" key in a methods table its __index reaches
  local idx = debug.getmetatable(obj).__index
  local tables = {}
  if type(idx) == "table" then
    tables[1] = idx
  else
    for i = 1, math.huge do
      local name, v = debug.getupvalue(idx, i)
      if not name then break end
      if type(v) == "table" then tables[#tables + 1] = v end
    end
  end
  assert.is_true(#tables > 0, what)
  for _, t in ipairs(tables) do
    for k in pairs(t) do
      if type(k) == "string" then
        assert.is_nil(k:match("^_"), what .. ": " .. k .. " is reachable")
      end
    end
  end
end

local function check_methods(obj, what, names)
  for _, k in ipairs(names) do
    assert.are.equal("function", type(obj[k]), what .. ":" .. k .. "()")
  end
end

local function check_fields(obj, what, fields)
  for k, ty in pairs(fields) do
    assert.are.equal(ty, type(obj[k]), what .. "." .. k)
  end
end

-- The types with read-only fields: __index is a Lua function.
local function check_lua_index(obj, what)
  local idx = debug.getmetatable(obj).__index
  assert.are.equal("function", type(idx), what)
  assert.are.equal("Lua", debug.getinfo(idx, "S").what, what)
end

local DB_METHODS = {
  "exec", "query", "query_one", "prepare", "status", "info", "quote_ident",
  "on_notice", "close", "is_closed", "begin", "commit", "rollback", "savepoint",
  "release", "rollback_to", "transaction", "quote_table", "copy", "copy_out",
  "batch", "pipeline", "upsert", "copy_from_file",
}

describe("the API of the objects", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "api")
    db:exec("create table t (a int primary key, b text)")
  end)
  teardown(function()
    db:exec("drop schema api cascade")
    db:close()
  end)

  it("a connection: every method, nothing private", function()
    check_methods(db, "db", DB_METHODS)
    check_private(db, "db")
    assert.are.equal("table", type(debug.getmetatable(db).__index))
    local st = db:prepare("select $1::int as x")
    check_methods(st, "stmt", { "query", "query_one", "exec", "close" })
    check_private(st, "stmt")
    st:close()
  end)

  it("a COPY stream: methods, fields, a Lua __index, nothing private", function()
    for _, format in ipairs { "binary", "text", "csv" } do
      local cp = db:copy("t", { "a", "b" }, { format = format })
      local what = "copy (" .. format .. ")"
      check_lua_index(cp, what)
      check_methods(cp, what, { "row", "rows", "flush", "finish", "abort" })
      check_fields(cp, what, {
        rows_sent = "number", bytes_sent = "number", buffered = "number",
        buffer_size = "number", chunk_size = "number", format = "string",
        state = "string", columns = "table",
      })
      assert.are.equal(format, cp.format)
      assert.are.same({ "a", "b" }, cp.columns)
      assert.is_nil(cp.path)
      check_private(cp, what)
      cp:row(1, "x")
      assert.are.equal(1, cp.rows_sent)
      assert.truthy(tostring(cp):find("^sluice%.copy %(open, " .. format .. ", 2 columns, 1 rows%)"))
      cp:abort()
      assert.are.equal("aborted", cp.state)
    end
  end)

  it("a COPY reader: methods, fields, a Lua __index, nothing private", function()
    local rd = db:copy_out("select 1, 2")
    check_lua_index(rd, "copy_out")
    check_methods(rd, "copy_out", { "close" })
    check_fields(rd, "copy_out", { rows = "number", state = "string" })
    check_private(rd, "copy_out")
    assert.are.same({ "1", "2" }, rd())
    assert.are.equal(1, rd.rows)
    rd:close()
    assert.are.equal("closed", rd.state)
  end)

  it("a batch: methods, fields, a Lua __index, nothing private", function()
    local b = db:batch("t", { "a", "b" })
    check_lua_index(b, "batch")
    check_methods(b, "batch", { "add", "poll", "flush", "close" })
    check_fields(b, "batch", {
      buffered = "number", rows_added = "number", buffered_bytes = "number",
      rows_per_statement = "number", statement = "string", state = "string",
      rows_committed = "number", rows_in_doubt = "number",
    })
    check_private(b, "batch")
    assert.is_nil(b._send)
    b:add(10, "x")
    assert.are.equal("sluice.batch (open, 2 columns, 1 rows buffered)", tostring(b))
    assert.are.equal(1, b:flush())
    assert.are.equal(1, b.rows_committed)
    assert.are.equal(0, b.rows_in_doubt)
    assert.are.equal(1, b:close())
    assert.are.equal("closed", b.state)
    assert.are.equal(1, b.rows_committed)
  end)

  it("a pipeline: methods, fields, a Lua __index, nothing private", function()
    local pl = db:pipeline("insert into t values ($1, $2)")
    check_lua_index(pl, "pipeline")
    check_methods(pl, "pipeline", { "send", "sync", "close", "abort" })
    check_fields(pl, "pipeline", {
      rows_sent = "number", rows_done = "number", rows_committed = "number",
      rows_in_doubt = "number", sync_every = "number", state = "string",
    })
    check_private(pl, "pipeline")
    pl:send(20, "y")
    assert.are.equal(1, pl:close())
  end)

  it("a CSV reader: methods, fields, a Lua __index, nothing private", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("a,b\n1,x\n")
    f:close()
    local r = sluice.csv.open(path)
    check_lua_index(r, "csv")
    check_methods(r, "csv", { "next", "close" })
    check_private(r, "csv")
    assert.are.same({ a = "1", b = "x" }, (r:next()))
    check_fields(r, "csv", { line = "number", offset = "number", header = "table" })
    assert.are.same({ "a", "b" }, r.header)
    r:close()
    os.remove(path)
  end)

  it("a file sink: the COPY stream's API and its path", function()
    local path = os.tmpname()
    local s = sluice.sink.file(path, { columns = { "a" } })
    check_lua_index(s, "sink")
    check_methods(s, "sink", { "row", "rows", "flush", "finish", "abort" })
    assert.are.equal(path, s.path)
    check_private(s, "sink")
    s:row(1)
    assert.are.equal(1, s:finish())
    os.remove(path)
  end)

  it("an upsert: its methods and state, nothing it works with", function()
    local up = db:upsert("t", { "a", "b" }, { key = "a" })
    check_methods(up, "upsert", { "row", "rows", "finish", "abort" })
    assert.are.equal("open", up.state)
    for _, k in ipairs { "db", "cp", "row_fn", "staging", "move_sql", "savepoint",
                         "__index" } do
      assert.is_nil(up[k], "upsert." .. k)
    end
    up:row(30, "z")
    assert.are.equal(1, (up:finish()))
    assert.are.equal("finished", up.state)
  end)

  it("the library keeps no state in an object's environment", function()
    local dir = H.root .. "/lua/sluice"
    local p = io.popen("ls " .. H.q(dir) .. "/*.lua")
    for file in p:lines() do
      local f = assert(io.open(file))
      local src = f:read("*a")
      f:close()
      assert.is_nil(src:find("getfenv", 1, true), file)
      assert.is_nil(src:find("debug.getregistry", 1, true), file)
    end
    p:close()
  end)

  it("lets a batch and its connection go when the script drops them", function()
    -- the batch's state holds the script's functions, which may hold the
    -- batch: that cycle must not keep either alive
    local gone = setmetatable({}, { __mode = "k" })
    local function make(close)
      local c = H.connect()
      local b
      b = c:batch("api.t", { "a", "b" }, {
        on_returning = function() return b end,
        on_reject = function() return b end,
      })
      gone[b], gone[c] = true, true
      if close then b:close() end
    end
    make(true)
    make(false)
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(gone))
  end)
end)
