--- Lua-side helpers the C value encoders share (COPY streams, sinks,
-- batches, pipelines): telling int64 from uint64 cdata, and the default
-- JSON encoder for json/jsonb columns given Lua tables; and the one
-- iterator over a list of rows that sluice.load and Model:save_all take.
local ffi = require "ffi"

local M = {}

local int64_t = ffi.typeof("int64_t")
local uint64_t = ffi.typeof("uint64_t")

--- The C encoders ask this for cdata values only: 1 = int64, 2 = uint64,
-- nil for any other cdata.
-- Vector columns also ask it of float or double buffers: 3 = float,
-- 4 = double, then the element count (-1 for a pointer: the column's
-- dimension says) and the address as a number (the value stays on the
-- caller's stack meanwhile).
local FLOATS = {} -- ctype id -> 3 or 4 (arrays), -3 or -4 (pointers), false
function M.float_buffer(v)
  local ct = ffi.typeof(v)
  local id = tonumber(ct)
  local k = FLOATS[id]
  if k == nil then
    local elem, shape = tostring(ct):match("^ctype<(.-) ?([%[%*][^>]*)>$")
    elem = elem and elem:gsub("^const ", "")
    k = (elem == "float" and 3) or (elem == "double" and 4) or false
    if k and shape == "*" then
      k = -k
    elseif k and not shape:match("^%[[%d?]+%]$") then
      k = false
    end
    FLOATS[id] = k
  end
  if not k then return nil end
  if k < 0 then return -k, -1, tonumber(ffi.cast("uintptr_t", v)) end
  return k, ffi.sizeof(v) / (k == 3 and 4 or 8), tonumber(ffi.cast("uintptr_t", v))
end

-- float_buffer without the address (the compiled row writer passes the
-- cdata itself).
function M.float_kind(v)
  local k = FLOATS[tonumber(ffi.typeof(v))]
  if k == nil then
    M.float_buffer(v)
    k = FLOATS[tonumber(ffi.typeof(v))]
  end
  if not k then return nil end
  if k < 0 then return -k, -1 end
  return k, ffi.sizeof(v) / (k == 3 and 4 or 8)
end

function M.cdata_kind(v)
  if ffi.istype(int64_t, v) then return 1 end
  if ffi.istype(uint64_t, v) then return 2 end
  return M.float_buffer(v)
end

local cjson_encode -- loaded on first use of a json column

--- lua-cjson's encode, or nil when lua-cjson is not installed.
function M.default_json_encode()
  if cjson_encode == nil then
    local ok, cjson = pcall(require, "cjson")
    cjson_encode = ok and cjson.encode or false
  end
  return cjson_encode or nil
end

--- An iterator over the list `list` (keys 1..n), or nil and what is
-- wrong with it: a nil inside a list would end a load early, without a
-- word, at the hole.
function M.list_iterator(list)
  local n, keys = #list, 0
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      return nil, "a table with key " .. ("%q"):format(tostring(k))
    end
    keys = keys + 1
  end
  if keys ~= n then return nil, "a table with a nil inside" end
  local j = 0
  return function()
    j = j + 1
    return list[j]
  end
end

--- Whether v can be called: a function, or a table or userdata whose
-- metatable has __call (a rejects writer, sluice.rejects).
function M.callable(v)
  if type(v) == "function" then return true end
  local mt = (type(v) == "table" or type(v) == "userdata") and getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

return M
