--- sluice.text against the plain-Lua ways, per helper, with no database.
--
--   sluice bench/text.lua [n] [runs]     (defaults: 1000000 5)
--
-- Each case runs a loop of n calls over n strings built before the clock
-- starts (so the loop measures the call, not the input), and keeps what
-- the calls return (as a row's values are kept); the ways of a case must
-- give the same values.  CPU seconds are os.clock(); medians of `runs`,
-- with the range.  "LuaJIT" says how the loop ran, from jit.attach:
-- "compiled" (a looping trace), "stitched" (the trace stops at a function
-- LuaJIT does not compile, which runs in the interpreter each time) or
-- "aborted".
local text = require("sluice").text
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = tonumber(arg[2]) or 5

-- How the loop of run() (below) ran, from the trace events of the
-- current way: traces that start at its line and loop ("compiled"), stop
-- at a function LuaJIT does not compile ("stitched") or abort.  Traces
-- that start elsewhere (a helper that got hot first) are not the loop's.
local events, loop_line
local jutil = require "jit.util"
local starts_here
jit.attach(function(what, tr, func, pc)
  if not events then return end
  if what == "start" then
    local fi = jutil.funcinfo(func, pc)
    starts_here = fi.source == debug.getinfo(1, "S").source and fi.currentline == loop_line
  elseif starts_here and what == "abort" then
    events.abort = true
  elseif starts_here and what == "stop" then
    local info = jutil.traceinfo(tr)
    if info.linktype == "stitch" then events.stitch = true end
    if info.linktype == "loop" then events.loop = true end
  end
end, "trace")

local function how(ev)
  if ev.stitch then return "stitched" end
  if ev.abort or not ev.loop then return "aborted" end
  return "compiled"
end

-- Inputs: n strings of each kind, deterministic.
local function inputs(fn)
  local t = {}
  for i = 1, N do t[i] = fn(i) end
  return t
end

local function day(i)
  local s = 631152000 + (i * 7919) % (40 * 365 * 86400)
  return os.date("!*t", s)
end

local function mdy(i)
  local t = day(i)
  return ("%02d/%02d/%04d"):format(t.month, t.day, t.year)
end
local function dmy_hm(i)
  local t = day(i)
  return ("%02d.%02d.%04d %02d:%02d"):format(t.day, t.month, t.year, t.hour, t.min)
end
local function padded(i)
  return (i % 2 == 0) and ("  user" .. i .. "@Example.COM ") or ("user" .. i .. "@example.com")
end
local function email(i) return "User" .. i .. "@Example.com" end
local function comma(i) return ("%d.%03d,%02d"):format(i % 999 + 1, i % 1000, i % 100) end
local function plain(i) return ("%d.%02d"):format(i, i % 100) end
local function dirty(i) return i % 10 == 0 and "" or tostring(i * 0.25) end

-- A plain-Lua date reader that stays compiled (string.byte only): what
-- sluice.text's C reader is measured against.  MM/DD/YYYY, 1-2 digit
-- month and day, epoch seconds or nil.
local byte = string.byte
local function lua_mdy(s)
  local i = 1
  local c = byte(s, i) or 0
  if c < 48 or c > 57 then return nil end
  local m = c - 48
  i = i + 1
  c = byte(s, i) or 0
  if c >= 48 and c <= 57 then m = m * 10 + c - 48; i = i + 1; c = byte(s, i) or 0 end
  if c ~= 47 then return nil end
  i = i + 1
  c = byte(s, i) or 0
  if c < 48 or c > 57 then return nil end
  local d = c - 48
  i = i + 1
  c = byte(s, i) or 0
  if c >= 48 and c <= 57 then d = d * 10 + c - 48; i = i + 1; c = byte(s, i) or 0 end
  if c ~= 47 or #s ~= i + 4 then return nil end
  -- the year's 4 digits, unrolled (a loop here would be a trace of its
  -- own, and the loop around the call would leave it)
  local c1, c2, c3, c4 = byte(s, i + 1, i + 4)
  if c1 < 48 or c1 > 57 or c2 < 48 or c2 > 57 or c3 < 48 or c3 > 57 or c4 < 48 or c4 > 57 then
    return nil
  end
  local y = c1 * 1000 + c2 * 100 + c3 * 10 + c4 - 53328
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local mdays = m == 2 and (leap and 29 or 28) or ((m == 4 or m == 6 or m == 9 or m == 11) and 30 or 31)
  if y < 1 or m < 1 or m > 12 or d < 1 or d > mdays then return nil end
  local yy = m <= 2 and y - 1 or y
  local era = math.floor(yy / 400)
  local yoe = yy - era * 400
  local doy = math.floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return (era * 146097 + doe - 719468) * 86400
end

local us_date = text.date_layout("MM/DD/YYYY")
local us_iso = text.date_layout("MM/DD/YYYY", "iso")
local eu_ts = text.timestamp_layout("DD.MM.YYYY HH:MI")

local match, tonumber_, lower = string.match, tonumber, string.lower
local gsub = string.gsub
local tnew = require "table.new"
local second = tnew(N, 0)

-- { case, input generator, { { way, f(s) -> value }, ... } }; the ways of
-- a case give the same values where they give the same kind.
local CASES = {
  { "date MM/DD/YYYY", mdy, {
    { "s:match + concat (ISO text)", function(s)
        local m, d, y = match(s, "^(%d%d)/(%d%d)/(%d%d%d%d)$")
        return y .. "-" .. m .. "-" .. d
      end },
    { "string.byte reader in Lua (epoch)", lua_mdy },
    { "text.date_layout (epoch)", us_date },
    { "text.date_layout(..., \"iso\")", us_iso },
  } },
  { "timestamp DD.MM.YYYY HH:MI", dmy_hm, {
    { "s:match + concat (ISO text)", function(s)
        local d, m, y, h, mi = match(s, "^(%d%d)%.(%d%d)%.(%d%d%d%d) (%d%d):(%d%d)$")
        return y .. "-" .. m .. "-" .. d .. " " .. h .. ":" .. mi
      end },
    { "text.timestamp_layout (epoch)", eu_ts },
  } },
  { "trim", padded, {
    { "s:match(\"^%s*(.-)%s*$\")", function(s) return match(s, "^%s*(.-)%s*$") end },
    { "text.trim", text.trim },
  } },
  { "lower", email, {
    { "s:lower()", function(s) return lower(s) end },
    { "text.lower", text.lower },
  } },
  { "split_at \"@\"", email, {
    { "s:match(\"^(.-)@(.*)$\")", function(s, i)
        local u, h = match(s, "^(.-)@(.*)$")
        second[i] = h
        return u
      end },
    { "text.split_at", function(s, i)
        local u, h = text.split_at(s, "@")
        second[i] = h
        return u
      end },
  } },
  { "after \"@\"", email, {
    { "s:match(\"@(.*)$\")", function(s) return match(s, "@(.*)$") end },
    { "text.after", function(s) return text.after(s, "@") end },
  } },
  { "number \"1.234,56\"", comma, {
    { "tonumber(s:gsub(\"%.\", \"\"):gsub(\",\", \".\"))", function(s)
        return tonumber_((gsub(gsub(s, "%.", ""), ",", ".")))
      end },
    { "text.number(s, true)", function(s) return text.number(s, true) end },
  } },
  { "number \"1234.56\"", plain, {
    { "tonumber(s)", function(s) return tonumber_(s) end },
    { "text.number(s)", function(s) return text.number(s) end },
  } },
  { "number, 10% empty strings", dirty, {
    { "tonumber(s)", function(s) return tonumber_(s) end },
    { "text.number(s)", function(s) return text.number(s) end },
  } },
}

-- The loop every way runs: results kept, as a row's values are.
local function run(f, t, out)
  for i = 1, N do out[i] = f(t[i], i) end
end
loop_line = debug.getinfo(run, "S").linedefined + 1

print(("\n### sluice.text helpers: %d calls, CPU seconds (os.clock), median of %d [range]\n")
      :format(N, RUNS))
print("| case | way | CPU s | ns/call | LuaJIT |")
print("|---|---|---:|---:|---|")
for _, case in ipairs(CASES) do
  local name, data, ways = case[1], inputs(case[2]), case[3]
  local first = {}
  for _, way in ipairs(ways) do
    local times, out = {}, tnew(N, 0)
    jit.flush()
    events = {}
    for r = 1, RUNS do
      collectgarbage()
      local c0 = os.clock()
      run(way[2], data, out)
      times[r] = os.clock() - c0
    end
    local ev = events
    events = nil
    local kind = type(out[1])
    if first[kind] then
      for i = 1, N do
        assert(out[i] == first[kind][i], ("%s: row %d: %s, not %s"):format(
          way[1], i, tostring(out[i]), tostring(first[kind][i])))
      end
    else
      first[kind] = out
    end
    table.sort(times)
    local med = B.median(times)
    print(("| %s | %s | %.3f [%.3f-%.3f] | %.0f | %s |"):format(
      name, way[1]:gsub("|", "\\|"), med, times[1], times[#times], med / N * 1e9, how(ev)))
  end
end
