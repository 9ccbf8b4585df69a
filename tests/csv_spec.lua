-- sluice.csv: the streaming reader (fixtures in tests/fixtures/csv/, each
-- with the exact rows or the exact error expected) and db:copy_from_file.
local H = require "helper"
local sluice = require "sluice"
local csv = sluice.csv
local ffi = require "ffi"

ffi.cdef [[ int getpid(void); ]]

local NULL = sluice.null
-- the reader's block size (CSVREAD_BLOCK in runtime/csvread.h): tests put
-- line ends and characters right across a block boundary
local BLOCK = 128 * 1024

local function F(name) return H.root .. "/tests/fixtures/csv/" .. name end

local write = H.write

local slurp = H.slurp

local read_all, read_err = H.csv_read_all, H.csv_read_err

-- run a shell command (in a subshell: H.run appends its own redirections)
local function sh(cmd)
  local code, out, err = H.run("(" .. cmd .. ")")
  assert.are.equal(0, code, err)
  return out
end

local function open_fds()
  return tonumber((sh("ls /proc/" .. ffi.C.getpid() .. "/fd | wc -l")))
end

local tmp
setup(function() tmp = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. tmp) end)

describe("sluice.csv.rows", function()
  it("reads rows keyed by the header, with record numbers", function()
    local got = {}
    for row, n in csv.rows(F("basic.csv")) do got[#got + 1] = { n, row } end
    assert.are.same({
      { 1, { id = "1", name = "Ada", city = "London" } },
      { 2, { id = "2", name = "Grace", city = "New York" } },
      { 3, { id = "3", name = "Linus", city = "Helsinki" } },
    }, got)
  end)

  it("reads arrays with header = false, the header line being record 1", function()
    local rows = read_all(F("basic.csv"), { header = false })
    assert.are.same({ { "id", "name", "city" }, { "1", "Ada", "London" },
      { "2", "Grace", "New York" }, { "3", "Linus", "Helsinki" } }, rows)
  end)

  it("reads quoted delimiters, doubled quotes and line ends inside quotes, counting physical lines", function()
    local rows, lines = read_all(F("quotes.csv"))
    assert.are.same({
      { id = "1", text = "a, b", note = 'say "hi"' },
      { id = "2", text = "line one\nline two", note = "x" },
      { id = "3", text = "", note = '"' },
      { id = "4", text = 'with "quotes", commas, and\ntwo line\nbreaks', note = "end" },
      { id = "5", text = "plain", note = "last" },
    }, rows)
    assert.are.same({ 2, 3, 5, 6, 9 }, lines)
  end)

  it("reads CRLF line ends, CRLF inside quotes and a last line without a line end", function()
    local rows, lines, offsets = read_all(F("crlf.csv"))
    assert.are.same({ { id = "1", val = "a" }, { id = "2", val = "x\r\ny" }, { id = "3", val = "z" } }, rows)
    assert.are.same({ 2, 3, 5 }, lines)
    assert.are.same({ 13, 23, 26 }, offsets) -- past each record's CRLF; 26 = file size
  end)

  it("ignores a leading UTF-8 BOM", function()
    local rows, _, _, r = read_all(F("bom.csv"))
    assert.are.same({ "id", "name" }, r.header)
    assert.are.same({ { id = "1", name = "x" }, { id = "2", name = "y" } }, rows)
  end)

  it("raises for a ragged row when strict, naming its physical line, after the good rows", function()
    local err, rows = read_err(F("ragged.csv"))
    assert.are.equal(F("ragged.csv") .. ":5: row has 4 fields, expected 3", err)
    assert.are.same({ { a = "1", b = "2", c = "3" }, { a = "4", b = "five\n5", c = "6" } }, rows)
    err = read_err(F("ragged.csv"), { header = false })
    assert.are.equal(F("ragged.csv") .. ":5: row has 4 fields, expected 3", err)
  end)

  it("keeps ragged rows as they are with strict = false", function()
    assert.are.same({
      { a = "1", b = "2", c = "3" },
      { a = "4", b = "five\n5", c = "6" },
      { a = "7", b = "8", c = "9", [4] = "10" }, -- beyond the header: by position
      { a = "11", b = "12" },
    }, (read_all(F("ragged.csv"), { strict = false })))
    assert.are.same({ { "a", "b", "c" }, { "1", "2", "3" }, { "4", "five\n5", "6" },
      { "7", "8", "9", "10" }, { "11", "12" } }, (read_all(F("ragged.csv"), { header = false, strict = false })))
  end)

  it("tells an empty field from an empty quoted one, and NULLs only what opts.null says", function()
    -- no null option: every field is a string
    assert.are.same({ { a = "", b = "", c = "x" }, { a = "\\N", b = "\\N", c = "NULL" } },
      (read_all(F("nulls.csv"))))
    -- null = "": only the unquoted empty field
    local rows = read_all(F("nulls.csv"), { null = "" })
    assert.are.same({ { a = NULL, b = "", c = "x" }, { a = "\\N", b = "\\N", c = "NULL" } }, rows)
    assert.are.equal(NULL, rows[1].a)
    -- null = "\N": matched quoted or not
    assert.are.same({ { a = "", b = "", c = "x" }, { a = NULL, b = NULL, c = "NULL" } },
      (read_all(F("nulls.csv"), { null = "\\N" })))
  end)

  it("raises for invalid UTF-8 naming the line, unless encoding = false", function()
    local err, rows = read_err(F("invalid_utf8.csv"))
    assert.are.equal(F("invalid_utf8.csv")
      .. ":3: invalid UTF-8 (byte 0xE9); use encoding = false to read it anyway", err)
    assert.are.same({ { name = "José", city = "Köln € 😀" } }, rows)
    rows = read_all(F("invalid_utf8.csv"), { encoding = false })
    assert.are.same({ { name = "José", city = "Köln € 😀" }, { name = "Ren\233", city = "Paris" },
      { name = "Zoë", city = "Gent" } }, rows)
    assert.are.same(rows, (read_all(F("invalid_utf8.csv"), { encoding = false, null = "x" })))
  end)

  it("rejects overlong forms, surrogates, code points above U+10FFFF and a sequence cut by the end", function()
    for _, case in ipairs {
      { "a\n\192\175\n", "0xC0" }, { "a\n\224\128\175\n", "0xE0" }, { "a\n\237\160\128\n", "0xED" },
      { "a\n\244\144\128\128\n", "0xF4" }, { "a\n\255\n", "0xFF" }, { "a\nok\226\130", "0xE2" },
    } do
      write(tmp .. "/u.csv", case[1])
      local err = read_err(tmp .. "/u.csv")
      assert.are.equal(tmp .. "/u.csv:2: invalid UTF-8 (byte " .. case[2]
        .. "); use encoding = false to read it anyway", err)
    end
  end)

  it("reads nothing from an empty file, with or without a header", function()
    local rows, _, _, r = read_all(F("empty.csv"))
    assert.are.same({}, rows)
    assert.are.same({}, r.header)
    assert.are.same({}, (read_all(F("empty.csv"), { header = false })))
  end)

  it("reads no rows from a header-only file", function()
    local rows, _, _, r = read_all(F("header_only.csv"))
    assert.are.same({}, rows)
    assert.are.same({ "a", "b", "c" }, r.header)
  end)

  it("takes a custom delimiter and quote", function()
    assert.are.same({ { id = "1", label = "semi;colon" }, { id = "2", label = "it's" },
      { id = "3", label = '"plain"' } }, (read_all(F("custom.csv"), { delimiter = ";", quote = "'" })))
  end)

  it("keeps spaces and tabs around fields (RFC 4180), even with a tab delimiter", function()
    assert.are.same({ { a = " x ", b = " y " }, { a = "\t1\t", b = "2" } }, (read_all(F("spaces.csv"))))
    write(tmp .. "/t.tsv", "a\tb\n x \t y \n")
    assert.are.same({ { a = " x ", b = " y " } }, (read_all(tmp .. "/t.tsv", { delimiter = "\t" })))
  end)

  it("skips physical lines before the header, quotes and all", function()
    local rows, lines = read_all(F("skip.csv"), { skip = 2 })
    assert.are.same({ { id = "1", v = "a" } }, rows)
    assert.are.same({ 4 }, lines)
    assert.are.same({}, (read_all(F("skip.csv"), { skip = 10 })))
  end)

  it("skips blank lines (LF or CRLF) but keeps them inside quotes, and counts them as lines", function()
    local rows, lines = read_all(F("blank_lines.csv"))
    assert.are.same({ { a = "1", b = "2" }, { a = "3", b = "4" }, { a = "5", b = "x\n\ny" } }, rows)
    assert.are.same({ 3, 6, 7 }, lines)
  end)

  it("reads a quote inside an unquoted field as data; stray_quotes = false refuses it", function()
    local want = { { a = "1", b = "2" }, { a = "3", b = 'x"y' }, { a = "4", b = "5" } }
    assert.are.same(want, (read_all(F("bad_quote.csv"))))
    local got = {}
    for row, n in csv.rows(F("bad_quote.csv")) do got[n] = row end
    assert.are.same(want, got)
    local err, rows = read_err(F("bad_quote.csv"), { stray_quotes = false })
    assert.are.equal(F("bad_quote.csv") .. ":3: malformed quoting (a quote inside an unquoted field)", err)
    assert.are.same({ { a = "1", b = "2" } }, rows)
    assert.has_error(function() csv.open(F("bad_quote.csv"), { stray_quotes = "no" }) end,
      "sluice.csv.open: option stray_quotes must be a boolean, got a string")
  end)

  it("raises for malformed quoting with the line of the bad byte", function()
    local err, rows = read_err(F("after_quote.csv"))
    assert.are.equal(F("after_quote.csv") .. ":4: malformed quoting (text after a closing quote)", err)
    assert.are.same({ { a = "ok", b = "1" } }, rows)
  end)

  it("raises for a quote still open at the end of the file, naming the record's line", function()
    local err, rows = read_err(F("unterminated.csv"))
    assert.are.equal(F("unterminated.csv")
      .. ":3: malformed quoting (quoted field not closed at the end of the file)", err)
    assert.are.same({ { a = "1", b = "2" } }, rows)
  end)

  it("refuses a header with a duplicate name, unless rows are arrays", function()
    local ok, err = pcall(csv.open, F("dup_header.csv"))
    assert.is_false(ok)
    assert.are.equal(F("dup_header.csv")
      .. ':1: duplicate column name "id" in the header (header = false reads rows as arrays)', err)
    assert.are.same({ { "id", "name", "id" }, { "1", "2", "3" } },
      (read_all(F("dup_header.csv"), { header = false })))
  end)

  it("reads gzip input, recognised by content whatever the file name", function()
    sh("gzip -c " .. H.q(F("quotes.csv")) .. " > " .. H.q(tmp .. "/quotes.csv.gz"))
    sh("cp " .. H.q(tmp .. "/quotes.csv.gz") .. " " .. H.q(tmp .. "/looks_plain.csv"))
    local plain, plines = read_all(F("quotes.csv"))
    local gz, glines = read_all(tmp .. "/quotes.csv.gz")
    assert.are.same(plain, gz)
    assert.are.same(plines, glines)
    assert.are.same(plain, (read_all(tmp .. "/looks_plain.csv")))
  end)

  it("raises for a truncated gzip file after the rows it holds, never a short read", function()
    local parts = { "id,text\n" }
    for i = 1, 20000 do parts[#parts + 1] = ("%d,row number %d of the truncated file\n"):format(i, i) end
    write(tmp .. "/big.csv", table.concat(parts))
    sh("gzip -c " .. H.q(tmp .. "/big.csv") .. " > " .. H.q(tmp .. "/big.csv.gz"))
    local size = #slurp(tmp .. "/big.csv.gz")
    sh(("head -c %d %s > %s"):format(math.floor(size / 2), H.q(tmp .. "/big.csv.gz"), H.q(tmp .. "/cut.csv.gz")))
    local err, rows = read_err(tmp .. "/cut.csv.gz")
    local n = #rows
    assert.truthy(n > 1000 and n < 20000, n)
    for i = 1, n do
      assert.are.same({ id = tostring(i), text = ("row number %d of the truncated file"):format(i) }, rows[i])
    end
    -- the error names the line where the data stopped: the one after the last row
    assert.are.equal(("%s:%d: gzip stream is truncated or corrupt: unexpected end of file")
      :format(tmp .. "/cut.csv.gz", n + 2), err)
  end)

  it("raises for a corrupt gzip stream", function()
    -- a wrong CRC in the trailer: every byte inflates, the check fails
    local gz = slurp(tmp .. "/big.csv.gz")
    write(tmp .. "/bad.csv.gz", gz:sub(1, -9) .. "\0\0\0\0" .. gz:sub(-4))
    local err = read_err(tmp .. "/bad.csv.gz")
    local prefix = (tmp .. "/bad.csv.gz"):gsub("%p", "%%%0")
    assert.truthy(err:match("^" .. prefix .. ":%d+: gzip stream is truncated or corrupt: incorrect data check$"), err)
  end)

  it("keeps records, characters and CRLF whole across read blocks, with exact lines and offsets", function()
    -- a CRLF whose CR is the last byte of the first block, and an "é"
    -- whose two bytes are split by the second block's end
    local head = "a,b\r\n"
    local r1 = "1," .. ("x"):rep(BLOCK - 8) .. "\r\n"
    assert.are.equal(BLOCK - 1, #head + #r1 - 2) -- index of the CR
    local r2 = "2," .. ("y"):rep(BLOCK - 4) .. "é,\n"
    assert.are.equal(BLOCK * 2 - 1, #head + #r1 + #r2 - 4) -- index of the é
    local r3 = '3,"line\r\nend"\r\n'
    local content = head .. r1 .. r2 .. r3 .. "4,z"
    write(tmp .. "/blocks.csv", content)
    sh("gzip -c " .. H.q(tmp .. "/blocks.csv") .. " > " .. H.q(tmp .. "/blocks.csv.gz"))
    for _, path in ipairs { tmp .. "/blocks.csv", tmp .. "/blocks.csv.gz" } do
      local rows, lines, offsets = read_all(path, { header = false, strict = false })
      assert.are.equal(5, #rows)
      assert.are.same({ "1", ("x"):rep(BLOCK - 8) }, rows[2])
      assert.are.same({ "2", ("y"):rep(BLOCK - 4) .. "é", "" }, rows[3])
      assert.are.same({ "3", "line\r\nend" }, rows[4])
      assert.are.same({ "4", "z" }, rows[5])
      assert.are.same({ 1, 2, 3, 4, 6 }, lines)
      local o1 = #head + #r1
      assert.are.same({ #head, o1, o1 + #r2, o1 + #r2 + #r3, #content }, offsets)
    end
  end)

  it("reads a large file with multi-line records and multibyte text, plain and gzip", function()
    local parts, expect, lines, offsets = { "id,text,note\n" }, {}, {}, {}
    local len, line = #parts[1], 2
    for i = 1, 30000 do
      local text = ("é€😀 row %d "):format(i):rep(i % 5 + 1)
      local note, raw = "n" .. i, "n" .. i
      if i % 7 == 0 then note, raw = 'two\r\nlines, "q"', '"two\r\nlines, ""q"""' end
      local rec = i .. "," .. text .. "," .. raw .. (i % 2 == 0 and "\r\n" or "\n")
      parts[#parts + 1] = rec
      expect[i] = { id = tostring(i), text = text, note = note }
      lines[i] = line
      line = line + (i % 7 == 0 and 2 or 1)
      len = len + #rec
      offsets[i] = len
    end
    write(tmp .. "/large.csv", table.concat(parts))
    assert.truthy(len > 3 * BLOCK)
    sh("gzip -c " .. H.q(tmp .. "/large.csv") .. " > " .. H.q(tmp .. "/large.csv.gz"))
    for _, path in ipairs { tmp .. "/large.csv", tmp .. "/large.csv.gz" } do
      local rows, got_lines, got_offsets = read_all(path)
      assert.are.equal(30000, #rows)
      for i = 1, 30000 do
        if rows[i].id ~= expect[i].id or rows[i].text ~= expect[i].text or rows[i].note ~= expect[i].note then
          assert.are.same(expect[i], rows[i])
        end
      end
      assert.are.same(lines, got_lines)
      assert.are.same(offsets, got_offsets)
    end
  end)

  it("reads standard input for '-', plain or gzip", function()
    local script = [[for row, n in require("sluice").csv.rows("-") do io.write(n, ":", row.id, "/", row.text, "\n") end]]
    local code, out, err = H.sluice("-e " .. H.q(script) .. " < " .. H.q(F("quotes.csv")))
    assert.are.equal(0, code, err)
    local expect = '1:1/a, b\n2:2/line one\nline two\n3:3/\n4:4/with "quotes", commas, and\ntwo line\nbreaks\n5:5/plain\n'
    assert.are.equal(expect, out)
    code, out, err = H.sluice("-e " .. H.q(script) .. " < " .. H.q(tmp .. "/quotes.csv.gz"))
    assert.are.equal(0, code, err)
    assert.are.equal(expect, out)
    -- errors name stdin
    script = [[for row, n in require("sluice").csv.rows("-") do io.write(n, ":", row.a, "\n") end]]
    code, out, err = H.sluice("-e " .. H.q(script) .. " < " .. H.q(F("ragged.csv")))
    assert.are.equal("1:1\n2:4\n", out)
    assert.are.equal(1, code)
    assert.truthy(err:find("stdin:5: row has 4 fields, expected 3", 1, true), err)
  end)
end)

describe("sluice.csv.open", function()
  it("exposes line, offset and a copy of the header", function()
    local r = csv.open(F("quotes.csv"))
    assert.are.same({ "id", "text", "note" }, r.header)
    r.header[1] = "changed" -- a copy: the rows keep their keys
    assert.are.equal(1, r.line)
    assert.are.equal(13, r.offset)
    local row, n = r:next()
    assert.are.same({ id = "1", text = "a, b", note = 'say "hi"' }, row)
    assert.are.equal(1, n)
    assert.are.equal(2, r.line)
    local content = slurp(F("quotes.csv"))
    -- offset: where the next record starts
    assert.are.equal('2,"line one', content:sub(r.offset + 1, r.offset + 11))
    r:next()
    assert.are.equal(3, r.line)
    assert.are.equal("3,", content:sub(r.offset + 1, r.offset + 2))
    assert.is_nil(csv.open(F("basic.csv"), { header = false }).header)
    assert.truthy(tostring(r):find("sluice.csv (" .. F("quotes.csv") .. ", line 3)", 1, true), tostring(r))
    r:close()
    assert.are.equal("sluice.csv (closed)", tostring(r))
  end)

  it("returns nil at the end and keeps doing so; reports the same error again", function()
    local r = csv.open(F("basic.csv"))
    for _ = 1, 3 do assert.truthy(r:next()) end
    assert.is_nil(r:next())
    assert.is_nil(r:next())
    assert.are.equal(4, r.line)
    r = csv.open(F("ragged.csv"))
    r:next(); r:next()
    local ok1, e1 = pcall(r.next, r)
    local ok2, e2 = pcall(r.next, r)
    assert.is_false(ok1 or ok2)
    assert.are.equal(e1, e2)
  end)

  it("refuses use after close, at the caller's line; close twice is fine", function()
    local r = csv.open(F("basic.csv"))
    r:close()
    r:close()
    local ok, err = pcall(function() r:next() end)
    assert.is_false(ok)
    assert.truthy(err:find("csv_spec.lua:%d+: the CSV reader is closed"), err)
  end)

  it("raises misuse at the caller's line", function()
    local function e(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      return err
    end
    assert.truthy(e(function() csv.rows(F("basic.csv"), { delimeter = ";" }) end)
      :find("csv_spec.lua:%d+: sluice.csv.rows: unknown option 'delimeter'"))
    assert.truthy(e(function() csv.open(F("basic.csv"), { delimiter = ";;" }) end)
      :find("csv_spec.lua:%d+: sluice.csv.open: option delimiter must be one character"))
    assert.truthy(e(function() csv.open(F("basic.csv"), { quote = "," }) end)
      :find("csv_spec.lua:%d+: sluice.csv.open: delimiter and quote must differ"))
    assert.truthy(e(function() csv.open(F("basic.csv"), { header = "yes" }) end)
      :find("csv_spec.lua:%d+: sluice.csv.open: option header must be a boolean, got a string"))
    assert.truthy(e(function() csv.open(F("basic.csv"), { encoding = "latin1" }) end)
      :find('csv_spec.lua:%d+: sluice.csv.open: option encoding must be "utf8"'))
    assert.truthy(e(function() csv.open(F("basic.csv"), { skip = -1 }) end)
      :find("csv_spec.lua:%d+: sluice.csv.open: option skip must be a whole number >= 0"))
    assert.truthy(e(function() csv.open(F("basic.csv"), { delimiter = "\167" }) end)
      :find("csv_spec.lua:%d+: sluice.csv.open: a delimiter or quote byte above 127 needs encoding = false"))
    assert.truthy(e(function() csv.open() end):find("csv_spec.lua:%d+: bad argument #1"))
    assert.are.equal("cannot open " .. tmp .. "/nope.csv: No such file or directory",
      e(function() csv.open(tmp .. "/nope.csv") end))
  end)

  it("closes files at the end of a loop, and when a dropped reader is collected", function()
    collectgarbage(); collectgarbage()
    local before = open_fds()
    for _ = 1, 50 do
      for _ in csv.rows(F("basic.csv")) do end
    end
    assert.are.equal(before, open_fds())
    local keep = {}
    for i = 1, 50 do keep[i] = csv.open(F("basic.csv")) end
    assert.are.equal(before + 50, open_fds())
    assert.are.equal(50, #keep)
    keep = nil
    collectgarbage(); collectgarbage()
    assert.are.equal(before, open_fds())
  end)
end)

describe("db:copy_from_file", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "csv_copy")
    db:exec([[create table scores(id int primary key, name text, score int);
      create table "Odd Name"(id int, "Label" text)]])
  end)
  teardown(function() db:close() end)
  before_each(function() db:exec([[truncate scores; truncate "Odd Name"]]) end)

  local function all()
    return db:query("select id, name, score from scores order by id")
  end
  local expect = {
    { id = 1, name = "alice", score = 10 },
    { id = 2, name = "bob, jr", score = NULL },
    { id = 3, name = "multi\nline", score = 30 },
  }

  it("loads a plain CSV file and returns the row count", function()
    assert.are.equal(3, db:copy_from_file("scores", F("scores.csv")))
    assert.are.same(expect, all())
  end)

  it("loads a gzip file, with a schema-qualified name and columns", function()
    sh("gzip -c " .. H.q(F("scores.csv")) .. " > " .. H.q(tmp .. "/scores.csv.gz"))
    assert.are.equal(3, db:copy_from_file("csv_copy.scores", tmp .. "/scores.csv.gz",
      { columns = { "id", "name", "score" } }))
    assert.are.same(expect, all())
  end)

  it("quotes identifiers, and takes header, delimiter, quote and null", function()
    write(tmp .. "/odd.csv", "\239\187\191" .. "1;'a;b'\n2;NULL\n3;''\n") -- with a BOM
    assert.are.equal(3, db:copy_from_file("Odd Name", tmp .. "/odd.csv",
      { header = false, delimiter = ";", quote = "'", null = "NULL", columns = { "id", "Label" } }))
    assert.are.same({ { id = 1, Label = "a;b" }, { id = 2, Label = NULL }, { id = 3, Label = "" } },
      db:query([[select * from "Odd Name" order by id]]))
  end)

  it("raises the server's error for a bad row, naming the line; the table is unchanged", function()
    db:copy_from_file("scores", F("scores.csv"))
    local ok, err = pcall(db.copy_from_file, db, "scores", F("scores_bad.csv"))
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err))
    assert.are.equal("22P02", err.sqlstate)
    assert.are.equal('invalid input syntax for type integer: "x"', err.message)
    assert.are.equal('COPY scores, line 3, column score: "x"', err.context)
    assert.are.same(expect, all())
    assert.are.equal("idle", db:status())
    assert.are.equal(1, db:query_one("select 1 as x").x)
  end)

  it("raises for a truncated gzip file after sending most of it; nothing is loaded", function()
    local parts = { "id,name,score\n" }
    for i = 1, 50000 do parts[#parts + 1] = ("%d,name %d,%d\n"):format(i, i, i % 100) end
    write(tmp .. "/many.csv", table.concat(parts))
    sh("gzip -c " .. H.q(tmp .. "/many.csv") .. " > " .. H.q(tmp .. "/many.csv.gz"))
    assert.are.equal(50000, db:copy_from_file("scores", tmp .. "/many.csv.gz"))
    db:exec("truncate scores")
    local size = #slurp(tmp .. "/many.csv.gz")
    sh(("head -c %d %s > %s"):format(size - 100, H.q(tmp .. "/many.csv.gz"), H.q(tmp .. "/cut.csv.gz")))
    local ok, err = pcall(db.copy_from_file, db, "scores", tmp .. "/cut.csv.gz")
    assert.is_false(ok)
    assert.are.equal(tmp .. "/cut.csv.gz: gzip stream is truncated or corrupt: unexpected end of file", err)
    assert.are.same({}, all())
    assert.are.equal("idle", db:status())
  end)

  it("raises for a missing table or file, and for misuse at the caller's line; the connection stays usable", function()
    local ok, err = pcall(db.copy_from_file, db, "nope", F("scores.csv"))
    assert.is_false(ok)
    assert.are.equal("42P01", err.sqlstate)
    ok, err = pcall(db.copy_from_file, db, "scores", tmp .. "/nope.csv")
    assert.are.equal("cannot open " .. tmp .. "/nope.csv: No such file or directory", err)
    ok, err = pcall(function() db:copy_from_file("scores", F("scores.csv"), { delimeter = ";" }) end)
    assert.truthy(err:find("csv_spec.lua:%d+: copy_from_file: unknown option 'delimeter'"), err)
    ok, err = pcall(function() db:copy_from_file("a..b", F("scores.csv")) end)
    assert.truthy(err:find("csv_spec.lua:%d+: copy_from_file: invalid table name 'a..b'"), err)
    ok, err = pcall(function() db:copy_from_file("scores", F("scores.csv"), { columns = {} }) end)
    assert.truthy(err:find("csv_spec.lua:%d+: copy_from_file: option columns must be a non%-empty array"), err)
    assert.are.equal(3, db:copy_from_file("scores", F("scores.csv")))
  end)

  it("rolls back with the enclosing transaction", function()
    db:begin()
    assert.are.equal(3, db:copy_from_file("scores", F("scores.csv")))
    db:rollback()
    assert.are.same({}, all())
  end)

  it("reads standard input for '-' (gzip here) in a child process", function()
    local script = [[
      local db = require("sluice").connect()
      print(db:copy_from_file("csv_copy.scores", "-"))]]
    local code, out, err = H.sluice("-e " .. H.q(script) .. " < " .. H.q(tmp .. "/scores.csv.gz"))
    assert.are.equal(0, code, err)
    assert.are.equal("3\n", out)
    assert.are.same(expect, all())
  end)

  it("aborts on Ctrl-C while waiting for input; nothing is loaded", function()
    local fifo = tmp .. "/fifo"
    sh("rm -f " .. H.q(fifo) .. " && mkfifo " .. H.q(fifo))
    local script = tmp .. "/copy_int.lua"
    write(script, ([[
      local db = require("sluice").connect()
      io.open(%q, "w"):close()
      db:copy_from_file("csv_copy.scores", %q)]]):format(tmp .. "/ready", fifo))
    -- the writer sends a header and a row, then keeps the FIFO open
    local cmd = ("(printf 'id,name,score\\n1,a,1\\n'; exec sleep 20) > %s & w=$!; "
      .. "timeout -s KILL 30 %s %s 2>%s/err & pid=$!; "
      .. "for i in $(seq 100); do [ -e %s/ready ] && break; sleep 0.05; done; "
      .. "sleep 0.3; kill -INT $pid; wait $pid 2>/dev/null; echo $? > %s/code; kill $w")
      :format(H.q(fifo), H.q(H.exe), H.q(script), tmp, tmp, tmp)
    local t0 = os.time()
    os.execute(cmd)
    assert.truthy(os.time() - t0 < 10)
    assert.are.equal("130\n", slurp(tmp .. "/code")) -- ended by SIGINT
    local err = slurp(tmp .. "/err")
    assert.truthy(err:find("COPY from stdin failed: interrupted", 1, true), err)
    assert.are.same({}, all())
  end)

  it("loads a large file (backpressure on a full socket)", function()
    assert.are.equal(50000, db:copy_from_file("scores", tmp .. "/many.csv"))
    assert.are.equal(50000, db:query_one("select count(*) as n from scores").n)
    assert.are.same({ id = 50000, name = "name 50000", score = 0 },
      db:query_one("select * from scores where id = 50000"))
  end)
end)

describe("reader:record(), record_offset, path and csv.reader_of", function()
  -- Records of every kind, many of them (over two block boundaries, at
  -- places the lengths decide): unquoted, quoted with delimiters,
  -- doubled quotes and line ends inside, ended by
  -- LF, CRLF or a lone CR, with blank lines between; a BOM first.  Returns
  -- the bytes and, per record, { text, offset, line }.
  local function make()
    local parts, recs, at, line = { "\239\187\191" }, {}, 3, 1
    local function add(text, nl)
      recs[#recs + 1] = { text, at, line }
      parts[#parts + 1] = text .. nl
      at = at + #text + #nl
      local _, lfs = (text .. nl):gsub("\n", "")
      line = line + lfs + (nl == "\r" and 1 or 0) -- a CR alone ends a line too
    end
    add("id,text", "\r\n")
    for i = 1, 6000 do
      local k = i % 6
      local text
      if k == 0 then
        text = ("%d,plain value %s"):format(i, ("x"):rep(i % 97))
      elseif k == 1 then
        text = ('%d,"quoted, with ""quotes"" %s"'):format(i, ("y"):rep(i % 89))
      elseif k == 2 then
        text = ('%d,"two\nlines\r\nand CRLF %s"'):format(i, ("z"):rep(i % 83))
      elseif k == 3 then
        text = ("%d,é ü %s"):format(i, ("ß"):rep(i % 41))
      elseif k == 4 then
        text = ('%d,""'):format(i)
      else
        text = ("%d,"):format(i)
      end
      local nl = ({ "\n", "\r\n", "\r" })[i % 3 + 1]
      if i == 6000 then nl = "" end -- the last one without a line end
      add(text, nl)
      if i % 50 == 0 and nl ~= "\r" then
        parts[#parts + 1] = "\n" -- a blank line
        at, line = at + 1, line + 1
      end
    end
    return table.concat(parts), recs
  end

  local function check(path, data, recs)
    assert.truthy(#data > 2 * BLOCK)
    local r = csv.open(path, { header = false })
    assert.is_nil(r:record())
    assert.are.equal(path, r.path)
    local i, bad = 0, nil
    while r:next() do
      i = i + 1
      local want = recs[i]
      local text = r:record()
      if not bad and (text ~= want[1] or r.record_offset ~= want[2] or r.line ~= want[3]
                      or data:sub(r.record_offset + 1, r.record_offset + #text) ~= text
                      or r:record() ~= text) then
        bad = { i, text, r.record_offset, r.line, want }
      end
    end
    assert.is_nil(bad)
    assert.are.equal(#recs, i)
    assert.is_nil(r:record()) -- the reader ended: its buffers are gone
    assert.are.equal(path, r.path)
  end

  it("gives every record's text as it is in the file, plain and gzip, across blocks", function()
    local data, recs = make()
    local plain = tmp .. "/records.csv"
    write(plain, data)
    check(plain, data, recs)
    sh("gzip -c " .. H.q(plain) .. " > " .. H.q(tmp .. "/records.csv.gz"))
    check(tmp .. "/records.csv.gz", data, recs)
  end)

  it("is the header's text right after open, and nil before any record", function()
    local path = tmp .. "/hdr.csv"
    write(path, 'id,"na,me"\r\n1,x\n')
    local r = csv.open(path)
    assert.are.equal('id,"na,me"', r:record())
    assert.are.equal(0, r.record_offset)
    assert.are.same({ id = "1", ["na,me"] = "x" }, (r:next()))
    assert.are.equal("1,x", r:record())
    assert.are.equal(12, r.record_offset)
    assert.are.equal(16, r.offset)
    r:close()
    assert.has_error(function() r:record() end, "the CSV reader is closed")
  end)

  it("leads from a rows() iterator back to its reader", function()
    local path = tmp .. "/it.csv"
    write(path, 'a,b\n1,"x\ny"\n2,z\n')
    local it = csv.rows(path)
    local r = csv.reader_of(it)
    assert.are.equal("sluice.csv", getmetatable(r).__name)
    local got = {}
    for row, n in it do
      got[#got + 1] = { n, row.a, r:record(), r.line, r.path }
    end
    assert.are.same({ { 1, "1", '1,"x\ny"', 2, path }, { 2, "2", "2,z", 4, path } }, got)
    assert.is_nil(csv.reader_of(function() end))
    assert.is_nil(csv.reader_of(nil))
    -- the iterator needs no state: called alone
    local it2 = csv.rows(path, { header = false })
    assert.are.same({ "a", "b" }, (it2()))
    assert.are.equal("a,b", csv.reader_of(it2):record())
  end)

  it("keeps path as given, also for standard input", function()
    local code, out, err = H.sluice("-e " .. H.q([[
      local csv = require("sluice").csv
      local it = csv.rows("-", { header = false })
      local row = it()
      local r = csv.reader_of(it)
      io.write(r.path, "|", r:record(), "|", row[2])]]) .. " < " .. H.q(F("basic.csv")))
    assert.are.equal(0, code, err)
    assert.are.equal("-|id,name,city|name", out)
  end)
end)

describe("positions of a CSV reader (position, seek, identity)", function()
  -- a file with a BOM, CRLF, a lone CR, quoted line ends and blank lines,
  -- longer than one read block (so seeks land in other blocks)
  local N = 30000
  -- every record of r from where it is: { n, line, row } each, and the
  -- position before each
  local function rest(r)
    local got, pos = {}, {}
    while true do
      local p = r:position()
      local row, n = r:next()
      if not row then break end
      got[#got + 1] = { n, r.line, row.id, row.text }
      pos[#pos + 1] = p
    end
    return got, pos
  end

  local path, want
  setup(function()
    path = tmp .. "/pos.csv"
    local parts = { "\239\187\191id,text\r\n" }
    for i = 1, N do
      local v = i % 5 == 0 and ('"q\nline %d, ""x""\r\nend"'):format(i)
                or i % 7 == 0 and ("plain %d\r"):format(i)
                or ("v%d"):format(i)
      parts[#parts + 1] = i .. "," .. v .. (i % 3 == 0 and "\r\n" or "\n")
      if i % 11 == 0 then parts[#parts + 1] = "\n" end
    end
    write(path, table.concat(parts))
    assert.is_true(#table.concat(parts) > 2 * BLOCK)
    want = rest(csv.open(path))
  end)

  it("go back to any record, in a fresh reader too: the same rows, record numbers and lines", function()
    local all, pos = rest(csv.open(path))
    assert.are.equal(N, #all)
    assert.are.same({ 1, 2, "1", "v1" }, all[1])
    -- the uninterrupted read's own line numbers
    assert.are.same({ 5, 6, "5", 'q\nline 5, "x"\r\nend' }, all[5])
    local same = csv.open(path)
    for _, k in ipairs({ 1, 2, 5, 6, 7, 1234, 15000, N - 1, N }) do
      local fresh = csv.open(path)
      fresh:seek(pos[k])
      local got = rest(fresh)
      assert.are.equal(N + 1 - k, #got)
      assert.are.same(all[k], got[1])
      assert.are.same(all[N], got[#got])
      -- a reader that read on (or to its end) goes back as well
      same:seek(pos[k])
      local row, n = same:next()
      assert.are.same(all[k], { n, same.line, row.id, row.text })
    end
    -- the position at the end: nothing follows
    local r = csv.open(path)
    local _, p = rest(r)
    local at_end = r:position()
    assert.are_not.equal(p[#p], at_end)
    local fresh = csv.open(path)
    fresh:seek(at_end)
    assert.is_nil(fresh:next())
  end)

  it("are plain text that another process can seek to", function()
    local r = csv.open(path)
    for _ = 1, 2500 do r:next() end
    local p = r:position()
    assert.truthy(p:match("^%d+:%d+:2500:2$"), p)
    local code, out, err = H.sluice("-e " .. H.q(([[
      local r = require("sluice").csv.open(%q)
      r:seek(%q)
      local row, n = r:next()
      io.write(n, "|", r.line, "|", row.id)]]):format(path, p)))
    assert.are.equal(0, code, err)
    local row, n = r:next()
    assert.are.equal(n .. "|" .. r.line .. "|" .. row.id, out)
    assert.are.equal("2501", row.id)
  end)

  it("work through the reader of a rows() iterator, which goes on from there", function()
    local it = csv.rows(path)
    for _ = 1, 10 do it() end
    local r = csv.reader_of(it)
    local p = r:position()
    for _ = 1, 100 do it() end
    r:seek(p)
    local row, n = it()
    assert.are.same(want[11], { n, r.line, row.id, row.text })
  end)

  it("refuse a malformed position, one of another file, past the end or before the first record", function()
    local r = csv.open(path)
    for _, bad in ipairs({ "", "12", "1:2:3", "a:1:0:2", "-1:1:0:2", "1:0:0:2", "12:2:0:2 " }) do
      assert.are.equal(('seek: invalid position "%s" (expected what position() returns: '
                        .. "offset:line:record:width)"):format(bad),
                       tostring(H.error_of(r.seek, r, bad)):match("seek: .*"))
    end
    assert.are.equal("seek: position 0:1:0:0 is before the first record (the header ends at byte 12)",
                     tostring(H.error_of(r.seek, r, "0:1:0:0")):match("seek: .*"))
    local size = #slurp(path)
    assert.are.equal(("%s: position %d is past the end of the input (%d bytes)")
                     :format(path, size + 1, size),
                     H.error_of(r.seek, r, (size + 1) .. ":9:9:2"))
    -- byte 15 is inside the first record ("1,v1\n" starts at 12)
    assert.are.equal(path .. ": position 15 is not where a record starts (a position of "
                     .. "another file, or of this one before it changed?)",
                     H.error_of(r.seek, r, "15:2:0:2"))
    -- the reader failed; a good position brings it back
    r:seek("12:2:0:2")
    local row, n = r:next()
    assert.are.same({ 1, 2, "1" }, { n, r.line, row.id })
    r:close()
    assert.are.equal("the CSV reader is closed",
                     tostring(H.error_of(r.seek, r, "12:2:0:2")):match("the CSV.*"))
  end)

  it("carry the field count of strict reading into a fresh reader", function()
    local p2 = tmp .. "/width.csv"
    write(p2, "1,a\n2,b\n3\n")
    local r = csv.open(p2, { header = false })
    r:next()
    local p = r:position()
    assert.are.equal("4:2:1:2", p)
    local fresh = csv.open(p2, { header = false })
    fresh:seek(p)
    assert.are.same({ "2", "b" }, (fresh:next()))
    assert.are.equal(p2 .. ":3: row has 1 field, expected 2", H.error_of(fresh.next, fresh))
  end)

  it("point at a record whose typed field did not convert (read again on resume)", function()
    local p2 = tmp .. "/typed.csv"
    write(p2, "id,n\n1,5\n2,x\n3,7\n")
    local r = csv.open(p2, { types = { n = "integer" } })
    r:next()
    assert.are.equal(p2 .. ':3: column "n": "x" is not an integer', H.error_of(r.next, r))
    local p = r:position()
    assert.are.equal("9:3:1:2", p)
    local fresh = csv.open(p2)
    fresh:seek(p)
    local row, n = fresh:next()
    assert.are.same({ 2, "2", "x" }, { n, row.id, row.n })
  end)

  it("seek after the reader ended (it opens the file again)", function()
    local r = csv.open(path)
    r:next()
    local p = r:position()
    while r:next() do end
    r:seek(p)
    local row, n = r:next()
    assert.are.same(want[2], { n, r.line, row.id, row.text })
  end)

  it("cannot seek in standard input, nor identify it", function()
    local code, out, err = H.sluice("-e " .. H.q([[
      local r = require("sluice").csv.open("-")
      r:next()
      print(select(2, pcall(r.seek, r, r:position())))
      print(select(2, pcall(r.identity, r)))
      print(r:next().id)]]) .. " < " .. H.q(F("basic.csv")))
    assert.are.equal(0, code, err)
    assert.are.equal("stdin: cannot seek in standard input (a position can only be gone back "
                     .. "to in a file)\nstdin: standard input has no identity (a position can "
                     .. "only be gone back to in a file)\n2\n", out)
  end)

  it("identity: path, size, mtime, checksum and the options that place records", function()
    local p2 = tmp .. "/id.csv"
    write(p2, "id\n1\n2\n")
    local r = csv.open(p2)
    local id = r:identity()
    assert.truthy(id:match("^csv " .. p2:gsub("%p", "%%%0")
                           .. " size=7 mtime=%d+%.%d+ crc32=%x+ delimiter=0x2c quote=0x22 "
                           .. "header=true skip=0$"), id)
    assert.are.equal(id, csv.open(p2):identity())
    while r:next() do end
    assert.are.equal(id, r:identity()) -- after the end too
    assert.are_not.equal(id, csv.open(p2, { delimiter = ";" }):identity())
    assert.are_not.equal(id, csv.open(p2, { header = false }):identity())
    -- the same size and time, other bytes: the checksum differs
    local mtime = id:match("mtime=(%d+)")
    write(p2, "id\n1\n3\n")
    sh("touch -d @" .. mtime .. " " .. H.q(p2))
    local id2 = csv.open(p2):identity()
    assert.are_not.equal(id, id2)
    assert.are.equal(id:gsub("crc32=%x+", ""):gsub("mtime=%S+", ""),
                     id2:gsub("crc32=%x+", ""):gsub("mtime=%S+", ""))
  end)
end)
