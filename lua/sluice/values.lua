--- Lua-side helpers the C value encoders share (COPY streams, sinks,
-- batches, pipelines): telling int64 from uint64 cdata, and the default
-- JSON encoder for json/jsonb columns given Lua tables.
local ffi = require "ffi"

local M = {}

local int64_t = ffi.typeof("int64_t")
local uint64_t = ffi.typeof("uint64_t")

--- The C encoders ask this for cdata values only: 1 = int64, 2 = uint64,
-- nil for any other cdata.
function M.cdata_kind(v)
  if ffi.istype(int64_t, v) then return 1 end
  if ffi.istype(uint64_t, v) then return 2 end
  return nil
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

return M
