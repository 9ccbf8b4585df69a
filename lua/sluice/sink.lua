--- sluice.sink: write rows to a file (CSV or COPY text, gzip optional)
-- with the same object a COPY stream is, so a script switches its
-- destination between a database and a file with one line:
--
--   local out = db:copy("people", {"id", "name", "born"})
--   local out = sluice.sink.file("people.csv.gz", {columns = {"id", "name", "born"}})
--   for ... do out:row(id, name, born) end
--   print(out:finish(), "rows")
--
-- This module checks the options and turns `types` into column specs; the
-- encoding is the COPY stream's own C code (runtime/lib_copy*.c over
-- runtime/copyenc.c and copy.c) and the file handling is runtime/sink.c,
-- through runtime/lib_sink.c.  What it writes is what
-- `psql \copy t from 'file'` (text) or `... (format csv, header)` (CSV)
-- loads back to the same rows.
--
-- sluice.sink.file(path, opts) -> sink
--   path       a file name, or "-" for standard output.
--   opts.columns   list of column names (required): the header line and
--                  the number of values each row must have.
--   opts.format    "csv" (default) or "text" (COPY's text format).
--   opts.gzip      true (level 6) or a level 1 to 9: gzip the output;
--                  default true when path ends in ".gz", else false.
--   opts.header    write the column names first (default: true for CSV,
--                  false for text; PostgreSQL 15 reads a text header too).
--   opts.delimiter one byte (default "," for CSV, tab for text); not CR,
--                  LF, backslash or '"' (and, for text, not a letter, a
--                  digit or one of ".-+: ", which appear in numbers).
--   opts.null      the text written for NULL (default: an unquoted empty
--                  field in CSV, \N in text).  In CSV a value whose text
--                  equals it is quoted (so it stays a value); in text
--                  format that value is an error (it would read back as
--                  NULL).  Load with the same `null` option.
--   opts.types     optional PostgreSQL types, a list parallel to columns
--                  or a map {name = type}: "text", "bool", "int2/4/8",
--                  "float4/8", "numeric", "bytea", "date", "timestamp",
--                  "timestamptz", "json", "jsonb", "uuid" (and the usual
--                  spellings: integer, bigint, boolean, double precision,
--                  ...), or "<type>[]" for an array.  A typed column encodes
--                  exactly as a COPY into a column of that type would.
--   opts.json_encode   function(table) -> string for json/jsonb columns
--                  given tables (default: lua-cjson's encode).
--   opts.chunk_size    bytes buffered before a write (default 64 KiB).
--
-- Without a catalog, an untyped column encodes each value by its Lua
-- type: strings as they are (escaped/quoted), numbers with COPY text's
-- number formatting (the shortest text that reads back as the same
-- double; integers without a fraction), booleans as true/false, nil and
-- sluice.null as NULL, int64 cdata as its digits, and a table as an array
-- literal {a,b,...} (nested tables: more dimensions).  A table meant as
-- JSON needs types = {col = "json"}; a column typed "bool" writes t/f.
--
-- The sink (a "sluice.copy" userdata: the COPY stream's methods):
--   s:row(v1, ..., vN)   one row, one value per column
--   s:rows(list)         many rows (arrays; NULL inside must be sluice.null)
--   s:flush()            write the buffered rows now
--   s:finish()           flush, close, put the file in place -> rows
--                        written; raises "path: what" on a write or close
--                        error (the output is discarded then)
--   s:abort()            stop and discard the output -> true, or false
--                        when it was already over
--   fields: rows_sent, bytes_sent (bytes before compression), path,
--   format, state ("open", "finished", "aborted", "failed"), columns.
--
-- Files are never left half-written under their name: a regular file is
-- written to "<path>.sluice-XXXXXX" beside it and renamed over the path
-- by finish(); abort(), any error (a bad value, a failed write: disk
-- full, EPIPE, both raised with the path) and garbage collection of an
-- unfinished sink remove it, leaving an older file of that name as it
-- was.  Devices and FIFOs are written in place, and "-" is standard
-- output: there a discard only stops writing.
local core = require "sluice.core"

local M = {}

local cdata_kind = require("sluice.values").cdata_kind

-- Type OIDs (pg_type.dat) of the types a sink encodes like COPY does.
local TYPE_OIDS = {
  text = 25, varchar = 1043, ["character varying"] = 1043, bpchar = 1042,
  char = 1042, character = 1042, name = 19, citext = 25,
  bool = 16, boolean = 16,
  int2 = 21, smallint = 21, int4 = 23, int = 23, integer = 23,
  int8 = 20, bigint = 20, oid = 26,
  float4 = 700, real = 700, float8 = 701, ["double precision"] = 701,
  numeric = 1700, decimal = 1700,
  bytea = 17, date = 1082,
  timestamp = 1114, ["timestamp without time zone"] = 1114,
  timestamptz = 1184, ["timestamp with time zone"] = 1184,
  json = 114, jsonb = 3802, uuid = 2950,
}

local TEXT_OID = 25

local function type_spec(name, ty, i)
  if type(ty) ~= "string" then
    error(("sink: types for column %d (%s) must be a type name string, got %s")
          :format(i, name, type(ty)), 4)
  end
  local t = ty:lower():gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s+", " ")
  local elem = t:match("^(.-)%s*%[%]$")
  local oid = TYPE_OIDS[elem or t]
  if not oid then
    error(("sink: unknown type '%s' for column %d (%s); known: text, bool, "
           .. "int2, int4, int8, float4, float8, numeric, bytea, date, "
           .. "timestamp, timestamptz, json, jsonb, uuid and their arrays (t[])")
          :format(ty, i, name), 4)
  end
  if elem then
    return { name = name, type_name = ty, base_oid = 0,
             elem_oid = oid, elem_base_oid = oid }, oid
  end
  return { name = name, type_name = ty, base_oid = oid }, oid
end

local OPTS = {
  columns = true, format = true, gzip = true, header = true,
  delimiter = true, null = true, types = true, json_encode = true,
  chunk_size = true,
}

local default_json_encode = require("sluice.values").default_json_encode

-- sink.file's path and first options, checked (misuse raises at the
-- line that called sink.file): the format, the columns, the gzip level
-- (0: none) and whether a header line is written.
local function file_options(path, opts)
  if type(path) ~= "string" or path == "" then
    error("sink.file: path must be a file name or \"-\", got "
          .. (path == "" and "an empty string" or type(path)), 3)
  end
  if type(opts) ~= "table" then
    error("sink.file: opts must be a table with at least columns, got "
          .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not OPTS[k] then
      error("sink.file: unknown option '" .. tostring(k) .. "' (columns, "
            .. "format, gzip, header, delimiter, null, types, json_encode, "
            .. "chunk_size)", 3)
    end
  end
  local format = opts.format or "csv"
  if format ~= "csv" and format ~= "text" then
    error("sink.file: format must be \"csv\" or \"text\", got "
          .. tostring(format), 3)
  end
  local columns = opts.columns
  if type(columns) ~= "table" or #columns == 0 then
    error("sink.file: columns must be a non-empty list of column names", 3)
  end
  local gzip = opts.gzip
  if gzip == nil then gzip = path:match("%.gz$") ~= nil end
  if gzip == true then
    gzip = 6
  elseif gzip == false then
    gzip = 0
  elseif type(gzip) ~= "number" or gzip < 1 or gzip > 9
         or gzip ~= math.floor(gzip) then
    error("sink.file: gzip must be a boolean or a level from 1 to 9", 3)
  end
  local header = opts.header
  if header == nil then header = format == "csv" end
  if type(header) ~= "boolean" then
    error("sink.file: header must be a boolean", 3)
  end
  return format, columns, gzip, header
end

-- The rest of the options, checked as file_options does: the delimiter
-- and NULL text (nil: the format's), and the chunk size.
local function more_options(opts, format)
  local delim = opts.delimiter
  if delim ~= nil then
    if type(delim) ~= "string" or #delim ~= 1 or delim:find("[\r\n\\\"%z]")
       or (format == "text" and delim:find("[%w%.%-%+: ]")) then
      error("sink.file: delimiter must be one byte, not CR, LF, backslash "
            .. "or '\"'" .. (format == "text"
              and " (nor, in text format, a letter, digit or .-+: )" or ""), 3)
    end
  end
  local null = opts.null
  if null ~= nil then
    local d = delim or (format == "csv" and "," or "\t")
    if type(null) ~= "string" or null:find("[\r\n\"%z]")
       or null:find(d, 1, true) then
      error("sink.file: null must be a string without CR, LF, '\"' or the "
            .. "delimiter", 3)
    end
    -- a row of one NULL would be the line "\.", which the server takes for
    -- the end of the data: it would stop loading there without a word
    if null:sub(1, 2) == "\\." then
      error("sink.file: null must not begin with \\. (a row of one NULL would be "
            .. "the end-of-data line)", 3)
    end
  end
  if opts.json_encode ~= nil and type(opts.json_encode) ~= "function" then
    error("sink.file: json_encode must be a function", 3)
  end
  local chunk = opts.chunk_size
  if chunk ~= nil and (type(chunk) ~= "number" or chunk < 1024 or chunk > 2^30
                       or chunk ~= math.floor(chunk)) then
    error("sink.file: chunk_size must be an integer from 1024 to 2^30 bytes", 3)
  end
  if opts.types ~= nil and type(opts.types) ~= "table" then
    error("sink.file: types must be a list or a map of type names", 3)
  end
  return delim, null, chunk
end

-- Each column's spec (see lib_copy_new_sink in runtime/lib.h), and
-- whether a json column needs the default encoder.  Raises as
-- file_options does.
local function column_specs(columns, types)
  local specs, need_json, seen = {}, false, {}
  for i, name in ipairs(columns) do
    if type(name) ~= "string" or name == "" then
      error(("sink.file: column %d must be a non-empty string, got %s")
            :format(i, type(name)), 3)
    end
    if seen[name] then
      error(("sink.file: column \"%s\" is listed twice"):format(name), 3)
    end
    seen[name] = true
    local ty = types and (types[i] or types[name])
    if ty ~= nil then
      local spec, oid = type_spec(name, ty, i)
      if oid == 114 or oid == 3802 then need_json = true end
      specs[i] = spec
    else
      -- untyped: text, or a text[] literal when given a table (see above)
      specs[i] = { name = name, type_name = "untyped", base_oid = TEXT_OID,
                   elem_oid = TEXT_OID, elem_base_oid = TEXT_OID }
    end
  end
  if types then
    for k in pairs(types) do
      if type(k) ~= "number" and not seen[k] then
        error(("sink.file: types names column \"%s\", which is not in "
               .. "columns"):format(tostring(k)), 3)
      end
    end
  end
  return specs, need_json
end

--- Open a file sink; see the top of this file.
function M.file(path, opts)
  local format, columns, gzip, header = file_options(path, opts)
  local delim, null, chunk = more_options(opts, format)
  local specs, need_json = column_specs(columns, opts.types)
  local ok, sink = pcall(core.sink_open, path, format, specs, {
    gzip = gzip, header = header, delimiter = delim, null = null,
    chunk_size = chunk, cdata_kind = cdata_kind,
    json_encode = opts.json_encode or (need_json and default_json_encode()),
  })
  if not ok then error(sink, 2) end
  return sink
end

return M
