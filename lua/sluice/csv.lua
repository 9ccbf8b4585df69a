--- sluice.csv: read CSV files (plain or gzip) row by row, or pour one
-- straight into a table.
--
-- The work is in C (runtime/csvread.c: a scanner over memchr, read(2) and
-- zlib's inflate; runtime/lib_csv.c: the binding); this module is the
-- documented surface, and writes the rows() iterators (below).
-- The functions are the C functions themselves, so a misuse error points at
-- the caller's line.
--
--   for row, n in sluice.csv.rows("people.csv.gz") do ... end
--   local r = sluice.csv.open(path, opts); r:next(); r.line; r:close()
--   db:copy_from_file("public.people", "people.csv.gz")
--
-- Reading (open/rows).  path is a file name, or "-" for standard input;
-- gzip is recognised from the content, not the name.  Every member of a
-- multi-member gzip file is read and zero padding skipped (as gzip(1));
-- anything else after the gzip data, a cut or damaged member, a read error
-- and a file that shrinks while it is read are errors, never an early end.
-- opts:
--   header     true (default): the first record names the columns and rows
--              are tables keyed by those names (fields beyond the header,
--              with strict = false, go to their position: row[4]); a
--              duplicate name is an error.  false: rows are arrays.
--   delimiter  one character (default ","); quote: one character ('"').
--   null       the field text that means NULL (sluice.null in the row);
--              default nil: no NULLs, every field is a string.  null = ""
--              makes only unquoted empty fields NULL ("" stays an empty
--              string), as COPY does.  Any other text also matches when it
--              was quoted.
--   strict     true (default): a row whose field count differs from the
--              header's (or the first row's) is an error; false: kept.
--   stray_quotes  true (default): a quote inside a field that does not
--              begin with one is data: 5" pipe, 37°36'37.8"N read as
--              written (as Python's csv module reads them).  false: it is
--              an error, "malformed quoting (a quote inside an unquoted
--              field)".  PostgreSQL's COPY reads such a quote as the start
--              of a quoted part instead (so db:copy_from_file refuses the
--              line, or joins it to the next); rows read here and loaded
--              with db:copy or sluice.load arrive as written.
--   encoding   "utf8" or true (default): invalid UTF-8 is an error naming
--              the line; false: bytes are passed through unchecked.
--   skip       physical lines to skip before the header (default 0).
--   types      column -> "number" | "integer" | "string": those fields come
--              as Lua numbers, parsed in C (no string is made for them).
--              Columns are named by the header's names, or by position
--              (types = { [1] = "integer", [5] = "number" }).  "number"
--              takes [+-]digits[.digits][e[+-]digits] (also ".5", "5.",
--              inf, infinity, nan) and reads the same double as tonumber;
--              "integer" takes [+-]digits, beyond 2^53 as an exact int64
--              cdata.  No spaces, no hex.  A NULL (opts.null) stays
--              sluice.null; any other field that does not convert is an
--              error naming line, column and value:
--                data.csv:3: column "amount": "12,5" is not a number
--              (to set bad values aside instead, keep the column a string
--              and tonumber() it in the loop).
-- n is the record number (1 for the first data record).  A leading UTF-8
-- BOM is ignored.  The dialect is RFC 4180: quoted fields may hold the
-- delimiter, doubled quotes and line ends; LF, CRLF and a CR alone end a
-- record (and a line, in line numbers); spaces are data.  Blank lines
-- (outside quotes) are skipped, so they count as lines but not as
-- records.  A field is quoted when it begins with the quote; text after
-- its closing quote, or a quote still open at the end of the file, is an
-- error (a stray quote inside an unquoted field: see stray_quotes).
--
-- Errors in the data are raised as strings "file:line: what", the line
-- being the physical line (1-based, the header included) where the record
-- starts, or where the bad byte is:
--   data.csv:17: row has 4 fields, expected 3
--   data.csv:5: malformed quoting (a quote inside an unquoted field)    (stray_quotes = false)
--   data.csv:5: malformed quoting (text after a closing quote)
--   data.csv:9: malformed quoting (quoted field not closed at the end of the file)
--   data.csv:3: invalid UTF-8 (byte 0xE9); use encoding = false to read it anyway
--   data.csv.gz:812: gzip stream is truncated or corrupt: unexpected end of file
--   data.csv.gz:1002: gzip stream is followed by bytes that are not gzip (trailing garbage at byte 8123)
--   data.csv:2049: file shrank to 0 bytes while it was read (131072 bytes read): another program changed it
--   data.csv:1: duplicate column name "id" in the header (header = false reads rows as arrays)
--   cannot open data.csv: No such file or directory
--   data.csv:4: column 2: "x" is not an integer
-- Rows before the error have been handed out; none after it.
--
-- Speed: the reader goes from one byte that matters to the next with
-- memchr (the delimiter in an unquoted field, the quote in a quoted one),
-- and rows()'s iterator builds each row in Lua through the FFI, so
-- LuaJIT compiles the loop over the rows; what remains is mostly making
-- the row's strings and table (bench/csv_read.lua, README.md).
--
-- A reader (sluice.csv.open) has r:next() -> row, n (nil at the end),
-- r:record(), r:position(), r:seek(pos), r:identity(), r:close(), and
-- the fields r.line (physical line where the
-- last record began), r.offset (byte offset in the decompressed input just
-- past that record: where the next one starts), r.record_offset (byte
-- offset where it began), r.path (the path as given), r.header (a copy of
-- the names, nil when header = false), r.bytes_read (bytes read from the
-- file so far, as stored: compressed for gzip; reading runs a block
-- ahead) and r.file_size (its size, nil for standard input or a pipe):
-- what sluice.load's progress line shows for a file.  It frees its file at the end of
-- the input, on an error, on close() and when collected.
--
-- Positions (for resumable loads; the protocol every positionable input
-- follows is in README.md, "Positionable inputs"):
--   r:position() -> "offset:line:record:width": where the next record
--     starts (byte offset in the decompressed input, its physical line),
--     the records handed out before it, and the field count strict
--     reading expects (0 before the first record).  Plain text, small,
--     the same in any process.  After a typed field failed to convert
--     (opts.types) it is the position of that record, so a resume reads
--     it again.
--   r:seek(pos) goes to a position of this file, in this reader or
--     another one (a fresh process: open the file with the same options,
--     then seek); next() goes on from there with the record numbers and
--     lines an uninterrupted read gives.  With header = true the header
--     is read when the reader opens, so its names are known after a seek.
--     A reader that ended opens its file again.  A plain file seeks at
--     once (lseek); gzip input cannot seek, so it is decompressed from
--     its start (or from where the reader is, when the position is ahead)
--     and the bytes before the position dropped: about 1 s per GB of
--     decompressed CSV passed over (measured: 0.66-0.72 s for 687 MB,
--     gzip -1 or -9, where reading its 10 million records takes 5.2 s;
--     a plain file: no measurable time).  Errors:
--       seek: invalid position "x" (expected what position() returns: ...)
--       seek: position 0:1:0:0 is before the first record (the header ends at byte 12)
--       data.csv: position 9999 is past the end of the input (300 bytes)
--       data.csv: position 15 is not where a record starts (a position of
--         another file, or of this one before it changed?)
--       stdin: cannot seek in standard input (a position can only be gone back to in a file)
--     A position is only checked to follow a line end: a position of
--     another file can land on a line end inside a quoted field, which is
--     why a resume compares identities first.
--   r:identity() -> "csv <path> size=<bytes> mtime=<s>.<ns> crc32=<hex>
--     delimiter=0x2c quote=0x22 header=true skip=0": the file as given,
--     its size and modification time, the CRC-32 (zlib) of its first
--     64 KiB as stored (the compressed bytes of a gzip file), and the
--     options that decide where records begin.  A file rewritten, touched
--     or copied has another identity, even with the same rows.  Standard
--     input has none (an error).
--
-- r:record() -> the last record's text exactly as it is in the
-- (decompressed) input, without its line end (LF, CRLF or CR): quotes,
-- doubled quotes and the line ends inside quoted fields kept, a leading
-- BOM not part of it; nil before the first record and once the reader
-- ended (its buffers are freed then).  It costs nothing until called.
-- sluice.csv.reader_of(iter) -> the reader behind an iterator that
-- sluice.csv.rows() returned, or nil: for row in it do ... it's reader's
-- record(), line and path tell where the row came from, and its
-- position() and seek() move the iterator too.
--
-- Reject mode: with opts.on_reject = function(values, err, row, src)
-- and/or opts.rejects = "bad.csv" (and reject_chunk, max_rejects,
-- max_reject_ratio as sluice.load takes them), the file is read record by
-- record instead and loaded by sluice.load's copy_csv strategy in reject
-- mode: a record the server refuses (or of the wrong width) is set aside
-- with its text and line (src.source = "path:line", src.record) and the
-- others are loaded, in one transaction.  Returns rows loaded, rows
-- rejected.  The file must be UTF-8.  It is read with stray_quotes =
-- false (a file for the server's CSV parser, which does not take a quote
-- inside a field as data): such a record stops the load with the
-- reader's error, as it stops the server's COPY.
--
-- db:copy_from_file(table, path [, opts]) -> rows loaded.  Sends the file's
-- decompressed bytes into COPY table FROM STDIN (FORMAT csv) without Lua
-- touching a row (a BOM is dropped).  table may be "schema.table".  opts:
-- columns (array of names), header (default true), delimiter, quote, null
-- (the server's default: an unquoted empty field is NULL), encoding (the
-- file's encoding, for the server), quiet (true: no progress at all;
-- else the live line on a terminal - rows there are the lines sent - with
-- the bytes read of the file's size and an ETA, and at the end the
-- summary "<table> copy_from_file: N rows, ..." with the server's count:
-- sluice.progress).  A bad row raises the server's error
-- object, whose context names the line ("COPY t, line 3, column n: ..."),
-- and nothing is loaded; Ctrl-C while the file is sent, and a file that
-- cannot be read to its end (the errors above, without a line:
-- "data.csv.gz: gzip stream is ..."), abort the COPY the same way.
-- Ctrl-C after the whole file went out cancels the COPY if it is still
-- running; if it completed anyway, the error says its rows were
-- committed.  A connection lost after the whole file went out (outside a
-- transaction) leaves the COPY in doubt, and the error says so.
local core = require "sluice.core"
local progress = require "sluice.progress"
local ffi = require "ffi"

------------------------------------------------------- rows() iterators
-- sluice.csv.rows() (C, lib_csv.c) asks build_iterator below for the
-- iterator it returns.  That iterator is Lua written for the reader's
-- shape: one FFI call reads the next record (lib_csv.c's fast_next), then
-- the row is a table constructor -- the header's names as constant keys,
-- or positions -- of ffi.string(field) (or the typed column's number, or
-- sluice.null), so LuaJIT compiles a loop over the rows, the script's
-- own code in it, into one trace: no C API call per field, no hash
-- insertion per key, the fields' strings made in the trace.  Anything
-- else (the end, an error, a row of another width, an interrupt, a
-- value only the C path converts) is the C path's: take(reader), which
-- returns or raises exactly what reader:next() would.

pcall(ffi.cdef, [[
typedef struct sluice_csv_field { uint32_t off, len, is_null; } sluice_csv_field;
typedef struct sluice_csv_view {
  const char *data;
  const sluice_csv_field *fields;
  const double *nums;
  double n;
} sluice_csv_view;
]])
local view_ptr = ffi.typeof("sluice_csv_view *")
local next_fn_t = ffi.typeof("int (*)(sluice_csv_view *)")

-- The widest rows the builders are written for; wider ones take the C
-- path (the same rows, made field by field through the C API).
local MAX_WIDTH = 100

-- Lua of field i (0-based) of the view: its string, number or NULL.
local function field_code(i, kind, null)
  local v = kind ~= nil and kind ~= 0 and ("nums[%d]"):format(i)
            or ("str(d + f[%d].off, f[%d].len)"):format(i, i)
  if null then v = ("(f[%d].is_null ~= 0 and NULL or %s)"):format(i, v) end
  return v
end

-- source -> chunk: one compiled builder per shape, kept for the next
-- reader of that shape (a script reading many files of one kind); a
-- script reading files of more shapes than this starts over
local chunks, nchunks = {}, 0
local MAX_CHUNKS = 64

local function compile(src)
  local chunk = chunks[src]
  if not chunk then
    chunk = assert(loadstring(src, "=(sluice.csv rows)"))
    if nchunks == MAX_CHUNKS then chunks, nchunks = {}, 0 end
    chunks[src], nchunks = chunk, nchunks + 1
  end
  return chunk
end

-- The row of width w (keys: names, or nil for positions) as one table
-- constructor.
local function row_code(w, names, kinds, null)
  local parts = {}
  for i = 1, w do
    local v = field_code(i - 1, kinds[i], null)
    parts[i] = names and ("[%q] = %s"):format(names[i], v) or v
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local PRELUDE = "local str, NULL, fnext, take, reader, view = ...\n"

-- Keyed rows: the header's names are known when the reader opens.
local function keyed_iterator(names, kinds, null, ...)
  local w = #names
  local src = PRELUDE .. ([[
return function()
  local nf = fnext(view)
  if nf ~= %d then return take(reader) end
  local d, f, nums = view.data, view.fields, view.nums
  return %s, view.n
end]]):format(w, row_code(w, names, kinds, null))
  return compile(src)(...)
end

-- Array rows: the width is the first record's; a builder for it is made
-- then (rows of another width, with strict = false, take the C path).
local function array_builder(w, kinds, null)
  local src = ([[
local str, NULL = ...
return function(d, f, nums)
  return %s
end]]):format(row_code(w, nil, kinds, null))
  return compile(src)
end

local function array_iterator(kinds, null, str, NULL, fnext, take, reader, view)
  local width, build = -1, nil
  return function()
    local nf = fnext(view)
    if nf ~= width then
      if nf <= 0 or width ~= -1 or nf > MAX_WIDTH then return take(reader) end
      width, build = nf, array_builder(nf, kinds, null)(str, NULL)
    end
    return build(view.data, view.fields, view.nums), view.n
  end
end

local next_fn -- the C function, cast once

-- Called by sluice.csv.rows (C) with the reader just opened: its view
-- (a light userdata), lib_csv.c's fast_next, the C path take(reader), the
-- header's names (false: rows are arrays), the typed columns' kinds
-- (kinds[i] ~= 0: nums[i - 1] holds field i's number) and whether
-- opts.null was given.  Returns the iterator, or nil (the C one serves).
local function build_iterator(reader, view, fn, take, names, kinds, null)
  if names and (#names == 0 or #names > MAX_WIDTH) then return nil end
  next_fn = next_fn or ffi.cast(next_fn_t, fn)
  local v = ffi.cast(view_ptr, view)
  if names then
    return keyed_iterator(names, kinds, null, ffi.string, core.null, next_fn, take, reader, v)
  end
  return array_iterator(kinds, null, ffi.string, core.null, next_fn, take, reader, v)
end
core.set_helper("csv_rows", build_iterator)

-- (db:copy_from_file is core.csv_copy_from_file; api.lua makes it a
-- method of connections.)
local M = {
  open = core.csv_open,
  rows = core.csv_rows,
  reader_of = core.csv_reader_of,
}

-- copy_from_file's options that reject mode reads the file with; the
-- others are the load's.
local REJECT_OPTS = { columns = true, header = true, delimiter = true, quote = true,
                      null = true, encoding = true, on_reject = true, rejects = true,
                      reject_chunk = true, max_rejects = true, max_reject_ratio = true,
                      quiet = true }

-- copy_from_file in reject mode: the file is read record by record
-- (sluice.csv.open: the record's text and line go to on_reject and the
-- rejects file) and loaded by sluice.load's copy_csv strategy in reject
-- mode.  Returns rows loaded, rows rejected.
local function copy_from_file_rejecting(db, tbl, path, opts)
  for k in pairs(opts) do
    if not REJECT_OPTS[k] then
      error("copy_from_file: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  if opts.encoding ~= nil and tostring(opts.encoding):lower():gsub("[-_]", "") ~= "utf8" then
    error("copy_from_file: on_reject and rejects read UTF-8 files (encoding \""
          .. tostring(opts.encoding) .. "\")", 3)
  end
  -- stray_quotes = false: the file is written for the server's CSV
  -- parser, which does not read a quote inside a field as data
  local r = M.open(path, { header = false, strict = false, delimiter = opts.delimiter,
                           quote = opts.quote, null = opts.null or "", stray_quotes = false })
  if opts.header ~= false then r:next() end
  local ok, s = pcall(require("sluice.load").load, {
    db = db, table = tbl, columns = opts.columns, rows = r, strategy = "copy_csv",
    on_error = "reject", on_reject = opts.on_reject, rejects = opts.rejects,
    reject_chunk = opts.reject_chunk, max_rejects = opts.max_rejects,
    max_reject_ratio = opts.max_reject_ratio, quiet = opts.quiet,
    label = tostring(tbl) .. " copy_from_file",
  })
  r:close()
  if not ok then error(s, 0) end
  return s.loaded, s.rejected
end

--- db:copy_from_file(table, path [, opts]) (see the top of this file).
function M.copy_from_file(db, tbl, path, opts)
  if type(opts) == "table" and (opts.on_reject ~= nil or opts.rejects ~= nil) then
    return copy_from_file_rejecting(db, tbl, path, opts)
  end
  local prog = progress.of(type(opts) == "table" and opts or nil,
                           tostring(tbl) .. " copy_from_file")
  -- a tail call: misuse still names the caller's line
  return core.csv_copy_from_file(db, tbl, path, opts, prog and prog:hook(true),
                                 prog and prog.live)
end

--- Whether x is a reader of sluice.csv.open.
function M.is_reader(x)
  return type(x) == "userdata" and core.csv_is_reader(x)
end

return M
