--- sluice.rejects: a file of rejected rows, written as they are refused,
-- read back to fix and reload them.
--
--   local rej = sluice.rejects("bad.csv")          -- a new file (truncated)
--   db:batch{ ..., on_reject = rej.on_reject }      -- or rej itself
--   rej(values, err, row [, src])                   -- one line, flushed
--   rej.count, rej.path, rej.size; rej:close()
--   for e in sluice.read_rejects("bad.csv") do ... e.record, e.values end
--
-- The file format: CSV (RFC 4180: "," between fields, a field holding a
-- quote, comma, CR or LF is quoted, quotes doubled), LF after each line,
-- UTF-8 as the data was.  A header line, then one line per
-- rejected row:
--
--   row,source,sqlstate,column,message,record
--   3,in.csv:4,23505,,"duplicate key value violates unique constraint ""t_pkey"" (Key (id)=(1) already exists.)",1
--   7,in.csv:8,22P02,n,"invalid input syntax for type integer: ""x""","6,x,""a, b"""
--
--   row       the row number (1-based, in input order)
--   source    where the row came from ("data/in.csv:17": file and line),
--             empty when not known
--   sqlstate  the server's SQLSTATE (22P02 a bad value, 23505 a unique
--             key, 23514 a check, ...), empty for an error raised on the
--             client (an encoder's message, a string)
--   column    the column the error names (the error's column field, else
--             the one in COPY's context "COPY t, line 3, column b: ..."),
--             else empty
--   message   the error's primary message, and its detail in parentheses
--             when there is one, on one line
--   record    the row as CSV text: the input's record exactly as it was
--             (src.record, e.g. from a CSV reader's record()), else the
--             values written as one CSV record: NULL (nil, sluice.null) an
--             empty unquoted field, "" a quoted empty one, numbers in full
--             precision (integers without a fraction), booleans t/f,
--             tables (arrays, JSON) as JSON text (lua-cjson).  The values
--             go in array order (values.n or the highest index counts);
--             a table keyed by names goes in the order of opts.columns,
--             else sorted by name.
--
-- Each line is written and flushed to the operating system before the
-- call returns: a crash afterwards does not lose it.
--
-- sluice.rejects(path [, opts]) -> rej.  opts:
--   append       true: an existing file keeps its lines (and its header,
--                which must be this format's); a missing or empty one
--                gets a header.  Default: the file is created or emptied.
--   truncate_to  bytes: cut an existing file to this size first, then
--                append (a load that resumes drops the lines written after
--                its last checkpoint; rej.size is the size to remember).
--                0 starts the file anew.
--   columns      array of names: the order of a keyed row's values.
-- An unwritable path raises here, not at the first reject.
--
-- sluice.read_rejects(path [, opts]) -> iterator of entries { row (a
-- number), source, sqlstate, column, message, record, values }, values
-- being the record parsed as CSV (an array of strings, sluice.null for an
-- empty unquoted field).  opts: delimiter, quote (of the records: those of
-- the input they came from; default "," and '"').
local core = require "sluice.core"
local csv = require "sluice.csv"

local NULL = core.null
local HEADER = "row,source,sqlstate,column,message,record"
local FIELDS = { "row", "source", "sqlstate", "column", "message", "record" }

local ffi = require "ffi"
pcall(ffi.cdef, [[ int truncate(const char *path, int64_t length); ]])
pcall(ffi.cdef, [[ char *strerror(int errnum); ]])

local cjson

-- One CSV field: quoted when it holds a comma, a quote, CR or LF, when it
-- is empty (an empty unquoted field means NULL), or is "\." (a line of it
-- alone would end COPY's data).
local function field(s)
  if s == "" or s == "\\." or s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

-- A column of the rejects file: quoted only when it must be (an empty
-- one is just empty).
local function meta(s)
  if s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

-- A value as CSV text (nil for NULL: an empty unquoted field).
local function value_text(v)
  local t = type(v)
  if v == nil or v == NULL then
    return nil
  elseif t == "string" then
    return v
  elseif t == "number" then
    if v == math.floor(v) and math.abs(v) < 2^63 then
      return ("%.0f"):format(v)
    end
    return ("%.17g"):format(v)
  elseif t == "boolean" then
    return v and "t" or "f"
  elseif t == "table" then
    cjson = cjson or require "cjson"
    local ok, s = pcall(cjson.encode, v)
    return ok and s or tostring(v)
  elseif t == "cdata" then
    -- 64-bit integers (sluice.csv types = "integer" beyond 2^53)
    return (tostring(v):gsub("U?LL$", ""))
  end
  return tostring(v)
end

-- Whether values is keyed by column names: no [1], and a key that is
-- neither a position nor the count n (a row in column order - an array,
-- maybe with n - is not, even when a column is named "n").
local function keyed(values)
  if rawget(values, 1) ~= nil then return false end
  for k in pairs(values) do
    if k ~= "n" and type(k) ~= "number" then return true end
  end
  return false
end

-- The values as one CSV record.
local function values_record(values, columns)
  if type(values) ~= "table" then
    local s = value_text(values)
    return s == nil and "" or field(s)
  end
  local list = {}
  if columns and keyed(values) then
    for i, name in ipairs(columns) do list[i] = values[name] end
    list.n = #columns
  else
    local n = tonumber(values.n) or 0
    local names = {}
    for k in pairs(values) do
      if type(k) == "number" and k >= 1 and k == math.floor(k) then
        if k > n then n = k end
      elseif k ~= "n" then
        names[#names + 1] = k
      end
    end
    if n > 0 then
      for i = 1, n do list[i] = values[i] end
    else
      table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
      for i, name in ipairs(names) do list[i] = values[name] end
      n = #names
    end
    list.n = n
  end
  local out = {}
  for i = 1, list.n do
    local s = value_text(list[i])
    out[i] = s == nil and "" or field(s)
  end
  return table.concat(out, ",")
end

-- The column an error names: its own field, else COPY's context.
local function column_of(err)
  if type(err) ~= "table" then return "" end
  if type(err.column) == "string" and err.column ~= "" then return err.column end
  if type(err.column) == "number" then return tostring(err.column) end
  local ctx = err.context
  if type(ctx) == "string" then
    for line in ctx:gmatch("[^\n]+") do
      local c = line:match("^COPY .-, line %d+, column (.-): ")
                or line:match("^COPY .-, line %d+, column (.+)$")
      if c then return c end
    end
  end
  return ""
end

local function one_line(s)
  return (s:gsub("%s*[\r\n]+%s*", " "))
end

local function message_of(err)
  if type(err) ~= "table" then return one_line(tostring(err)) end
  local m = err.message ~= nil and tostring(err.message) or tostring(err)
  if err.detail ~= nil and err.detail ~= "" then
    m = m .. " (" .. tostring(err.detail) .. ")"
  end
  return one_line(m)
end

local function errno_text()
  return ffi.string(ffi.C.strerror(ffi.errno()))
end

local Rejects = {}
Rejects.__index = Rejects
Rejects.__name = "sluice.rejects"

local function check_open(self, what)
  if not self.file then
    error(("sluice.rejects: %s: the rejects file is closed"):format(what), 3)
  end
end

--- Write one rejected row.  Returns nothing; raises when the line cannot
-- be written (disk full: the load must not go on losing rows).
function Rejects.write(self, values, err, row, src)
  check_open(self, "write")
  local record
  if type(src) == "table" and type(src.record) == "string" then
    record = src.record
  else
    record = values_record(values, self.columns)
  end
  local source = type(src) == "table" and src.source ~= nil and tostring(src.source) or ""
  local sqlstate = type(err) == "table" and err.sqlstate ~= nil and tostring(err.sqlstate) or ""
  local line = table.concat({
    row ~= nil and meta(value_text(row)) or "", meta(source), meta(sqlstate),
    meta(column_of(err)), meta(message_of(err)), meta(record),
  }, ",") .. "\n"
  local ok, e = self.file:write(line)
  if ok then ok, e = self.file:flush() end
  if not ok then
    error(("sluice.rejects: cannot write %s: %s"):format(self.path, tostring(e)), 0)
  end
  self.count = self.count + 1
  self.size = self.size + #line
end

Rejects.__call = Rejects.write

function Rejects.close(self)
  if self.file then
    self.file:close()
    self.file = nil
  end
end

function Rejects.__tostring(self)
  return ("sluice.rejects (%s, %d line%s%s)"):format(self.path, self.count,
    self.count == 1 and "" or "s", self.file and "" or ", closed")
end

local OPTS = { append = true, truncate_to = true, columns = true }

-- Misuse raises at the caller's line; a file that cannot be opened, cut
-- or written raises its message alone (as sluice.csv's do).
local function fail(msg)
  error("sluice.rejects: " .. msg, 3)
end

local function file_fail(msg)
  error("sluice.rejects: " .. msg, 0)
end

--- sluice.rejects(path [, opts]) -> a rejects file (see the top).
local function open(path, opts)
  if type(path) ~= "string" or path == "" then
    fail("path must be a file name, got " .. (path == "" and "\"\"" or type(path)))
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail("opts must be a table, got a " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTS[k] then fail("unknown option '" .. tostring(k) .. "'") end
  end
  local append, cut = opts.append, opts.truncate_to
  if append ~= nil and type(append) ~= "boolean" then
    fail("option append must be a boolean, got a " .. type(append))
  end
  if cut ~= nil and (type(cut) ~= "number" or cut < 0 or cut ~= math.floor(cut)) then
    fail("option truncate_to must be a whole number of bytes >= 0")
  end
  if opts.columns ~= nil and type(opts.columns) ~= "table" then
    fail("option columns must be an array of names, got a " .. type(opts.columns))
  end

  local size = 0
  local existing = io.open(path, "rb")
  if existing then
    size = existing:seek("end") or 0
  end
  if cut then
    if not existing and cut > 0 then
      file_fail(("cannot cut %s to %d bytes: it does not exist"):format(path, cut))
    end
    if cut > size then
      if existing then existing:close() end
      file_fail(("cannot cut %s to %d bytes: it has only %d"):format(path, cut, size))
    end
  end
  if existing and (append or (cut and cut > 0)) and size > 0 then
    -- the lines already there must be this format's
    existing:seek("set", 0)
    local first = existing:read("*l")
    if first ~= HEADER and first ~= HEADER .. "\r" then
      existing:close()
      file_fail(("%s is not a rejects file (its first line is not \"%s\")"):format(path, HEADER))
    end
  end
  if existing then existing:close() end
  if cut and cut < size then
    if ffi.C.truncate(path, cut) ~= 0 then
      file_fail(("cannot cut %s to %d bytes: %s"):format(path, cut, errno_text()))
    end
    size = cut
  end
  local keep = (append or cut) and size > 0
  local f, e = io.open(path, keep and "ab" or "wb")
  if not f then file_fail("cannot open " .. tostring(e)) end
  local self = setmetatable({ path = path, file = f, count = 0,
                              size = keep and size or 0, columns = opts.columns }, Rejects)
  if not keep then
    local ok, we = f:write(HEADER, "\n")
    if ok then ok, we = f:flush() end
    if not ok then
      f:close()
      file_fail(("cannot write %s: %s"):format(path, tostring(we)))
    end
    self.size = #HEADER + 1
  end
  -- a plain function for options that want one (db:batch's on_reject)
  self.on_reject = function(values, err, row, src) return self:write(values, err, row, src) end
  return self
end

-- One CSV record (a string) as fields: strings, NULL for an empty unquoted
-- field.  Returns nil and a message when its quoting is broken.
local function parse_record(s, delim, quote)
  local out, i, n = {}, 1, #s
  while true do
    if s:sub(i, i) == quote then
      local buf, j = {}, i + 1
      while true do
        local q = s:find(quote, j, true)
        if not q then return nil, "a quoted field is not closed" end
        buf[#buf + 1] = s:sub(j, q - 1)
        if s:sub(q + 1, q + 1) == quote then
          buf[#buf + 1] = quote
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      out[#out + 1] = table.concat(buf)
      if i > n then return out end
      if s:sub(i, i) ~= delim then return nil, "text after a closing quote" end
      i = i + 1
    else
      local d = s:find(delim, i, true)
      local f = s:sub(i, (d or n + 1) - 1)
      if f:find(quote, 1, true) then return nil, "a quote inside an unquoted field" end
      out[#out + 1] = f == "" and NULL or f
      if not d then return out end
      i = d + 1
    end
  end
end

--- sluice.read_rejects(path [, opts]) -> iterator of entries (see the top).
local function read(path, opts)
  if type(path) ~= "string" then
    error("sluice.read_rejects: path must be a file name, got " .. type(path), 2)
  end
  opts = opts or {}
  local delim, quote = opts.delimiter or ",", opts.quote or '"'
  if #delim ~= 1 or #quote ~= 1 or delim == quote then
    error("sluice.read_rejects: delimiter and quote must be single, different characters", 2)
  end
  -- bytes as they are: a record keeps whatever its input held
  local it = csv.rows(path, { encoding = false })
  local r = csv.reader_of(it)
  local header = r.header or {}
  if table.concat(header, ",") ~= HEADER then
    r:close()
    error(("sluice.read_rejects: %s is not a rejects file (its header is not \"%s\")")
          :format(path, HEADER), 2)
  end
  return function()
    local row = it()
    if row == nil then return nil end
    local e = {}
    for _, k in ipairs(FIELDS) do e[k] = row[k] end
    e.row = tonumber(e.row) or e.row
    local values, perr = parse_record(e.record, delim, quote)
    if not values then
      error(("%s:%d: record of row %s is not CSV: %s"):format(path, r.line, tostring(e.row), perr), 2)
    end
    e.values = values
    return e
  end
end

return {
  open = open,
  read = read,
  -- for other modules: the record text of values, and a field quoted
  record_of = values_record,
  csv_field = field,
  HEADER = HEADER,
}
