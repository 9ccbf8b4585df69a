-- sluice --profile: the report on stderr at the end of the script (also
-- after an error or os.exit), naming the lines LuaJIT did not compile.
local H = require "helper"

-- Run `code` as a script with --profile: exit code, stdout, stderr, the
-- script's file name.
local function profiled(code, args)
  local script = os.tmpname() .. ".lua"
  H.write(script, code)
  local rc, out, err = H.sluice((args or "--profile ") .. H.q(script))
  os.remove(script)
  return rc, out, err, script:match("[^/]+$")
end

-- A per-row loop of the plain-Lua way (line 5: string.match; line 6: a
-- closure made on each pass), and one with sluice.text (line 9), which
-- stays compiled.
local SCRIPT = [[
local text = require("sluice").text
local src = {}
for i = 1, 1000 do src[i] = ("%02d/%02d/2020"):format(i % 12 + 1, i % 28 + 1) end
local n = 0
for i = 1, 2000000 do local m = src[i % 1000 + 1]:match("^(%d+)/")
  local f = function() return m end; n = n + #f() end
local d = text.date_layout("MM/DD/YYYY")
local s = 0
for i = 1, 3000000 do s = s + d(src[i % 1000 + 1]) end
print(n > 0 and s > 0)
]]

describe("sluice --profile", function()
  it("prints where the time went and the lines LuaJIT did not compile", function()
    local rc, out, err, name = profiled(SCRIPT)
    assert.are.equal(0, rc, err)
    assert.are.equal("true\n", out)
    local esc = name:gsub("%p", "%%%0")
    assert.truthy(err:find("^\nsluice %-%-profile: %d+%.%d%d s of CPU, %d+ samples\n"), err)
    assert.truthy(err:find("\n  time spent: [^\n]*compiled %d+%%"), err)
    assert.truthy(err:find("\n  top functions:\n"), err)
    -- the plain loop's lines are among the top lines (the helper's time
    -- is on the helper's own line, in text.lua)
    assert.truthy(err:find("\n +%d+%%  " .. esc .. ":6 "), err)
    assert.truthy(err:find("\n    " .. esc .. ":5: calls string.match, which LuaJIT does not compile", 1), err)
    assert.truthy(err:find("\n    " .. esc .. ":6: trace aborted: NYI: bytecode %d+ %(FNEW: a function "
                           .. "%(closure%) created on each pass"), err)
    -- the helper's loop is not listed
    assert.falsy(err:find(esc .. ":9: ", 1, true), err)
  end)

  it("reports after an error and after os.exit, keeping their exit status", function()
    local rc, _, err = profiled("local t = 0\nfor i = 1, 3e7 do t = t + i % 7 end\nerror('boom')\n")
    assert.are.equal(1, rc)
    assert.truthy(err:find("sluice %-%-profile: [%d.]+ s of CPU, %d+ samples"), err)
    -- the script's error comes last
    assert.truthy(err:find("boom\nsluice: run with %-%-traceback for the stack\n$"), err)
    rc, _, err = profiled("local t = 0\nfor i = 1, 3e7 do t = t + i % 7 end\nos.exit(3)\n")
    assert.are.equal(3, rc)
    assert.truthy(err:find("sluice %-%-profile: [%d.]+ s of CPU, %d+ samples"), err)
  end)

  it("prints nothing without the option, and is in --help", function()
    local rc, _, err = profiled("print(1)\n", "")
    assert.are.equal(0, rc)
    assert.falsy(err:find("profile", 1, true), err)
    local _, help = H.sluice("--help")
    assert.truthy(help:find("  --profile     sample the script with LuaJIT's profiler", 1, true), help)
  end)
end)
