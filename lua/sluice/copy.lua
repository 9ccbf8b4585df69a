--- COPY streams: db:copy() loads rows with COPY ... FROM STDIN, and
-- db:copy_out() reads rows with COPY ... TO STDOUT.
--
-- This module does the control-path work that is easier in Lua: argument
-- checks, identifier quoting, the one catalog query that finds each
-- column's type, and the choice of format.  The stream itself (encoding
-- every row in C into a large buffer, sending it with PQputCopyData) is
-- runtime/lib_copy.c (values: lib_copy_values.c, lib_copy_binary.c) over
-- the core's runtime/copyenc.c and runtime/copy.c.
--
--   local cp = db:copy("public.items", {"id", "name", "price"})
--   for i = 1, n do cp:row(i, names[i], prices[i]) end
--   local loaded = cp:finish()
--
--   for row in db:copy_out("select id, name from items") do
--     print(row[1], row[2])          -- strings; NULL is sluice.null
--   end
--
-- Names: a table is "name" or "schema.name" (or {schema, name} when a
-- name itself holds a dot); names are taken literally, as they are stored
-- in the catalog (no case folding), and quoted with libpq's escaping.
--
-- db:copy(table [, columns] [, opts]) -> stream
--   columns: a list of column names; omitted or nil: every column except
--     generated ones, in table order.
--   opts.format: "auto" (default), "text", "csv" or "binary".  "auto" is
--     binary when every column has a binary encoder (text-like types,
--     bool, int2/4/8, oid, float4/8, numeric, bytea, date, timestamp,
--     timestamptz, json, jsonb, uuid, enums, and arrays of these), else
--     text; it is text too when a timestamptz column exists and the
--     rules of the session TimeZone cannot be read from the system
--     zoneinfo (binary then needs an explicit offset in timestamp
--     strings; text lets the server apply the zone).  Binary reads
--     date/time strings as the server does, in the session's DateStyle
--     and TimeZone (README, "Values"); now, today, tomorrow, yesterday
--     and zone names or abbreviations other than UTC/GMT/Z are refused
--     there (format = "text" loads them).
--   opts.chunk_size: bytes buffered before they are sent (default 64 KiB,
--     1 KiB to 1 GiB).
--   opts.json_encode: function(table) -> string for json/jsonb columns
--     given Lua tables (default: lua-cjson's encode).
--   opts.freeze: true adds FREEZE (rows written already frozen, no later
--     vacuum pass); the server accepts it only when the table was created
--     or truncated in the current transaction (sluice.load's freeze).
--   opts.quiet: true shows no progress at all.  Otherwise a stream shows
--     the live progress line on a terminal (sluice.progress: after a
--     second; rows, rows/s, MB/s sent) and, when finish() succeeds, the
--     summary "<table> copy: N rows, R rows/s, X MB/s, m:ss" on stderr
--     (the server's row count; --quiet and a stderr that is no terminal:
--     the summary only).  The line is updated where the stream hands a
--     chunk to libpq, never per row.
--   opts.on_reject: function(values, err, row) - reject mode: a row the
--     encoders or the server refuse for its own fault (a bad value, a
--     wrong value count, a NOT NULL / unique / foreign key / CHECK /
--     exclusion violation, a trigger's RAISE: SQLSTATE classes 22, 23,
--     44, P0) is handed over and every other row loaded.  The rows go in
--     chunks of opts.reject_chunk rows (default 100000, and at most 16 MiB
--     of encoded rows), each one COPY in
--     its own transaction (committed as it ends), or under a savepoint
--     when a transaction is open.  A chunk the server refuses is sent
--     again without the row its error names ("COPY t, line N"), or in
--     halves when it names none (a foreign key, a statement trigger), so
--     a failing chunk costs about two more sends and a clean one nothing.
--     on_reject gets the values as given, the error object (err.sqlstate,
--     err.message, err.column ...; the encoders' refusals carry the
--     SQLSTATE the server would give: 22P02, 22003, 22021, 22P04 ...) and
--     the row number (1-based, every row given counts), in row order,
--     once the chunk is committed; it may use the connection.  An error
--     that is no row's fault (a lost connection, Ctrl-C) rolls the
--     current chunk back and says in err.committed_rows what earlier
--     chunks committed.  Deferred constraints are checked at COMMIT: in a
--     chunk's own transaction that is the chunk's, and the chunk is
--     settled by halves; under the caller's transaction they fire at the
--     caller's COMMIT, which then fails as a whole.
--     cp:finish() returns the rows loaded; cp.rows_loaded,
--     cp.rows_rejected count as it goes.
--   opts.layouts: { column = "MM/DD/YYYY", ... } for date, timestamp and
--     timestamptz columns (or domains over them): a string value is read
--     by that layout (sluice.text's tokens, runtime/textops.h) in C, by
--     the compiled row writer and the C encoders alike - binary gets the
--     value, text and CSV its ISO text - instead of by the server's
--     date/time input; a timestamptz's value is local time in the session
--     TimeZone.  Numbers (epoch seconds) and NULL are taken as without a
--     layout.  A string the layout does not read is refused as a bad
--     value: 22007, or 22008 for a field out of range (Feb 30), naming
--     the row, column, value and layout (set aside in reject mode).
--
-- The stream (runtime/lib_copy.c has the details):
--   cp:row(v1, ..., vN)  one row, exactly one value per column; nil or
--                        sluice.null is NULL
--   cp:rows(list)        many rows, each an array of N values (NULL inside
--                        a table must be sluice.null); returns #list
--   cp:flush()           send the buffered rows now
--   cp:finish()          end the COPY -> rows loaded (the server's count);
--                        raises the server's error object if it failed
--   cp:abort([msg])      end it without loading anything -> true, or
--                        false when it was already over
--   read-only fields: cp.rows_sent (rows encoded so far), cp.bytes_sent
--   (bytes handed to libpq), cp.buffered (bytes encoded, not yet sent),
--   cp.buffer_size (bytes allocated), cp.chunk_size, cp.format,
--   cp.state ("open", "finished", "aborted", "failed"), cp.columns.
--   Any error raised by row/rows/flush/finish ends the COPY (the server
--   rolls it back) and frees the connection.  A stream dropped unfinished
--   is aborted the same way when it is collected, at the latest when the
--   connection is next used (a busy connection collects garbage once
--   before it refuses a call).
--
-- db:copy_out(query_or_table [, opts]) -> reader
--   A SELECT/WITH/VALUES/TABLE query (anything that is not a plain or
--   schema-qualified name) is run as COPY (query) TO STDOUT; a name copies
--   the whole table.  The reader is callable: `for row in reader do`.
--   Each row is an array of strings, NULL as sluice.null.  reader:close()
--   stops early; a reader dropped after `break` (or an error in the loop
--   body) is closed when collected, at the latest by the next call on the
--   connection, as above.  Stopping early cancels the COPY when no
--   transaction is open, and otherwise reads and discards the remaining
--   rows (a cancel would abort the caller's transaction).  reader.rows
--   counts the rows read, reader.state is "open", "done" or "closed".

local core = require "sluice.core"
local progress = require "sluice.progress"
local citus = require "sluice.citus"

local M = {}

local NULL = core.null

local cdata_kind = require("sluice.values").cdata_kind

-- Receive functions that read plain text: their types encode as text in
-- binary COPY (citext and other text-like extension types, enums).
local TEXT_RECV = {
  textrecv = true, varcharrecv = true, bpcharrecv = true, namerecv = true,
  citextrecv = true, enum_recv = true,
}

-- pgvector's types, known by their name and receive function in the
-- catalog (an extension's OIDs differ from database to database).
local VEC_RECV = { vector = "vector_recv", halfvec = "halfvec_recv", sparsevec = "sparsevec_recv" }
M.VEC_RECV = VEC_RECV

-- One query: does the table exist, and for each wanted column (all
-- non-generated ones in attnum order when $2 is null) its type, the base
-- type of a domain, and for arrays the element type and its base.
local CATALOG_SQL = [[
with rel as (select to_regclass($1) as oid),
want as (
  select u.name, u.ord from unnest($2::text[]) with ordinality as u(name, ord)
  union all
  select a.attname::text, a.attnum::int8
    from rel join pg_attribute a on a.attrelid = rel.oid
   where $2 is null and a.attnum > 0 and not a.attisdropped
     and a.attgenerated = ''
)
select rel.oid is not null as found, want.ord, want.name,
       a.attnum is not null as exists,
       format_type(a.atttypid, a.atttypmod) as type_name,
       bt.oid::int8 as base_oid, bt.typreceive::text as recv,
       bt.typname::text as typname,
       (case when t.typtype = 'd' then t.typtypmod else a.atttypmod end)::int8 as typmod,
       case when bt.typcategory = 'A' then bt.typelem::int8 end as elem_oid,
       et.oid::int8 as elem_base_oid, et.typreceive::text as elem_recv
  from rel
  left join want on true
  left join pg_attribute a on a.attrelid = rel.oid and a.attname = want.name
        and a.attnum > 0 and not a.attisdropped
  left join pg_type t on t.oid = a.atttypid
  left join pg_type bt on bt.oid =
        case when t.typtype = 'd' then t.typbasetype else t.oid end
  left join pg_type e on e.oid = bt.typelem and bt.typcategory = 'A'
  left join pg_type et on et.oid =
        case when e.typtype = 'd' then e.typbasetype else e.oid end
 order by want.ord
]]

-- Quote a table name ("t", "s.t" or {s, t}); also returns it as shown
-- in messages.  Raises at the caller of the caller's line.
local function quote_table(db, fname, tbl)
  local quoted, shown = db:quote_table(tbl)
  if not quoted then
    error(fname .. ": the table must be \"name\", \"schema.name\" or "
          .. "{schema, name}, got " .. (type(tbl) == "string"
          and ("%q"):format(tbl) or type(tbl)), 3)
  end
  return quoted, shown
end

-- A text[] literal of names, sent as a parameter.
local function text_array(list)
  local parts = {}
  for i, v in ipairs(list) do
    parts[i] = '"' .. v:gsub('[\\"]', "\\%0") .. '"'
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local COPY_OPTS = { format = true, chunk_size = true, json_encode = true, freeze = true,
                    on_reject = true, reject_chunk = true, quiet = true, layouts = true }
local FORMATS = { auto = true, text = true, csv = true, binary = true }

local default_json_encode = require("sluice.values").default_json_encode
local callable = require("sluice.values").callable

-- db:copy's options, checked (misuse raises at the line that called
-- db:copy): columns, opts (a table with no list part in the place of
-- columns is the options), the format asked for and the chunk size.
local function copy_options(columns, opts)
  -- db:copy(t, opts): a table with no list part is the options
  if opts == nil and type(columns) == "table" and columns[1] == nil
     and next(columns) ~= nil then
    columns, opts = nil, columns
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("copy: opts must be a table, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not COPY_OPTS[k] then
      error("copy: unknown option '" .. tostring(k)
            .. "' (format, chunk_size, json_encode, freeze, on_reject, reject_chunk, quiet, "
            .. "layouts)", 3)
    end
  end
  local format = opts.format or "auto"
  if not FORMATS[format] then
    error("copy: format must be \"auto\", \"text\", \"csv\" or \"binary\", got "
          .. tostring(format), 3)
  end
  local chunk = opts.chunk_size
  if chunk ~= nil and (type(chunk) ~= "number" or chunk < 1024 or chunk > 2^30
                       or chunk ~= math.floor(chunk)) then
    error("copy: chunk_size must be an integer from 1024 to 2^30 bytes", 3)
  end
  if opts.json_encode ~= nil and type(opts.json_encode) ~= "function" then
    error("copy: json_encode must be a function", 3)
  end
  if opts.on_reject ~= nil and not callable(opts.on_reject) then
    error("copy: on_reject must be a function(values, err, row), got "
          .. type(opts.on_reject), 3)
  end
  local rc = opts.reject_chunk
  if rc ~= nil and (opts.on_reject == nil or type(rc) ~= "number" or rc < 1
                    or rc > 1e7 or rc ~= math.floor(rc)) then
    error("copy: reject_chunk must be an integer from 1 to 10000000 rows, "
          .. "with on_reject", 3)
  end
  local layouts = opts.layouts
  if layouts ~= nil then
    if type(layouts) ~= "table" then
      error("copy: layouts must be a table { column = \"layout\" }, got " .. type(layouts), 3)
    end
    for k, v in pairs(layouts) do
      if type(k) ~= "string" or type(v) ~= "string" then
        error("copy: layouts must map column names to layout strings, got "
              .. type(k) .. " = " .. type(v), 3)
      end
      local ok, why = core.text_layout_check(v)
      if not ok then error(("copy: layouts: column \"%s\": %s"):format(k, why), 3) end
    end
  end
  return columns, opts, format, chunk
end

local LAYOUT_KINDS = { date = true, timestamp = true, timestamptz = true }

-- opts.layouts by column index, for core.copy_start (nil: none), checked
-- against the stream's columns and their kinds.
local function layouts_by_index(layouts, rows, specs, shown)
  if layouts == nil or next(layouts) == nil then return nil end
  local out, at = {}, {}
  for i, r in ipairs(rows) do at[r.name] = i end
  for name, layout in pairs(layouts) do
    local i = at[name]
    if not i then
      error(("copy: layouts: \"%s\" is not one of the columns loaded into \"%s\"")
            :format(name, shown), 3)
    end
    local spec = specs[i]
    if spec.elem_oid or not LAYOUT_KINDS[core.copy_kind(spec.base_oid, spec.textlike)] then
      error(("copy: layouts: column \"%s\" (%s) is not a date or timestamp")
            :format(name, spec.type_name), 3)
    end
    out[i] = layout
  end
  return out
end

-- The column list as the catalog query's parameter (nil: every column),
-- checked as copy_options checks.
local function columns_param(columns)
  if columns == nil then return nil end
  if type(columns) ~= "table" or #columns == 0 then
    error("copy: columns must be a non-empty list of column names", 3)
  end
  for i, c in ipairs(columns) do
    if type(c) ~= "string" or c == "" then
      error(("copy: column %d must be a non-empty string, got %s")
            :format(i, type(c)), 3)
    end
  end
  return text_array(columns)
end

-- From the catalog's rows: each column's spec for core.copy_start, its
-- quoted name, and what picks the format - t.all_binary (every column
-- has a binary encoder), t.has_tstz, t.need_json (a json column: a
-- default encoder is needed).  Raises as copy_options does.
local function column_specs(db, rows, shown, format)
  local specs, quoted = {}, {}
  local t = { all_binary = true, has_tstz = false, need_json = false }
  for i, r in ipairs(rows) do
    if not r.exists then
      error(("copy: column \"%s\" of table \"%s\" does not exist")
            :format(r.name, shown), 3)
    end
    local spec = {
      name = r.name, type_name = r.type_name,
      base_oid = r.base_oid, textlike = TEXT_RECV[r.recv] or false,
      vec = VEC_RECV[r.typname] == r.recv and r.typname or nil,
      typmod = r.typmod ~= NULL and tonumber(r.typmod) or -1,
    }
    local kind = core.copy_kind(spec.base_oid, spec.textlike, spec.vec)
    if r.elem_oid ~= NULL then
      spec.elem_oid = r.elem_oid
      spec.elem_base_oid = r.elem_base_oid
      spec.elem_textlike = TEXT_RECV[r.elem_recv] or false
      kind = core.copy_kind(spec.elem_base_oid, spec.elem_textlike)
    end
    if kind == "other" then t.all_binary = false end
    if kind == "timestamptz" then t.has_tstz = true end
    if kind == "json" or kind == "jsonb" then t.need_json = true end
    if format == "binary" and not t.all_binary then
      error(("copy: column \"%s\" (%s) has no binary encoder; use format "
             .. "\"text\" or \"csv\""):format(r.name, r.type_name), 3)
    end
    specs[i] = spec
    quoted[i] = db:quote_ident(r.name)
  end
  return specs, quoted, t
end

--- db:copy(table [, columns] [, opts]) -> stream (see the top of this file).
-- prog (the library's own callers: db:upsert, Model:save_all): a
-- progress of theirs, which the stream's flushes tick; they write the
-- summary.  Without it the stream has its own, "<table> copy", unless
-- opts.quiet.
function M.copy(db, tbl, columns, opts, prog)
  local format, chunk
  columns, opts, format, chunk = copy_options(columns, opts)
  local qtable, shown = quote_table(db, "copy", tbl)
  local rows = db:query(CATALOG_SQL, qtable, columns_param(columns))
  if not rows[1] or not rows[1].found then
    error(("copy: table \"%s\" does not exist"):format(shown), 2)
  end
  if rows[1].ord == NULL then
    error(("copy: table \"%s\" has no columns to load"):format(shown), 2)
  end
  local specs, quoted, t = column_specs(db, rows, shown, format)
  local layouts = layouts_by_index(opts.layouts, rows, specs, shown)
  -- the session zone's rules, for offset-less timestamptz strings (true:
  -- UTC; nil: they could not be read, and zone_err says why)
  local zone, zone_err
  if t.has_tstz and (format == "auto" or format == "binary") then
    zone, zone_err = core.copy_zone(db)
  end
  if format == "auto" then
    format = (t.all_binary and (zone or not t.has_tstz)) and "binary" or "text"
  end
  local sql = ("COPY %s (%s) FROM STDIN (FORMAT %s%s)")
    :format(qtable, table.concat(quoted, ", "), format,
            opts.freeze and ", FREEZE" or "")
  local own = getmetatable(prog) ~= progress.P
  if own then prog = progress.of(opts, shown .. " copy") end
  local cp = core.copy_start(db, sql, format, specs, {
    chunk_size = chunk,
    json_encode = opts.json_encode or (t.need_json and default_json_encode()),
    cdata_kind = cdata_kind,
    zone = zone,
    zone_error = zone_err,
    on_reject = opts.on_reject,
    reject_chunk = opts.reject_chunk,
    relayed_errors = opts.on_reject ~= nil and citus.relays_errors(db),
    progress = prog and prog:hook(own),
    progress_live = prog and prog.live,
    layouts = layouts,
  })
  M.attach_fast_row(cp, format ~= "binary")
  return cp
end

------------------------------------------------- the compiled row writer
-- Streams whose columns are all of kinds the fast table serves (binary),
-- and text and CSV streams to the server, get a cp:row written in Lua for
-- their column kinds: it checks each value's type and appends it through
-- FFI calls into the core's encoders (runtime/copyenc.c, "the fast
-- table"), so a compiled loop never leaves its trace for a row.  Any
-- value it does not take as it is (another type, out of range, ...) sends
-- the whole row through the C cp:row instead, which encodes it from its
-- start and raises the usual error: the bytes and the errors are the same
-- either way.
local ffi = require "ffi"
-- From the fast table, once: F[name] is a C function, cast to its type;
-- BY_KIND[kind] lists the value functions that serve binary columns of
-- that kind, each with the Lua type it takes.
local F, BY_KIND
local VBUF -- the elements of a vector column's Lua array, for the encoder
-- kinds signature -> { writer, pointers }: a writer is shared by the
-- streams of one column list, and finds a stream's pointer in its own
-- table, so a stream of another shape gets none (the C row() then takes
-- it).  Per stream, weak: its writer and pointer (neither holds the
-- stream, so both go with it).
local writers = {}
M.fast_rows = setmetatable({}, { __mode = "k" })

-- A column given a layout (opts.layouts) is of kind "<kind>+layout":
-- its strings go to the table's layout function of the kind, its other
-- values (epoch seconds) to the kind's own.
local function load_fast_table()
  F, BY_KIND = {}, {}
  local function add(kind, f)
    BY_KIND[kind] = BY_KIND[kind] or {}
    table.insert(BY_KIND[kind], f)
  end
  for _, f in ipairs(core.copy_fast_functions()) do
    F[f.name] = ffi.cast(f.sig, f.fn)
    for _, kind in ipairs(f.kinds) do
      if f.takes == "layout" then
        add(kind .. "+layout", f)
      else
        add(kind, f)
        if f.takes ~= "string" then add(kind .. "+layout", f) end
      end
    end
  end
end

-- A value function's arguments after the writer, by what it takes (C:
-- the column's index, 0-based), and the Lua type of the value.
local ARGS = { number = "V", string = "V, #V", boolean = "V and 1 or 0", layout = "C, V, #V" }
local LUA_TYPE = { number = "number", string = "string", boolean = "boolean", layout = "string" }

-- A vector or halfvec column ("vector:<dimension>"): a Lua array is
-- copied into VBUF (a compiled loop, no call per element) and encoded by
-- one call; an FFI float[]/double[] buffer goes as it is.
local VEC_TYPE = { vector = 0, halfvec = 1 }
local function vector_code(base, typmod, v, f4, oid)
  local lines = {
    "local t@ = type(@)",
    "if t@ == 'nil' or rawequal(@, NULL) then if F.null(p) ~= 0 then return slow(self, ...) end",
    "elseif t@ == 'table' then",
    "  local n = #@",
    -- a key beyond 1..n (a hole, a name) is refused by the C path
    "  if n > 16000 or next(@, n > 0 and n or nil) ~= nil then return slow(self, ...) end",
    "  for j = 1, n do local x = @[j]; if type(x) ~= 'number' then return slow(self, ...) end; VBUF[j - 1] = x end",
  }
  if f4 then
    lines[#lines + 1] = ("  if F.arr_f64(p, %d, %d, VBUF, n) ~= 0 then return slow(self, ...) end")
                        :format(f4, oid)
  else
    local t = VEC_TYPE[base]
    lines[#lines + 1] = ("  if F.vec_f64(p, %d, %d, VBUF, n) ~= 0 then return slow(self, ...) end")
                        :format(t, typmod)
    lines[#lines + 1] = "elseif t@ == 'cdata' then"
    lines[#lines + 1] = "  if @ == nil then return slow(self, ...) end"
    lines[#lines + 1] = "  local k, n = FBUF(@)"
    lines[#lines + 1] = ("  if n == -1 then n = %d end"):format(typmod)
    lines[#lines + 1] = "  if n < 0 or not (k == 3 or k == 4) then return slow(self, ...) end"
    lines[#lines + 1] = ("  if (k == 3 and F.vec_f32(p, %d, %d, @, n) or F.vec_f64(p, %d, %d, @, n)) ~= 0 then")
                        :format(t, typmod, t, typmod)
    lines[#lines + 1] = "    return slow(self, ...) end"
  end
  lines[#lines + 1] = "else return slow(self, ...) end end"
  return "do " .. (table.concat(lines, "\n"):gsub("@", v))
end

-- The Lua of column i: v is the value, slow() the fallback.
local function column_code(kind, v, i)
  local base, typmod = kind:match("^(%a+):(%-?%d+)$")
  if base then return vector_code(base, tonumber(typmod), v) end
  local f4, oid = kind:match("^floats:(%d):(%d+)$")
  if f4 then return vector_code("floats", -1, v, tonumber(f4), tonumber(oid)) end
  -- type() first: a NULL cdata pointer compares equal to nil
  local lines = { "local tV = type(V)",
                  "if tV == 'nil' or rawequal(V, NULL) then if F.null(p) ~= 0 then return slow(self, ...) end" }
  for _, f in ipairs(BY_KIND[kind]) do
    lines[#lines + 1] = ("elseif tV == '%s' then if F.%s(p, %s) ~= 0 then return slow(self, ...) end")
                        :format(LUA_TYPE[f.takes], f.name, (ARGS[f.takes]:gsub("C", tostring(i - 1))))
  end
  lines[#lines + 1] = "else return slow(self, ...) end end"
  -- do ... end: one tV at a time (a function has at most 200 locals)
  return "do " .. (table.concat(lines, "\n"):gsub("V", v))
end

-- Text and CSV: kind is the column's enum copy_kind code (-1: bytea,
-- whose strings are hex-encoded by the C path; 256 + the code: a column
-- given a layout, whose strings the core reads and writes as ISO text).
local function text_column_code(kind, v, sep, i)
  local str = "if tV == 'string' then if F.t_str(p, S, V, #V) ~= 0 then return slow(self, ...) end"
  if kind >= 256 then
    kind = kind - 256
    str = ("if tV == 'string' then if F.t_lay(p, S, %d, V, #V, %d) ~= 0 then "
           .. "return slow(self, ...) end"):format(i - 1, kind)
  elseif kind < 0 then
    str = "if false then"
  end
  local lines = {
    "local tV = type(V)",
    str,
    "elseif tV == 'nil' or rawequal(V, NULL) then if F.t_null(p, S) ~= 0 then return slow(self, ...) end",
    ("elseif tV == 'number' then if F.t_num(p, S, V, %d) ~= 0 then return slow(self, ...) end")
      :format(kind),
    ("elseif tV == 'boolean' then if F.t_bool(p, S, V and 1 or 0, %d) ~= 0 then "
     .. "return slow(self, ...) end"):format(kind),
    "else return slow(self, ...) end end",
  }
  return "do " .. (table.concat(lines, "\n"):gsub("V", v):gsub("S", sep))
end

-- keep: reject mode, where the writer also keeps each row's values in
-- the stream's table (keeps[self]) until its chunk is settled.
local function writer_for(kinds, text, keep)
  local sig = (text and "text:" or "") .. (keep and "keep:" or "") .. table.concat(kinds, ",")
  local w = writers[sig]
  if w then return w end
  local pointers = setmetatable({}, { __mode = "k" })
  local keeps = setmetatable({}, { __mode = "k" })
  local n = #kinds
  local vars = {}
  for i = 1, n do vars[i] = "v" .. i end
  local body = {
    "local F, NULL, pointers, slow, flush, select, type, rawequal, keeps, VBUF, FBUF, next = ...",
    "return function(self, ...)",
    "  local p = pointers[self]",
    ("  if p == nil or select('#', ...) ~= %d or F.begin(p) ~= 0 then return slow(self, ...) end")
      :format(n),
    "  local " .. table.concat(vars, ", ") .. " = ...",
  }
  if keep then
    body[#body + 1] = ("  local kp, base = keeps[self], F.row_index(p) * %d"):format(n)
    for i = 1, n do body[#body + 1] = ("  kp[base + %d] = v%d"):format(i, i) end
  end
  for i, kind in ipairs(kinds) do
    body[#body + 1] = text and text_column_code(kind, vars[i], i > 1 and "1" or "0", i)
                      or column_code(kind, vars[i], i)
  end
  -- end_row: < 0 out of memory (the C path raises it), > 0 send now.  A
  -- tail call: an error in flush (Ctrl-C, a lost connection) then names
  -- the caller's line, as the C row() does
  body[#body + 1] = "  local e = F.end_row(p)"
  body[#body + 1] = "  if e < 0 then return slow(self, ...) end"
  body[#body + 1] = "  if e > 0 then return flush(self) end"
  body[#body + 1] = "end"
  local chunk = loadstring(table.concat(body, "\n"), "=(sluice copy row writer)")
  if not chunk then return nil end -- never expected: the C row() serves
  local c_methods = core.types.copy.methods
  VBUF = VBUF or ffi.new("double[16000]")
  w = { chunk(F, NULL, pointers, c_methods.row, c_methods.flush, select, type, rawequal, keeps,
              VBUF, require("sluice.values").float_kind, next),
        pointers, keeps }
  writers[sig] = w
  return w
end

--- Give a stream its compiled row writer, when its columns allow (binary:
-- kinds of the fast table only; text and CSV: any, to the server).
function M.attach_fast_row(cp, text)
  local ptr, kinds, keep
  if text then
    ptr, kinds, keep = core.copy_fast_text(cp)
  else
    ptr, kinds, keep = core.copy_fast(cp)
  end
  if not ptr or #kinds > 100 then return end
  if not F then load_fast_table() end
  local w = writer_for(kinds, text, keep ~= nil)
  if not w then return end
  w[2][cp] = ffi.cast("void *", ptr)
  if keep then w[3][cp] = keep end
  M.fast_rows[cp] = w[1]
end

local HAS_VECTOR_SQL = "select 1 from pg_catalog.pg_type where typname = 'vector' "
  .. "and typreceive::text = 'vector_recv' limit 1"

-- Queries start with one of these words (after spaces and parentheses);
-- anything else that looks like a name is a table.
local function is_name(s)
  return s:match("^[%a_][%w_$]*$") or s:match("^[%a_][%w_$]*%.[%a_][%w_$]*$")
end

function M.copy_out(db, source, opts)
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("copy_out: opts must be a table, got " .. type(opts), 2)
    end
    local k = next(opts)
    if k ~= nil then
      error("copy_out: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local sql, query
  if type(source) == "table" then
    query = "select * from " .. quote_table(db, "copy_out", source)
    sql = "COPY " .. quote_table(db, "copy_out", source) .. " TO STDOUT"
  elseif type(source) == "string" then
    local s = source:match("^%s*(.-)[%s;]*$")
    if s == "" then
      error("copy_out: expected a query or a table name, got an empty string", 2)
    end
    if is_name(s) then
      query = "select * from " .. quote_table(db, "copy_out", s)
      sql = "COPY " .. quote_table(db, "copy_out", s) .. " TO STDOUT"
    else
      query = s
      sql = "COPY (" .. s .. ") TO STDOUT"
    end
  else
    error("copy_out: expected a query or a table name, got " .. type(source), 2)
  end
  -- pgvector's columns come back as Lua tables, as in query results: the
  -- query is described first (a round trip) when the extension is there
  local vec = db:query_one(HAS_VECTOR_SQL) and core.vector_columns(db, query)
  local reader = core.copy_out_start(db, sql)
  if not vec or next(vec) == nil then return reader end
  return setmetatable({}, {
    __call = function()
      local row = reader()
      if row then
        for j, kind in pairs(vec) do
          if row[j] ~= NULL then row[j] = core.vector_parse(row[j], kind) end
        end
      end
      return row
    end,
    __index = function(_, k)
      local v = reader[k]
      if type(v) == "function" then return function(_, ...) return v(reader, ...) end end
      return v
    end,
  })
end

return M
