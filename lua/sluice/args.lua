--- Command lines for scripts: Debian's lua-argparse, with sluice's
-- conventions added.  The parser is argparse's own (its documentation:
-- /usr/share/doc/lua-argparse, or https://argparse.readthedocs.io):
--
--   local args = require("sluice").args
--   local p = args.parser("shop.lua", "Generates a synthetic shop.")
--   p:argument("users", "How many users."):args("?"):convert(args.integer(1))
--   p:option("--seed", "The seed.", "1"):convert(args.integer())
--   p:flag("--check", "Compare the results.")
--   local a = p:parse()           -- the script's arguments (arg)
--   -- a.users (nil when not given), a.seed, a.check
--
-- What it adds to a plain argparse parser:
--   * a bad command line prints the usage and what was wrong on stderr and
--     exits with status 2 (argparse alone exits 1), as the sluice
--     executable does for its own options; p:error(msg) does the same for
--     the script's own checks;
--   * -h/--help prints the help on stdout and exits 0 (argparse's own);
--   * --quiet on every parser: no live progress lines, as `sluice --quiet`
--     (it sets SLUICE_QUIET, which sluice.progress and workers read);
--   * converters that say what was wrong: args.integer([min]) and
--     args.number([min]).
-- argparse is required at the first parser, so that require "sluice"
-- works where it is not installed.
local ffi = require "ffi"

pcall(ffi.cdef, [[ int sluice_args_setenv(const char *name, const char *value, int overwrite)
  __asm__("setenv"); ]])

local M = {}

-- argparse's Parser:error, with status 2: the usage, then what was wrong.
local function usage_error(p, msg)
  io.stderr:write(("%s\n\nError: %s\n"):format(p:get_usage(), msg))
  io.stderr:flush()
  os.exit(2, true)
end

--- args.parser(name, description, epilog) -> an argparse parser (see the
-- top of this file).  name defaults to the script's file name.
function M.parser(name, description, epilog)
  if name == nil then
    local script = rawget(_G, "arg") and _G.arg[0] or "script"
    name = tostring(script):match("[^/]*$")
  end
  local p = require("argparse")(name, description, epilog):help_max_width(80)
  p.error = usage_error
  -- parse the script's arguments as they are now (argparse alone reads
  -- the global arg as it was when argparse was first required)
  -- --quiet goes last, after the script's own options
  local parse, pparse, quiet = p.parse, p.pparse, false
  local function prepare(self, list)
    if not quiet then
      quiet = true
      self:flag("--quiet", "No live progress lines (final summaries are still printed).")
        :action(function(result, target)
          result[target] = true
          ffi.C.sluice_args_setenv("SLUICE_QUIET", "1", 1)
        end)
    end
    return list or rawget(_G, "arg") or {}
  end
  p.parse = function(self, list) return parse(self, prepare(self, list)) end
  p.pparse = function(self, list) return pparse(self, prepare(self, list)) end
  return p
end

local function converter(kind, check, min)
  return function(s)
    local v = tonumber(s)
    if not v or not check(v) then
      return nil, ("'%s' is not %s"):format(s, kind)
    end
    if min and v < min then
      return nil, ("%s is less than %s"):format(s, tostring(min))
    end
    return v
  end
end

local function is_integer(v) return v % 1 == 0 and v == v and v > -math.huge and v < math.huge end
local function is_number(v) return v == v and v > -math.huge and v < math.huge end

--- A converter for p:argument/p:option (:convert(args.integer(1))): the
-- value as a Lua number, which must be an integer, at least min if given.
function M.integer(min)
  return converter("an integer", is_integer, min)
end

--- A converter like args.integer, for any finite number.
function M.number(min)
  return converter("a number", is_number, min)
end

return M
