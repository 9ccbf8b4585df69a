-- sluice.csv: unquoted and quoted lines mixed (checked against what was
-- written), and typed columns (opts.types).
local H = require "helper"
local sluice = require "sluice"
local csv = sluice.csv
local ffi = require "ffi"

local NULL = sluice.null
local BLOCK = 128 * 1024 -- CSVREAD_BLOCK

local tmp
setup(function() tmp = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. tmp) end)

local read_all, read_err = H.csv_read_all, H.csv_read_err

describe("sluice.csv unquoted and quoted lines together", function()
  -- A small deterministic PRNG (the spec must not depend on math.random's
  -- implementation).
  local function prng(seed)
    local s = seed
    return function(n)
      s = (s * 1103515245 + 12345) % 2147483648
      return s % n
    end
  end

  -- Random records of random fields (plain words, empty, spaces, the
  -- delimiter, quotes, LF, CRLF, a lone CR, multibyte text), each written
  -- quoted when it must be and sometimes when it need not; lines end in
  -- LF or CRLF.  Reading them back must give exactly the fields written,
  -- with record numbers and physical lines right.
  local PIECES = { "a", "bc", "12.5", "x y", " pad ", "", ",", "\"", "\n", "\r\n", "\r",
                   "zoë", "日本", "\\N", "\t" }
  local function field(rand)
    if rand(5) == 0 then return "" end
    local parts = {}
    for i = 1, rand(4) + 1 do
      local p = PIECES[rand(#PIECES) + 1]
      -- mostly fields that need no quotes, so both paths get long runs
      if rand(4) ~= 0 then p = PIECES[rand(5) + 1] end
      parts[i] = p
    end
    return table.concat(parts)
  end

  local function write_records(path, n, ncols, seed)
    local rand = prng(seed)
    local out, recs, lines = {}, {}, {}
    local line = 1
    for i = 1, n do
      local rec, cells = {}, {}
      for c = 1, ncols do
        local v = field(rand)
        rec[c] = v
        local must = v:find("[,\"\r\n]") ~= nil
        if must or (v ~= "" and rand(6) == 0) then
          cells[c] = '"' .. v:gsub('"', '""') .. '"'
        else
          cells[c] = v
        end
      end
      recs[i], lines[i] = rec, line
      local text = table.concat(cells, ",") .. (rand(3) == 0 and "\r\n" or "\n")
      -- a record whose only field is empty would be a blank line: skipped
      if text == "\n" or text == "\r\n" then
        text = '""' .. text
        rec[1] = ""
      end
      out[#out + 1] = text
      local _, lf = text:gsub("\n", "")
      line = line + lf
      -- now and then a blank line, which is a line but no record
      if rand(10) == 0 then
        out[#out + 1] = "\n"
        line = line + 1
      end
    end
    H.write(path, table.concat(out))
    return recs, lines
  end

  it("reads random records exactly as written, with their lines, across block boundaries", function()
    for _, case in ipairs({ { n = 20000, cols = 4, seed = 7 }, { n = 12000, cols = 9, seed = 42 },
                            { n = 2000, cols = 1, seed = 99 } }) do
      local path = tmp .. "/random.csv"
      local recs, lines = write_records(path, case.n, case.cols, case.seed)
      local size = #H.slurp(path)
      assert.is_true(case.cols == 1 or size > 2 * BLOCK, "the file spans blocks")
      local rows, got_lines = read_all(path, { header = false, strict = false })
      assert.are.equal(case.n, #rows)
      for i = 1, case.n do
        assert.are.same(recs[i], rows[i], "record " .. i)
        assert.are.equal(lines[i], got_lines[i], "line of record " .. i)
      end
    end
  end)

  it("makes unquoted empty fields NULL on both paths, never a quoted empty one", function()
    local path = tmp .. "/nulls.csv"
    H.write(path, 'a,,c\n"",b,\n,"x,y",\n\\N,"\\N",z\n')
    local rows = read_all(path, { header = false, null = "" })
    assert.are.same({ { "a", NULL, "c" }, { "", "b", NULL }, { NULL, "x,y", NULL },
                      { "\\N", "\\N", "z" } }, rows)
    rows = read_all(path, { header = false, null = "\\N" })
    assert.are.same({ { "a", "", "c" }, { "", "b", "" }, { "", "x,y", "" },
                      { NULL, NULL, "z" } }, rows)
  end)

  it("checks field counts and UTF-8 on unquoted lines too, naming the line", function()
    local path = tmp .. "/ragged.csv"
    H.write(path, 'a,b\n1,2\n"3",4\n5,6,7\n')
    local err, rows = read_err(path)
    assert.are.equal(path .. ":4: row has 3 fields, expected 2", err)
    assert.are.same({ { a = "1", b = "2" }, { a = "3", b = "4" } }, rows)
    H.write(path, 'a,b\n1,2\n3,\xE9t\xE9\n')
    err = read_err(path)
    assert.are.equal(path .. ":3: invalid UTF-8 (byte 0xE9); use encoding = false to read it anyway",
                     err)
    assert.are.same({ { a = "1", b = "2" }, { a = "3", b = "\xE9t\xE9" } },
                    (read_all(path, { encoding = false })))
  end)

  it("treats a lone CR inside an unquoted line as a record end", function()
    local path = tmp .. "/cr.csv"
    H.write(path, "a,b\r1,2\n3,4\n")
    local rows, lines = read_all(path, { header = false })
    assert.are.same({ { "a", "b" }, { "1", "2" }, { "3", "4" } }, rows)
    assert.are.same({ 1, 2, 3 }, lines) -- and as a line end in the line numbers
  end)
end)

describe("sluice.csv typed columns (opts.types)", function()
  local path
  before_each(function()
    path = tmp .. "/typed.csv"
    H.write(path, "id,amount,qty,name\n"
                  .. "1,12.5,3,a\n"
                  .. "2,-1e3,-4,b\n"
                  .. "9007199254740993,.5,0,c\n"
                  .. "4,,+7,d\n")
  end)

  it("converts named columns to numbers and integers, leaving the rest as strings", function()
    local rows = read_all(path, { null = "", types = { id = "integer", amount = "number",
                                                        qty = "integer", name = "string" } })
    assert.are.same({ id = 1, amount = 12.5, qty = 3, name = "a" }, rows[1])
    assert.are.same({ id = 2, amount = -1000, qty = -4, name = "b" }, rows[2])
    assert.are.equal("number", type(rows[1].id))
    -- beyond 2^53 an integer is an exact int64 cdata
    assert.is_true(ffi.istype("int64_t", rows[3].id))
    assert.are.equal("9007199254740993", tostring(rows[3].id):gsub("LL$", ""))
    assert.are.equal(0.5, rows[3].amount)
    -- a NULL stays sluice.null whatever the type
    assert.are.equal(NULL, rows[4].amount)
    assert.are.equal(7, rows[4].qty)
  end)

  it("names columns by position when rows are arrays", function()
    local rows = read_all(path, { header = false, skip = 1, null = "",
                                  types = { [1] = "integer", [2] = "number" } })
    assert.are.same({ 1, 12.5, "3", "a" }, rows[1])
    assert.are.same({ 4, NULL, "+7", "d" }, rows[4])
  end)

  it("reads the same doubles as tonumber, digit for digit", function()
    local texts = { "0", "-0", "1", "0.1", "0.3", "123456.789", "1e22", "1e23", "9007199254740993",
                    "2.2250738585072014e-308", "4.9e-324", "1.7976931348623157e308",
                    "0.000000000000000000000000000001", "3.141592653589793238462643383279",
                    "12345678901234567890123", "5.", ".25", "1E-5", "+2.5e+3",
                    "0.1000000000000000055511151231257827" }
    local rand = 12345
    for _ = 1, 2000 do
      rand = (rand * 1103515245 + 12345) % 2147483648
      local a = rand % 1000000
      rand = (rand * 1103515245 + 12345) % 2147483648
      texts[#texts + 1] = ("%d.%0" .. (rand % 9 + 1) .. "d"):format(a, rand % 1000)
      texts[#texts + 1] = ("%.17g"):format(a / (rand % 997 + 1))
    end
    H.write(path, "x\n" .. table.concat(texts, "\n") .. "\n")
    local rows = read_all(path, { types = { x = "number" } })
    assert.are.equal(#texts, #rows)
    for i, t in ipairs(texts) do
      local want = tonumber(t)
      assert(rows[i].x == want and 1 / rows[i].x == 1 / want,
             ("%s: got %.17g, tonumber gives %.17g"):format(t, rows[i].x, want))
    end
    H.write(path, "x\ninf\n-Infinity\nNaN\n")
    rows = read_all(path, { types = { x = "number" } })
    assert.are.equal(math.huge, rows[1].x)
    assert.are.equal(-math.huge, rows[2].x)
    assert.is_true(rows[3].x ~= rows[3].x)
  end)

  it("raises for a field that is not a number, naming the line, the column and the value", function()
    H.write(path, "id,amount\n1,2.5\n2,\"12,5\"\n3,4\n")
    local err, rows = read_err(path, { types = { amount = "number" } })
    assert.are.equal(path .. ':3: column "amount": "12,5" is not a number', err)
    assert.are.same({ { id = "1", amount = 2.5 } }, rows)
    for _, bad in ipairs({ "", " 1", "1 ", "0x10", "1e", "e5", ".", "-", "1.2.3", "1,5" }) do
      H.write(path, "n\n\"" .. bad .. "\"\n")
      err = read_err(path, { header = false, skip = 1, types = { "number" } })
      assert.are.equal(path .. ':2: column 1: "' .. bad .. '" is not a number', err)
    end
    H.write(path, "n\n1.5\n")
    assert.are.equal(path .. ':2: column "n": "1.5" is not an integer',
                     (read_err(path, { types = { n = "integer" } })))
    H.write(path, "n\n9223372036854775807\n-9223372036854775808\n9223372036854775808\n")
    err, rows = read_err(path, { types = { n = "integer" } })
    assert.are.equal(path .. ':4: column "n": "9223372036854775808" is out of range for a 64-bit integer',
                     err)
    assert.are.equal("9223372036854775807", tostring(rows[1].n):gsub("LL$", ""))
    assert.are.equal("-9223372036854775808", tostring(rows[2].n):gsub("LL$", ""))
    -- a long value is cut short in the message
    H.write(path, "n\n" .. ("9"):rep(50) .. "x" .. ("9"):rep(50) .. "\n")
    err = read_err(path, { types = { n = "integer" } })
    assert.are.equal(path .. ':2: column "n": "' .. ("9"):rep(50) .. "x" .. ("9"):rep(9)
                     .. '..." is not an integer', err)
  end)

  it("repeats a conversion error on later calls, as for other data errors", function()
    H.write(path, "a,b\n1,x\n2,3\n")
    local r = csv.open(path, { types = { b = "number" } })
    local want = path .. ':2: column "b": "x" is not a number'
    for _ = 1, 3 do
      local ok, err = pcall(r.next, r)
      assert.is_false(ok)
      assert.are.equal(want, err)
    end
  end)

  it("reads no rows from an empty file whatever the types name", function()
    H.write(path, "")
    local n = 0
    for _ in csv.rows(path, { types = { amount = "number" } }) do n = n + 1 end
    assert.are.equal(0, n)
  end)

  it("refuses bad types options at the caller's line", function()
    local function err_of(opts)
      local ok, e = pcall(csv.open, path, opts)
      assert.is_false(ok)
      return e
    end
    assert.are.equal('sluice.csv.open: option types: "float" is not a type (use "number", '
                     .. '"integer" or "string")', err_of({ types = { id = "float" } }))
    assert.are.equal('sluice.csv.open: option types: the header has no column "nope"',
                     err_of({ types = { nope = "number" } }))
    assert.are.equal('sluice.csv.open: option types: column "id" is named, but header = false '
                     .. '(name columns by position)',
                     err_of({ header = false, types = { id = "number" } }))
    assert.are.equal("sluice.csv.open: option types: 0 is not a column position",
                     err_of({ header = false, types = { [0] = "number" } }))
    assert.are.equal("sluice.csv.open: option types must be a table (column -> type), got a string",
                     err_of({ types = "number" }))
  end)

  it("loads typed rows into COPY unchanged", function()
    local db = H.connect()
    db:exec("create temp table typed (id bigint, amount float8, qty int, name text)")
    local cp = db:copy("typed", { "id", "amount", "qty", "name" })
    for r in csv.rows(path, { null = "", types = { id = "integer", amount = "number", qty = "integer" } }) do
      cp:row(r.id, r.amount, r.qty, r.name)
    end
    assert.are.equal(4, cp:finish())
    local got = db:query("select id::text, amount, qty, name from typed order by id")
    assert.are.same({ "1", "2", "4", "9007199254740993" },
                    { got[1].id, got[2].id, got[3].id, got[4].id })
    assert.are.same({ 12.5, -1000, NULL, 0.5 }, { got[1].amount, got[2].amount, got[3].amount,
                                                 got[4].amount })
    db:close()
  end)
end)
