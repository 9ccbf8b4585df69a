--- sluice.text: per-row helpers for transform scripts that LuaJIT
-- compiles, so a loop that cleans every row stays in compiled code.
--
--   local text = sluice.text
--   local signup = text.date_layout("MM/DD/YYYY")       -- compiled once
--   for row in sluice.csv.rows("users.csv") do
--     cp:row(text.lower(text.trim(row.email)), signup(row.signup_date),
--            text.number(row.balance, true))              -- "1.234,56"
--   end
--
-- Why: string.match, string.gmatch, string.gsub and string.find with a
-- pattern are not compiled by LuaJIT 2.1: the trace stops at each call
-- ("stitch" in -jv output) and the call runs in the interpreter, many
-- times the cost of the compiled code around it.  The same goes for
-- tonumber on a string that is not a number, os.time and os.date.  These
-- helpers are plain Lua that compiles (string.byte, string.sub,
-- string.find with plain = true) or FFI calls into the C core
-- (runtime/textops.c), which compile to a direct call.
--
-- NULL in, NULL out: every helper returns nil or sluice.null as it gets
-- it.  Another type than a string raises (misuse).
--
-- text.date_layout(layout [, as]) -> parse;  parse(s) -> value | nil, err
-- text.timestamp_layout(layout [, as]) -> parse
--   layout: tokens YYYY, YY (70-99: 1970-1999, 00-69: 2000-2069, the
--   server's rule), MM, DD, HH24, HH12, HH (24-hour, or 12-hour with
--   AM/PM), MI, SS, FF (fraction, 1-6 digits), AM/PM; any case; other
--   characters literal, letters in double quotes ("YYYY-MM-DD\"T\"HH24:MI").
--   A field before a separator takes 1 digit up to its width, one before
--   another field exactly its width ("YYYYMMDD"); years always their
--   width.  No spaces around the value.
--   The value: epoch seconds (a number: the wall-clock time taken as UTC;
--   a date's midnight), which binary COPY encodes without parsing
--   anything; as = "iso": ISO 8601 text ("2024-03-07", "2024-03-07
--   14:05:00").  A string that does not follow the layout gives nil and an
--   error object: sqlstate 22007 (not the layout) or 22008 (a field out
--   of range: month 13, Feb 30, 25:00), the server's words and SQLSTATEs
--   for such dates.  A bad layout raises.
--   For a timestamptz column, epoch seconds are UTC instants: give local
--   times as ISO text (as = "iso", read in the session TimeZone) or use
--   db:copy's layouts option.
-- text.date(s, layout), text.timestamp(s, layout): the same, the layout
--   compiled at its first use and kept.
-- text.trim(s): without leading and trailing spaces (space, \t \n \v \f \r).
-- text.lower(s), text.upper(s): ASCII letters only, other bytes unchanged
--   (LuaJIT's own string.lower/upper, which compile already: s:lower() is
--   as fast; these add NULL passing through).
-- text.split_at(s, sep) -> before, after: around the first sep (a plain
--   string, no pattern); nil when s has none.
-- text.before(s, sep), text.after(s, sep): one of the two; nil when s
--   has no sep.
-- text.number(s [, decimal_comma]) -> number | nil: decimal text with
--   optional spaces around, a sign, thousands separators ("1,234.56";
--   with decimal_comma = true "1.234,56"), a fraction and an exponent;
--   nil for anything else (also what tonumber takes beyond that: hex,
--   inf, nan, "1,5" without decimal_comma).  A number is returned as it
--   is.
local core = require "sluice.core"
local ffi = require "ffi"

local M = {}

local type, byte, sub, find = type, string.byte, string.sub, string.find
local NULL = core.null

local F = {}
local fns, LAYOUT_SIZE, ISO_MAX = core.text_functions()
for name, f in pairs(fns) do F[name] = ffi.cast(f.sig, f.fn) end
local layout_t = ffi.typeof("uint64_t[$]", math.ceil(LAYOUT_SIZE / 8))
local iso_t = ffi.typeof("char[$]", ISO_MAX)

-- A value that is not a string: NULL passes, anything else is misuse
-- (raised at the line that called the helper).
local function not_string(fname, v)
  if v == nil or v == NULL then return v end
  error("sluice.text." .. fname .. ": expected a string, got " .. type(v), 3)
end

local lower, upper = string.lower, string.upper

-- LuaJIT's own string.lower/upper (ASCII only, whatever the locale; they
-- compile), with NULL passed through.
function M.lower(s)
  if type(s) ~= "string" then return not_string("lower", s) end
  return lower(s)
end

function M.upper(s)
  if type(s) ~= "string" then return not_string("upper", s) end
  return upper(s)
end

--------------------------------------------------------------- layouts

-- The error object of a value the layout refuses (rc: SL_EINVAL -3,
-- SL_ERANGE -4).
local function refusal(tname, layout, s, rc)
  local shown = ("%q"):format(s):gsub("\\\n", "\\n")
  if rc == -4 then
    return core.new_error { severity = "ERROR", sqlstate = "22008",
      message = ("date/time field value out of range: %s (layout %s)"):format(shown, layout) }
  end
  return core.new_error { severity = "ERROR", sqlstate = "22007",
    message = ("invalid input syntax for type %s: %s (layout %s)"):format(tname, shown, layout) }
end

-- The parser of a layout (date_only: dates), raising at `level` for a
-- bad layout.
local function parser(fname, layout, date_only, as, level)
  if type(layout) ~= "string" then
    error(("sluice.text.%s: the layout must be a string, got %s"):format(fname, type(layout)),
          level)
  end
  if as ~= nil and as ~= "epoch" and as ~= "iso" then
    error(("sluice.text.%s: as must be \"epoch\" or \"iso\", got %s"):format(fname, tostring(as)),
          level)
  end
  local lay = layout_t()
  local err = ffi.new("char[256]")
  if F.layout_compile(lay, layout, #layout, err, 256) ~= 0 then
    error("sluice.text." .. fname .. ": " .. ffi.string(err), level)
  end
  local what = date_only and 1 or 0
  local tname = date_only and "date" or "timestamp"
  local epoch, check, iso_of = F.epoch, F.check, F.iso_of
  local pname = date_only and "date" or "timestamp"
  if as == "iso" then
    local out = iso_t()
    return function(s)
      if type(s) ~= "string" then return not_string(pname, s) end
      local n = iso_of(lay, s, #s, what, out)
      if n >= 0 then return ffi.string(out, n) end
      return nil, refusal(tname, layout, s, n)
    end
  end
  return function(s)
    if type(s) ~= "string" then return not_string(pname, s) end
    local x = epoch(lay, s, #s, what)
    if x == x then return x end -- NaN: refused
    return nil, refusal(tname, layout, s, check(lay, s, #s))
  end
end

function M.date_layout(layout, as)
  return parser("date_layout", layout, true, as, 3)
end

function M.timestamp_layout(layout, as)
  return parser("timestamp_layout", layout, false, as, 3)
end

local date_cache, ts_cache = {}, {}

function M.date(s, layout)
  local p = date_cache[layout]
  if p == nil then
    p = parser("date", layout, true, nil, 3)
    date_cache[layout] = p
  end
  return p(s)
end

function M.timestamp(s, layout)
  local p = ts_cache[layout]
  if p == nil then
    p = parser("timestamp", layout, false, nil, 3)
    ts_cache[layout] = p
  end
  return p(s)
end

---------------------------------------------------------------- strings

-- A string with no space (isspace in the C locale: space, \t \n \v \f
-- \r) at either end is returned as it is (two byte reads); else the C
-- core counts the spaces (a loop here would be a trace of its own, which
-- the loop calling trim would leave each time).
local space_start, space_end = F.space_start, F.space_end

function M.trim(s)
  if type(s) ~= "string" then return not_string("trim", s) end
  local n = #s
  if n == 0 then return s end
  local c1, c2 = byte(s, 1), byte(s, n)
  if c1 ~= 32 and (c1 > 13 or c1 < 9) and c2 ~= 32 and (c2 > 13 or c2 < 9) then return s end
  local a = tonumber(space_start(s, n))
  if a == n then return "" end
  return sub(s, a + 1, n - tonumber(space_end(s, n)))
end

-- The separator of split_at, before and after: a non-empty string.
local function check_sep(fname, sep)
  if type(sep) ~= "string" or sep == "" then
    error("sluice.text." .. fname .. ": the separator must be a non-empty string, got "
          .. (sep == "" and "\"\"" or type(sep)), 3)
  end
end

function M.split_at(s, sep)
  if type(s) ~= "string" then return not_string("split_at", s) end
  check_sep("split_at", sep)
  local i = find(s, sep, 1, true)
  if i == nil then return nil end
  return sub(s, 1, i - 1), sub(s, i + #sep)
end

function M.before(s, sep)
  if type(s) ~= "string" then return not_string("before", s) end
  check_sep("before", sep)
  local i = find(s, sep, 1, true)
  if i == nil then return nil end
  return sub(s, 1, i - 1)
end

function M.after(s, sep)
  if type(s) ~= "string" then return not_string("after", s) end
  check_sep("after", sep)
  local i = find(s, sep, 1, true)
  if i == nil then return nil end
  return sub(s, i + #sep)
end

---------------------------------------------------------------- numbers

local number = F.number

function M.number(s, decimal_comma)
  if type(s) ~= "string" then
    if type(s) == "number" then return s end
    return not_string("number", s)
  end
  local x = number(s, #s, decimal_comma and 1 or 0)
  if x == x then return x end
  return nil
end

return M
