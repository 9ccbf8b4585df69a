--- Progress of a load: rows, rows/s, MB/s, elapsed and ETA.
--
--   local p = sluice.progress.new{ label = "users", total = 1e6 }
--   for ... do ...; p:update(rows_done, bytes_done) end
--   p:finish(rows, bytes)        -- the final summary line, always
--
-- While the load runs, a line is redrawn on stderr at most every 200 ms,
-- and only when stderr is a terminal, opts.quiet is not set and the
-- environment has no SLUICE_QUIET (which `sluice --quiet` sets); with a
-- known total it shows a bar and an ETA.  NO_COLOR turns colour off.  The
-- final summary line is always written (to stderr), unless opts.silent.
local ffi = require "ffi"

-- Declared under names of our own (__asm__ gives the real symbol): scripts
-- declare clock_gettime with their own timespec type, and a second
-- declaration of one C name with another type would fail theirs.
pcall(ffi.cdef, [[
  int sluice_progress_isatty(int fd) __asm__("isatty");
  typedef struct { long tv_sec; long tv_nsec; } sluice_progress_ts;
  int sluice_progress_clock(int clk, sluice_progress_ts *ts) __asm__("clock_gettime");
]])

local M = {}
local P = {}
P.__index = P

local ts = ffi.new("sluice_progress_ts")
local function now()
  ffi.C.sluice_progress_clock(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
M.now = now

local function human(n)
  if n >= 1e6 then return ("%.2fM"):format(n / 1e6) end
  if n >= 1e4 then return ("%.1fk"):format(n / 1e3) end
  return ("%d"):format(n)
end

local function clock(s)
  if s ~= s or s == math.huge then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s / 3600, s % 3600 / 60, s % 60) end
  return ("%d:%02d"):format(s / 60, s % 60)
end

--- Is the process quiet (sluice --quiet, or SLUICE_QUIET set and not "0")?
function M.quiet()
  local q = os.getenv("SLUICE_QUIET")
  return q ~= nil and q ~= "" and q ~= "0"
end

function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    label = opts.label or "load",
    total = opts.total,
    live = not opts.quiet and not M.quiet() and ffi.C.sluice_progress_isatty(2) == 1,
    silent = opts.silent,
    color = os.getenv("NO_COLOR") == nil,
    started = now(), last = 0, out = opts.out or io.stderr,
  }, P)
  return self
end

function P:line(rows, bytes, final)
  local secs = math.max(now() - self.started, 1e-9)
  local rate = rows / secs
  local s = ("%s: %s rows, %s rows/s, %.1f MB/s, %s"):format(self.label, human(rows), human(rate),
    (bytes or 0) / secs / 1e6, clock(secs))
  if self.total and self.total > 0 and not final then
    local frac = math.min(rows / self.total, 1)
    local width = 24
    local full = math.floor(frac * width + 0.5)
    local bar = ("#"):rep(full) .. ("."):rep(width - full)
    if self.color then bar = "\27[32m" .. ("#"):rep(full) .. "\27[0m" .. ("."):rep(width - full) end
    s = ("%s [%s] %3d%% ETA %s"):format(s, bar, math.floor(frac * 100), clock((self.total - rows) / rate))
  end
  return s
end

--- Report progress; cheap to call often (redraws at most every 200 ms).
function P:update(rows, bytes)
  if not self.live then return end
  local t = now()
  if t - self.last < 0.2 then return end
  self.last = t
  self.out:write("\r\27[K", self:line(rows, bytes))
  self.out:flush()
end

--- The final summary line; returns it too.  With `rejected` (a load that
-- sets bad rows aside) it ends with what became of the rows read:
-- "read N = loaded L + rejected R".
function P:finish(rows, bytes, rejected)
  local s = self:line(rows, bytes, true)
  if rejected then
    s = s .. ("  read %d = loaded %d + rejected %d"):format(rows, rows - rejected, rejected)
  end
  if self.live then self.out:write("\r\27[K") end
  if not self.silent then self.out:write(s, "\n") end
  return s
end

return M
