local progress = require "sluice.progress"
local H = require "helper"

describe("sluice.progress", function()
  local function capture()
    local path = os.tmpname()
    return assert(io.open(path, "w+")), path
  end

  it("writes only the final summary when quiet (as for a non-terminal)", function()
    local f, path = capture()
    local p = progress.new { label = "users", total = 5000, out = f, quiet = true }
    assert.is_false(p.live)
    p:update(10, 100)
    local line = p:finish(5000, 2e6)
    f:seek("set"); local text = f:read("*a"); f:close(); os.remove(path)
    assert.are.equal(line .. "\n", text)
    assert.truthy(line:match("^users: 5000 rows, [%d.]+[kM]? rows/s, [%d.]+ MB/s, 0:00$"), line)
  end)

  it("draws a bar with an ETA when the total is known", function()
    local p = progress.new { label = "load", total = 1000, out = io.stderr }
    p.color = false
    local s = p:line(250, 0)
    assert.truthy(s:find("[######..................]  25% ETA", 1, true), s)
  end)

  it("stays silent when asked", function()
    local f, path = capture()
    local p = progress.new { out = f, silent = true }
    p:finish(1, 1)
    f:seek("set"); local text = f:read("*a"); f:close(); os.remove(path)
    assert.are.equal("", text)
  end)

  it("draws no live line under sluice --quiet (SLUICE_QUIET), even on a terminal", function()
    local code, out, err = H.sluice([[--quiet -e 'local p = require("sluice").progress; ]]
      .. [[print(p.quiet(), p.new{}.live, os.getenv("SLUICE_QUIET"))']])
    assert.are.equal(0, code, err)
    assert.are.equal("true\tfalse\t1\n", out)
    code, out = H.sluice("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("  --quiet       no live progress lines (sets SLUICE_QUIET=1);", 1, true), out)
  end)
end)
