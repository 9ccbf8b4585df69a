--- sluice.csv: read CSV files (plain or gzip) row by row, or pour one
-- straight into a table.
--
-- The work is in C (runtime/csvread.c: libcsv over zlib's gz reader;
-- runtime/lib_csv.c: the binding); this module is the documented surface.
-- The functions are the C functions themselves, so a misuse error points at
-- the caller's line.
--
--   for row, n in sluice.csv.rows("people.csv.gz") do ... end
--   local r = sluice.csv.open(path, opts); r:next(); r.line; r:close()
--   db:copy_from_file("public.people", "people.csv.gz")
--
-- Reading (open/rows).  path is a file name, or "-" for standard input;
-- gzip is recognised from the content, not the name.  opts:
--   header     true (default): the first record names the columns and rows
--              are tables keyed by those names (fields beyond the header,
--              with strict = false, go to their position: row[4]); a
--              duplicate name is an error.  false: rows are arrays.
--   delimiter  one character (default ","); quote: one character ('"').
--   null       the field text that means NULL (sluice.null in the row);
--              default nil: no NULLs, every field is a string.  null = ""
--              makes only unquoted empty fields NULL ("" stays an empty
--              string), as COPY does.  Any other text also matches when it
--              was quoted (libcsv does not say which fields were quoted).
--   strict     true (default): a row whose field count differs from the
--              header's (or the first row's) is an error; false: kept.
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
-- delimiter, doubled quotes and line ends; LF and CRLF both end a record;
-- spaces are data.  Blank lines (outside quotes) are skipped, so they count
-- as lines but not as records.  Quoting is strict: a quote inside an
-- unquoted field, text after a closing quote, or a quote still open at the
-- end of the file is an error.
--
-- Errors in the data are raised as strings "file:line: what", the line
-- being the physical line (1-based, the header included) where the record
-- starts, or where the bad byte is:
--   data.csv:17: row has 4 fields, expected 3
--   data.csv:5: malformed quoting (a quote inside an unquoted field)
--   data.csv:5: malformed quoting (text after a closing quote)
--   data.csv:9: malformed quoting (quoted field not closed at the end of the file)
--   data.csv:3: invalid UTF-8 (byte 0xE9); use encoding = false to read it anyway
--   data.csv.gz:812: gzip stream is truncated or corrupt: unexpected end of file
--   data.csv:1: duplicate column name "id" in the header (header = false reads rows as arrays)
--   cannot open data.csv: No such file or directory
--   data.csv:4: column 2: "x" is not an integer
-- Rows before the error have been handed out; none after it.
--
-- Speed: a line with no quote character is split right away (memchr), not
-- fed to libcsv a byte at a time; lines with quotes go through libcsv.
-- Both give the same fields.
--
-- A reader (sluice.csv.open) has r:next() -> row, n (nil at the end),
-- r:close(), and the fields r.line (physical line where the last record
-- began), r.offset (byte offset in the decompressed input just past that
-- record: where the next one starts), r.header (a copy of the names, nil
-- when header = false).  It frees its file at the end of the input, on an
-- error, on close() and when collected.
--
-- db:copy_from_file(table, path [, opts]) -> rows loaded.  Sends the file's
-- decompressed bytes into COPY table FROM STDIN (FORMAT csv) without Lua
-- touching a row (a BOM is dropped).  table may be "schema.table".  opts:
-- columns (array of names), header (default true), delimiter, quote, null
-- (the server's default: an unquoted empty field is NULL), encoding (the
-- file's encoding, for the server).  A bad row raises the server's error
-- object, whose context names the line ("COPY t, line 3, column n: ..."),
-- and nothing is loaded; Ctrl-C while the file is sent aborts the COPY
-- the same way.  Ctrl-C after the whole file went out cancels the COPY
-- if it is still running; if it completed anyway, the error says its
-- rows were committed.  A connection lost after the whole file went out
-- (outside a transaction) leaves the COPY in doubt, and the error says so.
local core = require "sluice.core"

local M = {
  open = core.csv_open,
  rows = core.csv_rows,
}

core.conn_methods.copy_from_file = core.csv_copy_from_file

return M
