--- The rejected rows of one sluice.load in reject mode (on_error =
-- "reject"): where each goes (the script's on_reject, the rejects file),
-- where it came from (for CSV input: the file, the line and the record
-- as it was written), how many there are, and the limits (max_rejects,
-- max_reject_ratio).
--
-- The sinks (sinks.lua) get on_reject functions from here, one per
-- connection: connection k of N took the load's rows k, k + N, ..., so
-- its row r is the load's row (r - 1) * N + k.  Each rejected row goes to
-- on_reject(values, err, row, src) - src = { source = "file:line",
-- record = "the record's text" } for CSV input, else nil - and then to
-- the rejects file (sluice.rejects).
--
-- The source of a row is kept for the last `window` rows (the rows a
-- chunk, a flush or a sync group can still hand over); the staging
-- strategies (upsert, unlogged_staging) refuse rows only at their move,
-- after all rows were read, so for them it is kept for every row (window
-- nil: memory in proportion to the input, in reject mode with CSV input
-- only).  A row handed over outside the window has no record (never
-- expected: the window is twice what can be pending).
local core = require "sluice.core"

local M = {}

local R = {}
R.__index = R

--- A new bookkeeper for load options o (checked), nconn connections,
-- `reader` (the CSV reader behind the input, or nil) and window rows.
function M.new(o, nconn, columns, reader, window)
  local self = setmetatable({
    on_reject = o.on_reject, max = o.max_rejects, ratio = o.max_reject_ratio,
    count = 0, read = 0, nconn = nconn, ncols = #columns, reader = reader,
    window = window or 2^52, tags = {}, records = {}, lines = {},
    skipped = {}, -- rows refused before any sink saw them, in order
    pending = { first = 1 }, -- those not handed over yet
  }, R)
  if o.rejects then
    self.file = require("sluice.rejects").open(o.rejects, { columns = columns })
  end
  return self
end

--- Row n of the load was read (after the reader gave it): remember its
-- source while it can still be handed over.
function R:note(n)
  self.read = n
  local reader = self.reader
  if reader then
    local k = n % self.window
    self.tags[k] = n
    self.records[k] = reader:record()
    self.lines[k] = reader.line
  end
end

-- The source of row n: { source = "path:line", record = text } or nil.
function R:source(n)
  local reader = self.reader
  if not reader then return nil end
  local k = n % self.window
  if self.tags[k] == n then
    return { source = reader.path .. ":" .. self.lines[k], record = self.records[k] }
  end
  return nil
end

-- Stop the load when a limit is passed (raises).
function R:check_limits(row, err, final)
  local c, read = self.count, self.read
  local why = type(err) == "table" and ((err.sqlstate and err.sqlstate .. ": " or "")
    .. tostring(err.message)) or tostring(err)
  -- error objects: the stream passes them on as they are, and the load
  -- says in front what was committed
  if self.max and c > self.max then
    error(core.new_error { message = ("more than max_rejects = %d rows were rejected (row %d "
          .. "was rejected #%d: %s)"):format(self.max, row, c, why) }, 0)
  end
  if self.ratio and (final or read >= 1000) and c > self.ratio * read then
    error(core.new_error { message = ("%d of %d rows read were rejected (%.4g%%), more than "
          .. "max_reject_ratio = %g%s"):format(c, read, 100 * c / read, self.ratio,
                  final and "" or (" (row %d: %s)"):format(row, why)) }, 0)
  end
end

-- Hand one rejected row over: the script's on_reject, the file.
function R:deliver(values, err, row, src)
  self.count = self.count + 1
  if self.on_reject then self.on_reject(values, err, row, src) end
  if self.file then self.file(values, err, row, src) end
  self:check_limits(row, err, false)
end

--- Row n of the load is no row (the wrong width, unknown keys, a failed
-- validation): set aside before any sink saw it, with SQLSTATE code.
-- It is handed over just before the first row after it that a sink
-- hands over (or at the end), so that rows go out in row order.
function R:refuse(item, why, code, n)
  self.skipped[#self.skipped + 1] = n
  self.pending[#self.pending + 1] = { item, core.new_error { sqlstate = code, message = why },
                                      n, self:source(n) }
end

-- Hand over the refused rows before row n (all: n nil).
function R:flush_pending(n)
  local p = self.pending
  while p.first <= #p and (n == nil or p[p.first][3] < n) do
    local x = p[p.first]
    p[p.first] = false
    p.first = p.first + 1
    self:deliver(x[1], x[2], x[3], x[4])
  end
end

--- The load's row number of the p-th row put into the sinks (rows
-- refused before them are not put).
function R:load_row(p)
  local n = p
  for _, r in ipairs(self.skipped) do
    if r > n then break end
    n = n + 1
  end
  return n
end

--- The on_reject function for connection k (its rows renumbered as the
-- load's: connection k of N took the rows put k, k + N, ...).
function R:handler(k)
  local nconn, ncols = self.nconn, self.ncols
  return function(values, err, row)
    if type(values) == "table" and values.n == nil then values.n = ncols end
    local n = self:load_row((row - 1) * nconn + k)
    self:flush_pending(n)
    return self:deliver(values, err, n, self:source(n))
  end
end

--- The load's rows are all in: check the ratio on the whole input and
-- close the file.  Raises a limit's error.
function R:finish()
  self:flush_pending()
  self:close()
  if self.count > 0 then self:check_limits(self.read, "", true) end
end

--- Close the rejects file (never raises).
function R:close()
  pcall(self.flush_pending, self)
  if self.file then pcall(self.file.close, self.file) end
end

return M
