--- Command-line arguments for scripts: options and positional numbers.
--
--   local a = sluice.args.parse({ ... }, {
--     usage = "usage: shop.lua [users] [orders] [--seed N] [--check]",
--     options = { seed = "number", schema = "string", check = "flag" },
--     positional = 2,            -- at most this many positional numbers
--   })
--   a.seed, a.check, a[1], a[2]
--
-- An unknown argument, a missing or non-numeric option value, or too many
-- positional numbers raise "<usage>  (<what was wrong>)" without a
-- position, so the executable prints just that line.
local M = {}

function M.parse(list, spec)
  local out = {}
  local options, maxpos = spec.options or {}, spec.positional or 0
  local function fail(why)
    error(spec.usage .. "  (" .. why .. ")", 0)
  end
  local i = 1
  while i <= #list do
    local a = list[i]
    local name = a:match("^%-%-(.+)$")
    local kind = name and options[name]
    if kind == "flag" then
      out[name] = true
    elseif kind then
      local v = list[i + 1]
      if v == nil then fail("--" .. name .. " needs a value") end
      if kind == "number" then
        v = tonumber(v)
        if not v then fail("--" .. name .. " needs a number") end
      end
      out[name] = v
      i = i + 1
    elseif not name and tonumber(a) and #out < maxpos then
      out[#out + 1] = math.floor(tonumber(a))
    else
      fail("unknown argument " .. a)
    end
    i = i + 1
  end
  return out
end

return M
