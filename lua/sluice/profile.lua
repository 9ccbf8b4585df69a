--- sluice --profile: where a script's time goes, from LuaJIT's sampling
-- profiler (jit.profile, the engine of luajit -jp), printed on stderr
-- when the script ends (also after an error, or os.exit).
--
-- The report: the share of samples LuaJIT spent in compiled code, in
-- the interpreter, in C code (sluice's encoders, libpq, string
-- functions), in the garbage collector and in its own compiler; the top
-- functions and lines by share, each line with its compiled/interpreted
-- split; and the loops LuaJIT could not keep compiled: traces stopped at
-- a function it does not compile ("stitched": string.match, gsub, ...,
-- which then runs in the interpreter on every call) or aborted, with
-- LuaJIT's reason.  The per-row fix is usually in sluice.text
-- (README: "Why is my script slow").
--
-- M.start() / M.stop() are called by the executable (runtime/main.c) for
-- --profile; stop() prints once.
local M = {}

local SHOW = 12          -- lines of each top list
local MIN_SHARE = 1      -- percent: below it, a function or line is not listed

local STATES = {
  { "N", "compiled" }, { "I", "interpreted" }, { "C", "C code" },
  { "G", "garbage collector" }, { "J", "JIT compiler" },
}

local running, report_out, cpu0
local samples, by_state, by_fn, by_line, line_state
local traces -- what LuaJIT gave up on: key -> { where, what, n }

-- sluice's own Lua files (lua/sluice/): their traces are not the
-- script's to fix
local libdir

local profile = require "jit.profile"
local vmdef = require "jit.vmdef"
local jutil = require "jit.util"

local function ffname(s)
  return (s:gsub("%[builtin#(%d+)%]", function(x) return vmdef.ffnames[tonumber(x)] end))
end

local function on_sample(thread, n, vmstate)
  samples = samples + n
  by_state[vmstate] = (by_state[vmstate] or 0) + n
  local fn = ffname(profile.dumpstack(thread, "f", 1)):gsub(":0$", " (main chunk)")
  local line = ffname(profile.dumpstack(thread, "l", 1))
  by_fn[fn] = (by_fn[fn] or 0) + n
  by_line[line] = (by_line[line] or 0) + n
  local st = line_state[line]
  if not st then st = {}; line_state[line] = st end
  st[vmstate] = (st[vmstate] or 0) + n
end

-- "file:line" of func at pc, and whether it is in sluice's library.
local function where(func, pc)
  local fi = jutil.funcinfo(func, pc)
  if fi.loc then
    local src = fi.source or ""
    -- the compiled row writer's chunk is "=(sluice copy row writer)"
    return fi.loc, (libdir ~= nil and src:sub(2, #libdir + 1) == libdir)
                   or src:sub(1, 8) == "=(sluice"
  end
  if fi.ffid then return vmdef.ffnames[fi.ffid], false end
  return "(C function)", false
end

-- What the bytecodes LuaJIT does not compile mean in a script.
local BC_HINT = {
  FNEW = "a function (closure) created on each pass: create it once, outside the loop",
  UCLO = "a local captured by a closure in the loop",
}

local start_loc, start_lib
local stitched = {} -- trace number -> the function it stopped at
local function on_trace(what, tr, func, pc, otr, oex)
  local msg, loc
  if what == "start" then
    start_loc, start_lib = where(func, pc)
    -- a trace that goes on after a stitched call starts at the call's
    -- line: the place to report
    local fname = otr and oex == -1 and stitched[otr]
    if not fname or start_lib then return end
    stitched[otr] = nil
    loc = start_loc
    if fname == "(C function)" then
      -- sluice's own C calls (the CSV iterator, a C row writer) end a
      -- trace too, but their work is C anyway
      msg = "calls a C function of the classic Lua API (the trace stops there and goes on after it)"
    else
      msg = "calls " .. fname .. ", which LuaJIT does not compile (it runs in the interpreter, each time)"
    end
  elseif start_lib then
    return
  elseif what == "abort" then
    local info = oex
    if type(info) == "function" then info = (where(info)) end
    msg = type(otr) == "number" and vmdef.traceerr[otr]:format(info) or tostring(otr)
    if msg:find("^leaving loop") or msg:find("^loop unroll limit") or msg:find("^inner loop") then
      -- a trace that began elsewhere ran into a loop: LuaJIT compiles
      -- the loop on its own next; not a problem of the script's code
      return
    end
    local bc = type(oex) == "number" and msg:find("^NYI: bytecode")
               and vmdef.bcnames:sub(oex * 6 + 1, oex * 6 + 6):gsub(" +$", "")
    if bc then msg = msg .. " (" .. bc .. (BC_HINT[bc] and (": " .. BC_HINT[bc]) or "") .. ")" end
    msg = "trace aborted: " .. msg
    loc = (where(func, pc)) -- where it gave up
  elseif what == "stop" then
    local info = jutil.traceinfo(tr)
    if info and info.linktype == "stitch" then stitched[tr] = (where(func, pc)) end
    return
  else
    return
  end
  local key = loc .. "\0" .. msg
  local t = traces[key]
  if not t then
    t = { loc, msg, 0 }
    traces[key] = t
  end
  t[3] = t[3] + 1
end

local function pct(n)
  return samples > 0 and n * 100 / samples or 0
end

-- The top entries of counts, largest first, at least MIN_SHARE percent.
local function top(counts)
  local t = {}
  for k, n in pairs(counts) do
    if pct(n) >= MIN_SHARE then t[#t + 1] = { k, n } end
  end
  table.sort(t, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
  return t
end

local function split(st)
  local parts = {}
  local total = 0
  for _, s in ipairs(STATES) do total = total + (st[s[1]] or 0) end
  for _, s in ipairs(STATES) do
    local n = st[s[1]] or 0
    if total > 0 and n * 100 / total >= 5 then
      parts[#parts + 1] = ("%s %d%%"):format(s[2], math.floor(n * 100 / total + 0.5))
    end
  end
  return table.concat(parts, ", ")
end

--- Start sampling (every millisecond) and watching traces.
function M.start()
  if running then return end
  local path = package.searchpath("sluice", package.path)
  libdir = path and path:match("^(.*/)init%.lua$")
  samples, by_state, by_fn, by_line, line_state, traces = 0, {}, {}, {}, {}, {}
  cpu0 = os.clock()
  report_out = io.stderr
  profile.start("li1", on_sample)
  jit.attach(on_trace, "trace")
  running = true
  -- os.exit ends the process without returning to the executable: print
  -- the report first
  local exit = os.exit
  os.exit = function(...) -- luacheck: ignore 122
    M.stop()
    return exit(...)
  end
end

--- Stop and print the report on stderr (once).
function M.stop()
  if not running then return end
  running = false
  profile.stop()
  jit.attach(on_trace)
  local out = report_out
  -- the interval asked for is 1 ms; the system's timer may tick slower
  out:write(("\nsluice --profile: %.2f s of CPU, %d samples\n"):format(os.clock() - cpu0, samples))
  if samples == 0 then
    out:write("  (the script ran too briefly to be sampled)\n")
    return
  end
  out:write("  time spent: " .. split(by_state) .. "\n")
  out:write("  top functions:\n")
  for i, e in ipairs(top(by_fn)) do
    if i > SHOW then break end
    out:write(("    %3d%%  %s\n"):format(math.floor(pct(e[2]) + 0.5), e[1]))
  end
  out:write("  top lines:\n")
  for i, e in ipairs(top(by_line)) do
    if i > SHOW then break end
    out:write(("    %3d%%  %-28s %s\n"):format(math.floor(pct(e[2]) + 0.5), e[1], split(line_state[e[1]])))
  end
  local list = {}
  for _, t in pairs(traces) do list[#list + 1] = t end
  table.sort(list, function(a, b) return a[3] > b[3] or (a[3] == b[3] and a[1] .. a[2] < b[1] .. b[2]) end)
  if #list > 0 then
    out:write("  code LuaJIT did not keep compiled (see README, \"Why is my script slow\"):\n")
    for i, t in ipairs(list) do
      if i > SHOW then break end
      out:write(("    %s: %s%s\n"):format(t[1], t[2], t[3] > 1 and (" (%d traces)"):format(t[3]) or ""))
    end
  end
  out:flush()
end

return M
