-- Per-row loops over the streams must stay compilable by LuaJIT: a loop
-- that calls cp:row() (or b:add(), a sink's row()) gets a trace, so the
-- script's own per-row code in it is compiled too.
local H = require "helper"

describe("JIT", function()
  it("compiles a loop that calls a COPY stream's and a batch's methods", function()
    local tmp = os.tmpname()
    local script = tmp .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local sluice = require "sluice"
      local db = sluice.connect()
      db:exec("create temp table t(a int, b float8, c text)")
      require("jit.v").start("]] .. tmp .. [[")
      local cp = db:copy("t", {"a", "b", "c"}, {format = "binary"})
      for i = 1, 200000 do cp:row(i, i / 7, "x") end -- COPYLOOP
      assert(cp:finish() == 200000)
      local b = db:batch("t", {"a", "b", "c"}, {rows = 5000})
      for i = 1, 50000 do b:add(i, i * 0.5, "y") end -- BATCHLOOP
      b:close()
    ]])
    f:close()
    local code, _, err = H.sluice(H.q(script))
    assert.are.equal(0, code, err)
    f = assert(io.open(tmp)); local out = f:read("*a"); f:close()
    os.remove(tmp); os.remove(script)
    local name = script:match("[^/]+$")
    assert.truthy(out:find("TRACE%s+%d+ " .. name:gsub("%p", "%%%0") .. ":6 "), out)
    assert.truthy(out:find("TRACE%s+%d+ " .. name:gsub("%p", "%%%0") .. ":9 "), out)
    -- no trace of the two loops (nor a side trace of one) is aborted; a
    -- trace elsewhere (a flush every 5000 rows) may be: which code gets
    -- hot first depends on where LuaJIT's hot counters land
    local esc = name:gsub("%p", "%%%0")
    local loop = {}
    for n in out:gmatch("TRACE%s+(%d+) " .. esc .. ":[69] ") do loop[n] = true end
    for line in out:gmatch("[^\n]+") do
      if line:find("TRACE %-%-%-") then
        local parent = line:match("TRACE %-%-%- %((%d+)/")
        local at_loop = line:find("TRACE %-%-%- " .. esc .. ":[69] ")
        assert.falsy(at_loop or (parent and loop[parent]), out)
      end
    end
  end)
end)

describe("JIT, CSV rows", function()
  it("compiles a loop over sluice.csv.rows (keyed and array rows) without leaving its trace", function()
    local tmp = os.tmpname()
    local script, data = tmp .. ".lua", tmp .. ".csv"
    local lines = { "id,name,note" }
    for i = 1, 20000 do
      lines[#lines + 1] = i .. (i % 4 == 0 and ',"Doe, J.","5"" pipe"' or ",x,y")
    end
    local f = assert(io.open(data, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    f = assert(io.open(script, "w"))
    f:write([[
      local csv = require("sluice").csv
      require("jit.v").start("]] .. tmp .. [[")
      local n, keep = 0, {}
      for row in csv.rows("]] .. data .. [[") do n = n + #row.name; keep[n % 8] = row end -- KEYED
      for row in csv.rows("]] .. data .. [[", { header = false }) do n = n + #row[2] end -- ARRAY
      assert(n > 0)
    ]])
    f:close()
    local code, _, err = H.sluice(H.q(script))
    assert.are.equal(0, code, err)
    f = assert(io.open(tmp)); local out = f:read("*a"); f:close()
    os.remove(tmp); os.remove(script); os.remove(data)
    local esc = script:match("[^/]+$"):gsub("%p", "%%%0")
    assert.truthy(out:find("TRACE%s+%d+ " .. esc .. ":4 loop"), out)
    assert.truthy(out:find("TRACE%s+%d+ " .. esc .. ":5 loop"), out)
    -- no trace of the loops, nor a side trace of one, is aborted
    local loop = {}
    for n in out:gmatch("TRACE%s+(%d+) " .. esc .. ":[45] ") do loop[n] = true end
    for line in out:gmatch("[^\n]+") do
      if line:find("TRACE %-%-%-") then
        local parent = line:match("TRACE %-%-%- %((%d+)/")
        assert.falsy(line:find("TRACE %-%-%- " .. esc .. ":[45] ") or (parent and loop[parent]), out)
      end
    end
  end)
end)
