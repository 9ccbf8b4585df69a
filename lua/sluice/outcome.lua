--- What a failed round trip tells about what the server did, for the
-- errors that say what was committed (db:batch, sluice.load).
--
-- The truth comes from the server's answers, never from the mere fact
-- that Ctrl-C or an error happened:
--   * an answer that is an error (any SQLSTATE outside class 08, a
--     terminated backend's 57P01 included) means the statement did not
--     commit: in autocommit it was its own transaction, and a COMMIT
--     answered with an error committed nothing;
--   * no answer (the connection was lost: class 08, or libpq's own error
--     without a SQLSTATE) after an autocommit statement or a COMMIT was
--     sent means nobody can tell: such rows are "in doubt";
--   * Ctrl-C is held (runtime/interrupt.h) while a caller sends and keeps
--     its books: a cancel request still goes out, the statement's own
--     answer still decides, and the caller raises the interrupt itself at
--     a point where its books are right.
local core = require "sluice.core"

local M = {}

--- Did err come without an answer from the server (a lost connection)?
-- No SQLSTATE, or class 08 unless the server sent it as a plain ERROR
-- (08P01 for bad binary data in one statement: the session goes on).
function M.unanswered(err)
  if type(err) ~= "table" then return false end
  local code = err.sqlstate
  return type(code) ~= "string" or code == ""
    or (code:sub(1, 2) == "08" and err.severity ~= "ERROR")
end

-- Raised inside a held section for a pending interrupt.
local Interrupt = {}
Interrupt.__index = Interrupt
Interrupt.__tostring = function(e) return "interrupted (" .. e.signal .. ")" end

--- The signal name ("Ctrl-C", "SIGTERM") when err is an interrupt taken by
-- M.check(), else nil.
function M.interrupt_of(err)
  return getmetatable(err) == Interrupt and err.signal or nil
end

--- Inside a held section, after a round trip: raise the pending interrupt
-- (consumed) so the caller stops here, its books right.
function M.check()
  local sig = core.interrupt_take()
  if sig then M.raise(sig) end
end

--- Take a pending interrupt without raising: its signal name, or nil.
function M.take()
  return core.interrupt_take()
end

--- The error M.check() raises for sig ("Ctrl-C", "SIGTERM").
function M.interrupt(sig)
  return setmetatable({ signal = sig }, Interrupt)
end

--- Raise an interrupt taken earlier (sig from M.take()), as M.check() does.
function M.raise(sig)
  error(M.interrupt(sig), 0)
end

local sluice_error -- sluice.error, looked up lazily (init.lua loads us)

--- An error object: err's fields (the server's error object, or just the
-- message of a string error or an interrupt) with prefix before its
-- message and extra fields.
function M.reworded(err, prefix, fields)
  local e = {}
  if type(err) == "table" and not M.interrupt_of(err) then
    for k, v in pairs(err) do e[k] = v end
  else
    e.message = tostring(err)
  end
  e.message = prefix .. tostring(e.message)
  for k, v in pairs(fields) do e[k] = v end
  sluice_error = sluice_error or require("sluice").error
  return sluice_error(e)
end

--- pcall(fn, ...) with interrupts held; the hold ends on every path.
local function released(...)
  core.interrupt_release()
  return ...
end

function M.held(fn, ...)
  core.interrupt_hold()
  return released(pcall(fn, ...))
end

local function taken(...)
  return core.interrupt_take(), ...
end

--- held(fn, ...), also taking a pending interrupt before the hold ends
-- (once it ends, the hook would raise it at once): returns its signal
-- name or nil, then what pcall(fn, ...) returned.
function M.held_take(fn, ...)
  core.interrupt_hold()
  return released(taken(pcall(fn, ...)))
end

return M
