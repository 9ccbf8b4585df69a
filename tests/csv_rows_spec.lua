-- sluice.csv.rows() builds its rows in Lua through the FFI (csv.lua),
-- reader:next() through the C API (lib_csv.c): both are checked here
-- against a reference parser written below, byte by byte, from the
-- dialect csv.lua documents, on the fixtures and on random files (every
-- kind of field, line end, blank lines, a BOM, a last line with or
-- without its line end, files over the reader's 128 KiB blocks): the
-- same fields, NULLs, record numbers, lines, offsets, record texts and
-- errors; positions taken from a rows() loop resume in a fresh one.
local H = require "helper"
local sluice = require "sluice"
local csv = sluice.csv

local NULL = sluice.null
local BLOCK = 128 * 1024 -- CSVREAD_BLOCK

local tmp
setup(function() tmp = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. tmp) end)

local function F(name) return H.root .. "/tests/fixtures/csv/" .. name end

------------------------------------------------------------ the reference

-- Records of the CSV text s read with opts (delimiter, quote, null,
-- strict, stray_quotes, skip; header is the caller's business): a list of
-- { fields = { string | NULL }, line =, at = (0-based offset where the
-- record begins), next = (offset where the next one begins), text = },
-- and the error "line: what" that ends the read, or nil.  No UTF-8 check.
local function reference(s, opts)
  local delim, quote = opts.delimiter or ",", opts.quote or '"'
  local null, strict = opts.null, opts.strict ~= false
  local stray = opts.stray_quotes ~= false
  local recs, expect = {}, nil
  local i, n, line = 1, #s, 1
  if s:sub(1, 3) == "\239\187\191" then i = 4 end
  for _ = 1, opts.skip or 0 do
    local nl = s:find("\n", i, true)
    if not nl then i = n + 1; break end
    i, line = nl + 1, line + 1
  end
  local state = "row" -- row, start, unquoted, quoted, seen
  local fields, buf, quoted, rec = {}, {}, false, nil
  local function end_field()
    local v = table.concat(buf)
    if null and ((null == "" and v == "" and not quoted) or (null ~= "" and v == null)) then
      v = NULL
    end
    fields[#fields + 1] = v
    buf, quoted = {}, false
  end
  local function end_record(text_end, nxt)
    rec.fields, rec.text, rec.next = fields, s:sub(rec.at + 1, text_end), nxt
    if expect == nil then
      expect = #fields
    elseif strict and #fields ~= expect then
      return ("%d: row has %d field%s, expected %d"):format(rec.line, #fields,
        #fields == 1 and "" or "s", expect)
    end
    recs[#recs + 1] = rec
    fields, state = {}, "row"
  end
  while i <= n do
    local c = s:sub(i, i)
    local eol = c == "\r" or c == "\n"
    if state == "row" then
      if not eol then
        rec = { line = line, at = i - 1 }
        state = "start"
      elseif c == "\n" then
        line = line + 1
      end
    end
    if state == "start" or state == "unquoted" or state == "seen" then
      if eol then
        end_field()
        local nxt = i
        line = line + 1
        if c == "\r" and s:sub(i + 1, i + 1) == "\n" then nxt = i + 1 end
        local err = end_record(i - 1, nxt)
        if err then return recs, err end
        i = nxt
      elseif c == delim then
        end_field()
        state = "start"
      elseif state == "seen" then
        if c ~= quote then return recs, line .. ": malformed quoting (text after a closing quote)" end
        buf[#buf + 1] = c
        state = "quoted"
      elseif state == "start" and c == quote then
        quoted, state = true, "quoted"
      elseif c == quote and not stray then
        return recs, line .. ": malformed quoting (a quote inside an unquoted field)"
      else
        buf[#buf + 1] = c
        state = "unquoted"
      end
    elseif state == "quoted" then
      if c == quote then
        state = "seen"
      else
        buf[#buf + 1] = c
        if c == "\n" then line = line + 1 end
      end
    end
    i = i + 1
  end
  if state == "quoted" then
    return recs, rec.line .. ": malformed quoting (quoted field not closed at the end of the file)"
  elseif state ~= "row" then
    end_field()
    local err = end_record(n, n)
    if err then return recs, err end
  end
  return recs, nil
end

------------------------------------------------------------ the readers

-- Everything a read hands out: per record { n, row, line, offset,
-- record_offset, record text }, and the error ("line: what", the
-- path cut off) or nil.  how: "rows" (the FFI iterator; its reader
-- through csv.reader_of) or "next" (reader:next()).
local function transcript(path, opts, how)
  local got = {}
  local ok, err = pcall(function()
    local it, r
    if how == "rows" then
      it = csv.rows(path, opts)
      r = csv.reader_of(it)
    else
      r = csv.open(path, opts)
      it = function() return r:next() end
    end
    while true do
      local row, n = it()
      if row == nil then break end
      got[#got + 1] = { n = n, row = row, line = r.line, offset = r.offset,
                        record_offset = r.record_offset, text = r:record() }
    end
  end)
  if ok then return got, nil end
  err = tostring(err)
  local k = err:find(path, 1, true)
  return got, k and err:sub(k + #path + 1) or err
end

-- What the reference says a read with opts hands out (keyed by the first
-- record's names when opts.header is not false).
local function expected(s, opts)
  local recs, err = reference(s, opts)
  local names
  local want = {}
  for _, rec in ipairs(recs) do
    if opts.header ~= false and not names then
      names = rec.fields
    else
      local row = rec.fields
      if names then
        row = {}
        for k, v in ipairs(rec.fields) do row[k <= #names and names[k] or k] = v end
      end
      want[#want + 1] = { n = #want + 1, row = row, line = rec.line, offset = rec.next,
                          record_offset = rec.at, text = rec.text }
    end
  end
  return want, err
end

local function check(path, s, opts, what)
  local want, want_err = expected(s, opts)
  for _, how in ipairs({ "rows", "next" }) do
    local got, err = transcript(path, opts, how)
    assert.are.same(want, got, ("%s, %s"):format(what, how))
    assert.are.equal(want_err, err, ("%s, %s"):format(what, how))
  end
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

----------------------------------------------------------------- the specs

describe("sluice.csv.rows and reader:next against a reference parser", function()
  local OPTS = {
    { header = false, strict = false },
    { header = false, strict = false, null = "" },
    { header = false, strict = false, null = "\\N" },
    { header = false, strict = false, stray_quotes = false },
    { header = false },
    { header = true, strict = false },
    { header = true, null = "" },
    { header = false, strict = false, delimiter = ";", quote = "'" },
    { header = false, strict = false, skip = 2 },
  }

  it("reads every fixture alike", function()
    local names = {}
    for name in io.popen("ls " .. H.q(H.root .. "/tests/fixtures/csv")):lines() do
      names[#names + 1] = name
    end
    assert.truthy(#names >= 15)
    for _, name in ipairs(names) do
      local s = slurp(F(name))
      for k, o in ipairs(OPTS) do
        local opts = {}
        for key, v in pairs(o) do opts[key] = v end
        opts.encoding = false -- the reference does not check UTF-8
        -- a header with a duplicate name is refused (csv_spec.lua)
        if not (name == "dup_header.csv" and opts.header ~= false) then
          check(F(name), s, opts, name .. " #" .. k)
        end
      end
    end
  end)

  -- A small deterministic PRNG (the spec must not depend on
  -- math.random's implementation).
  local function prng(seed)
    local s = seed
    return function(n)
      s = (s * 1103515245 + 12345) % 2147483648
      return s % n
    end
  end

  local PIECES = { "a", "b", "xyz", " ", ",", ";", '"', "'", "\r", "\n", "\r\n", "é", "0.5", "" }
  local ENDS = { "\n", "\n", "\n", "\r\n", "\r\n", "\r" }

  -- A random CSV text: fields unquoted (maybe with a stray quote, never
  -- a first one), quoted (delimiters, doubled quotes, CR, LF and CRLF
  -- inside), empty either way; records of 1 to 5 fields ended by LF, CRLF
  -- or CR; blank lines; maybe a BOM, a last line without its line end,
  -- a blank last line; with bad = true, maybe a quoting error.
  local function random_csv(rand, nrec, bad)
    local out = {}
    if rand(4) == 0 then out[1] = "\239\187\191" end
    for r = 1, nrec do
      local nf = 1 + rand(5)
      for f = 1, nf do
        if f > 1 then out[#out + 1] = "," end
        local kind = rand(6) -- 0: empty, unquoted (nothing written)
        if kind == 1 then
          out[#out + 1] = '""'
        elseif kind == 2 or kind == 3 then
          local t = {}
          for _ = 1, 1 + rand(4) do t[#t + 1] = PIECES[1 + rand(#PIECES)] end
          out[#out + 1] = '"' .. table.concat(t):gsub('"', '""') .. '"'
        elseif kind >= 4 then
          local t = {}
          for _ = 1, 1 + rand(4) do
            local p = PIECES[1 + rand(#PIECES)]
            if not p:find("[,\r\n]") then t[#t + 1] = p end
          end
          local v = table.concat(t)
          if v:sub(1, 1) == '"' then v = "x" .. v end
          out[#out + 1] = v
        end
      end
      if bad and r == nrec and rand(2) == 0 then
        out[#out + 1] = rand(2) == 0 and ',"q"z' or ',"open'
      end
      if r < nrec or rand(2) == 0 then out[#out + 1] = ENDS[1 + rand(#ENDS)] end
      if rand(8) == 0 then out[#out + 1] = ENDS[1 + rand(#ENDS)] end -- a blank line
    end
    return table.concat(out)
  end

  it("reads random files alike, with and without stray quotes, headers and NULLs", function()
    local rand = prng(7)
    local path = tmp .. "/random.csv"
    for round = 1, 150 do
      local s = random_csv(rand, 1 + rand(12), round % 5 == 0)
      H.write(path, s)
      check(path, s, { header = false, strict = false }, "round " .. round)
      check(path, s, { header = false, strict = false, null = "" }, "round " .. round .. " null")
      check(path, s, { header = false }, "round " .. round .. " strict")
      check(path, s, { header = false, strict = false, stray_quotes = false },
            "round " .. round .. " stray_quotes = false")
      -- keyed rows need distinct names: the header is a fixed line
      local hs = "h1,h2,h3\n" .. s:gsub("^\239\187\191", "")
      H.write(path, hs)
      check(path, hs, { strict = false }, "round " .. round .. " keyed")
    end
  end)

  it("reads files over several blocks alike (records across block ends)", function()
    local rand = prng(11)
    local path = tmp .. "/big.csv"
    for round = 1, 2 do
      local parts, size = {}, 0
      while size < 2 * BLOCK + 5000 do
        local p = random_csv(rand, 50) .. "\n"
        parts[#parts + 1] = p
        size = size + #p
      end
      local s = table.concat(parts)
      H.write(path, s)
      check(path, s, { header = false, strict = false, null = "" }, "big " .. round)
      local hs = "h1,h2,h3,h4,h5\n" .. s:gsub("^\239\187\191", "")
      H.write(path, hs)
      check(path, hs, { strict = false }, "big keyed " .. round)
    end
  end)

  it("resumes a rows() loop from its position in a fresh one", function()
    local rand = prng(3)
    local path = tmp .. "/pos.csv"
    local parts = { "id,v,w\n" }
    for i = 1, 3000 do
      parts[#parts + 1] = i .. "," .. (rand(3) == 0 and '"a,\r\nb ""q""",' or "plain,") .. (i % 7)
                          .. (ENDS[1 + rand(#ENDS)])
    end
    local s = table.concat(parts)
    H.write(path, s)
    local all = transcript(path, {}, "rows")
    assert.are.equal(3000, #all)
    for _, k in ipairs({ 0, 1, 17, 1500, 2999, 3000 }) do
      local it = csv.rows(path)
      for _ = 1, k do it() end
      local pos = csv.reader_of(it):position()
      local it2 = csv.rows(path)
      local r2 = csv.reader_of(it2)
      r2:seek(pos)
      local rest = {}
      while true do
        local row, n = it2()
        if not row then break end
        rest[#rest + 1] = { n = n, row = row, line = r2.line, offset = r2.offset,
                            record_offset = r2.record_offset, text = r2:record() }
      end
      local want = {}
      for j = k + 1, #all do want[#want + 1] = all[j] end
      assert.are.same(want, rest, "after " .. k)
    end
  end)
end)

describe("sluice.csv.rows", function()
  local function read_rows(path, opts)
    local got = {}
    for row, n in csv.rows(path, opts) do got[n] = row end
    return got
  end
  local function read_next(path, opts)
    local got, r = {}, csv.open(path, opts)
    while true do
      local row, n = r:next()
      if not row then break end
      got[n] = row
    end
    return got
  end

  it("gives ragged rows as reader:next() does (strict = false)", function()
    local path = tmp .. "/ragged.csv"
    H.write(path, "a,b,c\n1,2,3\n4\n5,6,7,8,9\n10,11,12\n")
    local want = { { a = "1", b = "2", c = "3" }, { a = "4" },
                   { a = "5", b = "6", c = "7", [4] = "8", [5] = "9" }, { a = "10", b = "11", c = "12" } }
    assert.are.same(want, read_rows(path, { strict = false }))
    assert.are.same(want, read_next(path, { strict = false }))
    local arrays = { { "a", "b", "c" }, { "1", "2", "3" }, { "4" }, { "5", "6", "7", "8", "9" },
                     { "10", "11", "12" } }
    assert.are.same(arrays, read_rows(path, { header = false, strict = false }))
  end)

  it("gives typed columns as reader:next() does: numbers, NULLs, int64 beyond 2^53, errors", function()
    local path = tmp .. "/typed.csv"
    H.write(path, "id,x,s\n1,2.5,a\n,,b\n9007199254740993,-0.25e1,c\n4,inf,\n")
    local opts = { null = "", types = { id = "integer", x = "number" } }
    local got = read_rows(path, opts)
    assert.are.same(read_next(path, opts), got)
    assert.are.same({ id = 1, x = 2.5, s = "a" }, got[1])
    assert.are.same({ id = NULL, x = NULL, s = "b" }, got[2])
    assert.is_true(require("ffi").istype("int64_t", got[3].id))
    assert.are.equal("9007199254740993LL", tostring(got[3].id))
    assert.are.equal(-2.5, got[3].x)
    assert.are.same({ id = 4, x = math.huge, s = NULL }, got[4])
    -- by position, rows as arrays
    H.write(path, "1,2.5,a\n,,b\n")
    local arr = read_rows(path, { header = false, null = "", types = { [2] = "number" } })
    assert.are.same(read_next(path, { header = false, null = "", types = { [2] = "number" } }), arr)
    assert.are.same({ { "1", 2.5, "a" }, { NULL, NULL, "b" } }, arr)
    -- a value that does not convert: the same error, after the same rows
    H.write(path, "id,x\n1,2\n3,x4\n5,6\n")
    local rows = {}
    local ok, err = pcall(function()
      for row, n in csv.rows(path, { types = { x = "number" } }) do rows[n] = row end
    end)
    assert.is_false(ok)
    assert.are.equal(path .. ':3: column "x": "x4" is not a number', err)
    assert.are.same({ { id = "1", x = 2 } }, rows)
  end)

  it("raises at the next row once its reader is closed", function()
    local it = csv.rows(F("basic.csv"))
    assert.are.same({ id = "1", name = "Ada", city = "London" }, (it()))
    csv.reader_of(it):close()
    assert.has_error(function() it() end, "the CSV reader is closed")
  end)

  it("keeps returning nil after the end", function()
    local it = csv.rows(F("basic.csv"), { header = false })
    local n = 0
    while it() do n = n + 1 end
    assert.are.equal(4, n)
    assert.is_nil(it())
    assert.is_nil(it())
  end)

  it("stops a loop over a big file on Ctrl-C within the pass", function()
    local path, script, ready = tmp .. "/big_int.csv", tmp .. "/int.lua", tmp .. "/ready"
    local per_pass = 1000000
    H.write(path, ("1,2\n"):rep(per_pass))
    H.write(script, ([[
      local csv = require("sluice").csv
      local n = 0
      local ok, err = pcall(function()
        for _ = 1, 100 do
          for _ in csv.rows(%q, { header = false }) do
            n = n + 1
            if n == 1000 then io.open(%q, "w"):close() end
          end
        end
      end)
      print(ok, err, n %% %d ~= 0)]]):format(path, ready, per_pass))
    local cmd = ("timeout -s KILL 30 %s %s >%s/out 2>&1 & pid=$!; "
      .. "for i in $(seq 100); do [ -e %s ] && break; sleep 0.05; done; "
      .. "sleep 0.3; kill -INT $pid; wait $pid 2>/dev/null; echo $? > %s/code")
      :format(H.q(H.exe), H.q(script), tmp, ready, tmp)
    os.execute(cmd)
    assert.are.equal("0\n", slurp(tmp .. "/code"))
    -- caught mid-pass, not at the next rows() call
    local out = slurp(tmp .. "/out")
    assert.truthy(out:find("^false\t[^\n]*interrupted %(Ctrl%-C%)\ttrue\n$"), out)
  end)
end)
