--- Shared by the benchmarks: clocks, CPU time, medians, markdown tables,
-- and running the peers (psql, python) as child processes.
--
-- Benchmarks are not tests: they print markdown and compare methods
-- measured in the same run, on the same rows, with table contents checked.
local ffi = require "ffi"

ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } sl_timespec;
  int clock_gettime(int clk, sl_timespec *ts);
  typedef struct { long tv_sec; long tv_usec; } sl_timeval;
  typedef struct {
    sl_timeval ru_utime, ru_stime;
    long ru_maxrss, ru_ixrss, ru_idrss, ru_isrss, ru_minflt, ru_majflt,
         ru_nswap, ru_inblock, ru_oublock, ru_msgsnd, ru_msgrcv,
         ru_nsignals, ru_nvcsw, ru_nivcsw;
  } sl_rusage;
  int getrusage(int who, sl_rusage *u);
  long readlink(const char *path, char *buf, size_t len);
]]

local B = {}

local ts = ffi.new("sl_timespec")
--- Monotonic seconds.
function B.now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local ru = ffi.new("sl_rusage")
--- CPU seconds (user + system) of this process (who = 0) or of its
-- waited-for children (who = -1), and peak RSS in KiB.
function B.cpu(who)
  ffi.C.getrusage(who or 0, ru)
  return tonumber(ru.ru_utime.tv_sec) + tonumber(ru.ru_utime.tv_usec) * 1e-6
       + tonumber(ru.ru_stime.tv_sec) + tonumber(ru.ru_stime.tv_usec) * 1e-6,
         tonumber(ru.ru_maxrss)
end

function B.median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

--- Shell-quote one word.
function B.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- s with DATABASE_URL (which may hold a password), quoted or not, shown
-- as $DATABASE_URL.
local function hide_url(s)
  local url = os.getenv("DATABASE_URL")
  if not url or url == "" then return s end
  for _, form in ipairs({ B.q(url), url }) do
    local i = 1
    while true do
      local a, b = s:find(form, i, true)
      if not a then break end
      s = s:sub(1, a - 1) .. "$DATABASE_URL" .. s:sub(b + 1)
      i = a + #"$DATABASE_URL"
    end
  end
  return s
end

--- Run a shell command, raise with its stderr if it fails (DATABASE_URL
-- shown by name).
function B.sh(cmd)
  local errf = os.tmpname()
  local rc = os.execute(cmd .. " 2>" .. errf)
  local f = io.open(errf); local err = f and f:read("*a") or ""; if f then f:close() end
  os.remove(errf)
  if rc ~= 0 and rc ~= true then
    error("command failed (" .. tostring(rc) .. "): " .. hide_url(cmd) .. "\n" .. hide_url(err), 2)
  end
end

--- Path of the running sluice executable.
function B.exe()
  local buf = ffi.new("char[4096]")
  local n = ffi.C.readlink("/proc/self/exe", buf, 4096)
  assert(n > 0, "cannot read /proc/self/exe")
  -- a rebuild while the benchmark runs leaves " (deleted)" on the link
  return (ffi.string(buf, n):gsub(" %(deleted%)$", ""))
end

--- Does a command exist?
function B.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == 0
end

local function fmt_num(x)
  if x >= 100 then
    local s = ("%.0f"):format(x)
    return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
  end
  return ("%.2f"):format(x)
end
B.fmt = fmt_num

--- Print a markdown table.  cols: list of header strings; rows: list of
-- lists of cell strings.
function B.table(cols, rows)
  local out = { "| " .. table.concat(cols, " | ") .. " |" }
  local sep = {}
  for i = 1, #cols do sep[i] = i == 1 and "---" or "---:" end
  out[#out + 1] = "|" .. table.concat(sep, "|") .. "|"
  for _, r in ipairs(rows) do out[#out + 1] = "| " .. table.concat(r, " | ") .. " |" end
  local s = table.concat(out, "\n")
  print(s)
  return s
end

--- Run fn(i) `runs` times; returns the median seconds and all of them.
-- fn returns nothing; setup(i) (optional) runs before each, untimed.
function B.measure(runs, fn, setup)
  local times = {}
  for i = 1, runs do
    if setup then setup(i) end
    local t0 = B.now()
    fn(i)
    times[i] = B.now() - t0
  end
  return B.median(times), times
end

--- Run methods round-robin (run 1 of every method, then run 2, ...), so
-- that changes in the machine's load fall on every method alike.  Before
-- each run: opts.reset(m), a CHECKPOINT on opts.db (so the WAL one load
-- leaves to flush does not land on the next), a full GC.  Each run is
-- timed, wall clock and CPU (this process, or its waited-for children
-- when m.child).  opts.check(m) runs after each method's first run (it
-- checks contents and raises on a mismatch).  Methods with available ==
-- false are skipped.  m.prepare(), when present, makes the run's input
-- untimed, and it is dropped after the run.  Sets m.times, m.cpus, and
-- the medians m.t and m.cpu.
function B.rounds(opts)
  local methods = opts.methods
  for _, m in ipairs(methods) do m.times, m.cpus = {}, {} end
  for r = 1, opts.runs do
    for _, m in ipairs(methods) do
      if m.available ~= false then
        local input = m.prepare and m.prepare()
        opts.reset(m)
        if opts.db then opts.db:exec("checkpoint") end
        collectgarbage()
        local who = m.child and -1 or 0
        local c0 = B.cpu(who)
        local t0 = B.now()
        m.run(input, r)
        m.times[r] = B.now() - t0
        m.cpus[r] = B.cpu(who) - c0
        input = nil -- luacheck: ignore 311 (dropped before the next run)
        if r == 1 and opts.check then opts.check(m) end
      end
    end
  end
  for _, m in ipairs(methods) do
    if m.available ~= false then m.t, m.cpu = B.median(m.times), B.median(m.cpus) end
  end
  return methods
end

return B
