--- Progress of a load: rows, rows/s, MB/s, elapsed and ETA.
--
--   local p = sluice.progress.new{ label = "users", total = 1e6 }
--   for ... do ...; p:update(rows_done, bytes_done) end
--   p:finish(rows, bytes)        -- the final summary line, always
--
-- Every long path draws through this module, one line format for all:
-- sluice.load, db:copy, db:copy_from_file, Model:save_all, db:batch,
-- db:pipeline and db:upsert.  While the work runs, a line is redrawn on
-- stderr once it has gone on for a second (M.DELAY), at most every 200 ms,
-- and only when stderr is a terminal, opts.quiet is not set and the
-- environment has no SLUICE_QUIET (which `sluice --quiet` sets):
--
--   users copy: 1250000 rows, 412.3k rows/s, 21.4 MB/s, 0:03
--   load: 250000 rows, 83.1k rows/s, 4.2 MB/s, 0:03 [######..................]  25% ETA 0:09
--   t copy_from_file: 310000 rows, 98.7k rows/s, 12.0 MB/s, 0:03 [#####...................]  21% 38.1/181.5 MB ETA 0:11
--
-- (a known row total draws a bar and an ETA; a file's size, opts.total_bytes,
-- draws one from the bytes read of it).  NO_COLOR turns the bar's colour
-- off.  The final summary line (the same fields, without bar and ETA) is
-- always written to stderr, unless opts.silent.  Units, everywhere: row
-- counts exact, rows/s with k (thousands) and M (millions), MB/s and MB in
-- decimal megabytes (10^6 bytes), elapsed time and ETA as m:ss or h:mm:ss.
--
-- One line at a time: a progress whose line is drawn owns the terminal's
-- last line; another one drawing takes it over, and hide() / finish() /
-- the garbage collection of an abandoned progress clear only their own.
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
M.P = P

--- Seconds a path runs before its live line first shows.
M.DELAY = 1
--- Seconds between two redraws of the live line.
M.REDRAW = 0.2
--- Where progress goes when opts.out is not given (nil: io.stderr at the
-- time the progress is made).
M.out = nil

local ts = ffi.new("sluice_progress_ts")
local function now()
  ffi.C.sluice_progress_clock(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
M.now = now

--- A rate with k (thousands) or M (millions): "812", "45.6k", "1.23M".
function M.rate(n)
  if n ~= n or n == math.huge then return "0" end
  if n >= 1e6 then return ("%.2fM"):format(n / 1e6) end
  if n >= 1e4 then return ("%.1fk"):format(n / 1e3) end
  return ("%d"):format(math.floor(n + 0.5))
end

--- Seconds as m:ss or h:mm:ss ("--:--" when unknown).
function M.clock(s)
  if s ~= s or s == math.huge or s < 0 then return "--:--" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%d:%02d:%02d"):format(s / 3600, s % 3600 / 60, s % 60) end
  return ("%d:%02d"):format(s / 60, s % 60)
end

--- Is the process quiet (sluice --quiet, or SLUICE_QUIET set and not "0")?
function M.quiet()
  local q = os.getenv("SLUICE_QUIET")
  return q ~= nil and q ~= "" and q ~= "0"
end

-- The token of the progress whose live line is on the terminal (a token,
-- not the progress itself, so that an abandoned progress can be collected
-- and its sentinel clear the line).
local drawn_by = nil

local function clear_line(out, tok)
  if drawn_by == tok then
    drawn_by = nil
    out:write("\r\27[K")
    out:flush()
  end
end

--- progress.new{ label, total (rows), total_bytes (a file's size: the
-- bar follows update()'s pos), quiet (no live line), silent (no summary),
-- out (default io.stderr) }.  p.note, when set, follows the rates on the
-- live line (a parallel load's workers).
function M.new(opts)
  opts = opts or {}
  local out = opts.out or M.out or io.stderr
  local self = setmetatable({
    label = opts.label or "load",
    total = opts.total,
    total_bytes = opts.total_bytes,
    live = not opts.quiet and not M.quiet() and ffi.C.sluice_progress_isatty(2) == 1,
    silent = opts.silent,
    color = os.getenv("NO_COLOR") == nil,
    started = now(), last = 0, out = out,
    tok = {},
  }, P)
  if self.live then
    -- a progress dropped with its line drawn (the script failed in its
    -- row loop, say) clears it when collected: before the error is
    -- printed, as the executable collects garbage then
    local tok, sentinel = self.tok, newproxy(true)
    getmetatable(sentinel).__gc = function() pcall(clear_line, out, tok) end
    self.sentinel = sentinel
  end
  return self
end

-- The bar and percentage of frac done (0..1).
local function bar(self, frac)
  local width = 24
  local full = math.floor(frac * width + 0.5)
  if self.color then
    return "[\27[32m" .. ("#"):rep(full) .. "\27[0m" .. ("."):rep(width - full) .. "]"
  end
  return "[" .. ("#"):rep(full) .. ("."):rep(width - full) .. "]"
end

--- Seconds since the progress was made.
function P:elapsed()
  return now() - self.started
end

--- The line for rows and bytes done (pos: bytes read of total_bytes);
-- final: the summary (no bar, no ETA).  The one formatter of every path.
function P:line(rows, bytes, final, pos)
  local secs = math.max(self:elapsed(), 1e-9)
  local rate = rows / secs
  local s = ("%s: %d rows, %s rows/s, %.1f MB/s, %s"):format(self.label, rows, M.rate(rate),
    (bytes or 0) / secs / 1e6, M.clock(secs))
  if final then return s end
  if self.note then s = s .. " " .. self.note end
  if self.total and self.total > 0 then
    local frac = math.min(rows / self.total, 1)
    s = ("%s %s %3d%% ETA %s"):format(s, bar(self, frac), math.floor(frac * 100),
                                     M.clock((self.total - rows) / rate))
  elseif self.total_bytes and self.total_bytes > 0 and pos then
    local frac = math.min(pos / self.total_bytes, 1)
    s = ("%s %s %3d%% %.1f/%.1f MB ETA %s"):format(s, bar(self, frac), math.floor(frac * 100),
      pos / 1e6, self.total_bytes / 1e6, M.clock((self.total_bytes - pos) / (pos / secs)))
  end
  return s
end

--- Report progress; cheap to call often (draws after M.DELAY seconds, then
-- at most every M.REDRAW seconds).
function P:update(rows, bytes, pos)
  if not self.live then return end
  local t = now()
  if t - self.last < M.REDRAW or t - self.started < M.DELAY then return end
  self.last = t
  drawn_by = self.tok
  self.out:write("\r\27[K", self:line(rows, bytes, false, pos))
  self.out:flush()
end

--- Clear the live line, if this progress drew the one shown (a failure:
-- the error that follows says what happened, no summary).
function P:hide()
  clear_line(self.out, self.tok)
end

--- The final summary line; returns it too.  With `rejected` (a load that
-- sets bad rows aside) it ends with what became of the rows read:
-- "read N = loaded L + rejected R".
function P:finish(rows, bytes, rejected)
  local s = self:line(rows, bytes, true)
  if rejected then
    s = s .. ("  read %d = loaded %d + rejected %d"):format(rows, rows - rejected, rejected)
  end
  self:hide()
  self.live = false
  if not self.silent then self.out:write(s, "\n") end
  return s
end

--- The function a path written in C calls (db:copy, copy_from_file,
-- db:pipeline; runtime/lib_progress.c): f(rows, bytes, pos, ended, total)
-- with ended 0 (a tick: update), 1 (done: the summary, when `own`, else
-- the line hidden: the caller writes the summary) or 2 (the line hidden:
-- a failure, or a wait); total: the input's size in bytes, when known.
function P:hook(own)
  return function(rows, bytes, pos, ended, total)
    if total then self.total_bytes = total end
    if ended == 0 then
      self:update(rows, bytes, pos)
    elseif ended == 1 and own then
      self:finish(rows, bytes)
    else
      self:hide()
    end
  end
end

--- The progress of a call that takes opts.quiet (db:copy, db:batch, ...):
-- nil when opts.quiet (nothing at all), else a new progress labelled
-- `label`.
function M.of(opts, label)
  if opts and opts.quiet then return nil end
  return M.new { label = label }
end

return M
