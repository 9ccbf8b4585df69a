-- gzip input of sluice.csv and db:copy_from_file: every member of a
-- multi-member file is read; anything after the last member that is not
-- gzip (trailing garbage), and a member cut short or damaged, is an error
-- naming the file, never a quiet end.  Also: a plain file that shrinks
-- while it is read.
local H = require "helper"
local sluice = require "sluice"
local csv = sluice.csv

local write, slurp = H.write, H.slurp
local read_err = H.csv_read_err

local function sh(cmd)
  local code, out, err = H.run("(" .. cmd .. ")")
  assert.are.equal(0, code, err)
  return out
end

local tmp
-- a.csv.gz: header + ids 1..1000; b.gz: ids 1001..2000, no header (a
-- second member); both written by gzip(1)
local A, B
setup(function()
  tmp = H.tmpdir()
  local a, b = { "id,name\n" }, {}
  for i = 1, 1000 do a[#a + 1] = ("%d,name %d\n"):format(i, i) end
  for i = 1001, 2000 do b[#b + 1] = ("%d,name %d\n"):format(i, i) end
  write(tmp .. "/a.csv", table.concat(a))
  write(tmp .. "/b.csv", table.concat(b))
  sh("gzip -c " .. H.q(tmp .. "/a.csv") .. " > " .. H.q(tmp .. "/a.gz"))
  sh("gzip -c " .. H.q(tmp .. "/b.csv") .. " > " .. H.q(tmp .. "/b.gz"))
  A, B = slurp(tmp .. "/a.gz"), slurp(tmp .. "/b.gz")
  -- half.csv.gz: a 20,000-row single member cut in the middle
  local parts = { "id,name\n" }
  for i = 1, 20000 do parts[#parts + 1] = ("%d,name %d\n"):format(i, i) end
  write(tmp .. "/one.csv", table.concat(parts))
  sh("gzip -c " .. H.q(tmp .. "/one.csv") .. " > " .. H.q(tmp .. "/one.csv.gz"))
  local gz = slurp(tmp .. "/one.csv.gz")
  write(tmp .. "/half.csv.gz", gz:sub(1, math.floor(#gz / 2)))
end)
teardown(function() os.execute("rm -rf " .. tmp) end)

-- the files of the cases below: name -> bytes
local function cases()
  local crc_bad = B:sub(1, -9) .. "\0\0\0\0" .. B:sub(-4) -- wrong CRC in b's trailer
  return {
    multi = A .. B,
    padded = A .. ("\0"):rep(512) .. B .. ("\0"):rep(100), -- zero padding, as gzip(1) allows
    trailing = A .. slurp(tmp .. "/b.csv"),                -- plain text after the member
    one_byte = A .. "\31",                                  -- half a gzip magic
    bad_magic = A .. "\31\140" .. B:sub(3),                 -- b with its magic damaged
    zeros_then_text = A .. "\0\0\0" .. "1001,x\n",
    cut_second = A .. B:sub(1, math.floor(#B / 2)),
    crc_second = A .. crc_bad,
  }
end

local function file(name)
  local path = tmp .. "/" .. name .. ".csv.gz"
  write(path, cases()[name])
  return path
end

local function check_rows(rows, n)
  for i = 1, n do
    if rows[i].id ~= tostring(i) or rows[i].name ~= "name " .. i then
      assert.are.same({ id = tostring(i), name = "name " .. i }, rows[i])
    end
  end
end

describe("gzip input of sluice.csv", function()
  it("reads every member of a multi-member file, also with zero padding between and after", function()
    for _, name in ipairs { "multi", "padded" } do
      local path = file(name)
      local rows, sum = {}, 0
      for row, n in csv.rows(path) do
        rows[n] = row
        sum = sum + tonumber(row.id)
      end
      assert.are.equal(2000, #rows, name)
      assert.are.equal(2001000, sum, name)
      check_rows(rows, 2000)
    end
  end)

  it("raises for bytes after the last member that are not gzip, after the rows before them", function()
    for _, name in ipairs { "trailing", "one_byte", "bad_magic" } do
      local path = file(name)
      local err, rows = read_err(path)
      assert.are.equal(1000, #rows, name)
      check_rows(rows, 1000)
      assert.are.equal(path .. ":1002: gzip stream is followed by bytes that are not gzip (trailing garbage at byte "
                       .. #A .. ")", err)
    end
    -- zero padding followed by something else: the offset is the first non-zero byte
    local path = file("zeros_then_text")
    assert.are.equal(path .. ":1002: gzip stream is followed by bytes that are not gzip (trailing garbage at byte "
                     .. #A + 3 .. ")", (read_err(path)))
  end)

  it("raises for a second member cut short or damaged", function()
    local path = file("cut_second")
    local err, rows = read_err(path)
    local n = #rows
    assert.truthy(n >= 1000 and n < 2000, n)
    check_rows(rows, n)
    assert.are.equal(("%s:%d: gzip stream is truncated or corrupt: unexpected end of file"):format(path, n + 2), err)

    path = file("crc_second")
    err, rows = read_err(path)
    n = #rows
    assert.truthy(n >= 1000 and n <= 2000, n)
    check_rows(rows, n)
    assert.are.equal(("%s:%d: gzip stream is truncated or corrupt: incorrect data check"):format(path, n + 2), err)
  end)

  it("gives record() text and record_offset across members, a record split between two", function()
    -- member 1 ends inside a quoted record, and inside a CRLF
    local one = 'id,name\r\n1,"split\nacross'
    local two = ' members"\r\n2,"b""c"\r'
    local three = '\n3,last'
    local parts = {}
    for i, text in ipairs { one, two, three } do
      write(tmp .. "/m" .. i, text)
      parts[i] = sh("gzip -c " .. H.q(tmp .. "/m" .. i) .. " && echo")
      parts[i] = parts[i]:sub(1, -2) -- echo's newline (a member may end in one)
    end
    local path = tmp .. "/members.csv.gz"
    write(path, table.concat(parts))
    local data = one .. two .. three
    local r = csv.open(path)
    local got = { { r:record(), r.record_offset, r.line } }
    while r:next() do got[#got + 1] = { r:record(), r.record_offset, r.line } end
    assert.are.same({
      { "id,name", 0, 1 },
      { '1,"split\nacross members"', 9, 2 },
      { '2,"b""c"', data:find('2,"b', 1, true) - 1, 4 },
      { "3,last", #data - 6, 5 },
    }, got)
  end)

  it("raises for a single member cut in the middle", function()
    local path = tmp .. "/half.csv.gz"
    local err, rows = read_err(path)
    local n = #rows
    assert.truthy(n > 1000 and n < 20000, n)
    check_rows(rows, n)
    assert.are.equal(("%s:%d: gzip stream is truncated or corrupt: unexpected end of file"):format(path, n + 2), err)
  end)

  it("reads multi-member input from a pipe, and names stdin in the error for trailing garbage", function()
    local script = [[local n, s = 0, 0
      for row in require("sluice").csv.rows("-") do n = n + 1; s = s + tonumber(row.id) end
      print(n, s)]]
    local code, out, err = H.run("cat " .. H.q(file("multi")) .. " | " .. H.q(H.exe) .. " -e " .. H.q(script))
    assert.are.equal(0, code, err)
    assert.are.equal("2000\t2001000\n", out)
    code, out, err = H.run("cat " .. H.q(file("trailing")) .. " | " .. H.q(H.exe) .. " -e " .. H.q(script))
    assert.are.equal(1, code, out)
    assert.truthy(err:find("stdin:1002: gzip stream is followed by bytes that are not gzip (trailing garbage at byte "
                           .. #A .. ")", 1, true), err)
  end)
end)

describe("positions in gzip input", function()
  -- { n, line, id, name } of every record from where r is, and the
  -- position before each
  local function rest(r)
    local got, pos = {}, {}
    while true do
      local p = r:position()
      local row, n = r:next()
      if not row then break end
      got[#got + 1] = { n, r.line, row.id, row.name }
      pos[#pos + 1] = p
    end
    return got, pos
  end

  it("go back to any record of a multi-member file with padding: the same rows and lines", function()
    local path = file("padded")
    local all, pos = rest(csv.open(path))
    assert.are.equal(2000, #all)
    local same = csv.open(path)
    for _, k in ipairs({ 2000, 1, 999, 1000, 1001, 1500, 2 }) do
      local fresh = csv.open(path)
      fresh:seek(pos[k])
      local got = rest(fresh)
      assert.are.equal(2001 - k, #got)
      assert.are.same(all[k], got[1])
      assert.are.same(all[2000], got[#got])
      same:seek(pos[k]) -- back and forth in one reader
      local row, n = same:next()
      assert.are.same(all[k], { n, same.line, row.id, row.name })
    end
  end)

  it("seek forward and back across blocks of a large member", function()
    local path = tmp .. "/one.csv.gz"
    local all, pos = rest(csv.open(path))
    assert.are.equal(20000, #all)
    local r = csv.open(path)
    for _, k in ipairs({ 15000, 3, 19999, 19998, 10000 }) do
      r:seek(pos[k])
      local row, n = r:next()
      assert.are.same(all[k], { n, r.line, row.id, row.name })
    end
    -- the end of the input is a position; past it is refused
    local size = #slurp(tmp .. "/one.csv")
    r:seek(size .. ":20002:20000:2")
    assert.is_nil(r:next())
    assert.are.equal(("%s: position %d is past the end of the input (%d bytes decompressed)")
                     :format(path, size + 10, size),
                     H.error_of(r.seek, r, (size + 10) .. ":20002:20000:2"))
  end)

  it("raise the damage of a cut file that lies before the position", function()
    local _, pos = rest(csv.open(tmp .. "/one.csv.gz"))
    local path = tmp .. "/half.csv.gz"
    local r = csv.open(path)
    r:seek(pos[1000])
    local row, n = r:next()
    assert.are.same({ 1000, "1000" }, { n, row.id })
    assert.are.equal(path .. ": gzip stream is truncated or corrupt: unexpected end of file",
                     H.error_of(r.seek, r, pos[19000]))
  end)
end)

describe("read errors", function()
  it("raise, naming the file (a directory here); copy_from_file loads nothing", function()
    local err = read_err(tmp)
    assert.are.equal(tmp .. ":1: read error: Is a directory", err)
    local db = H.connect()
    db:exec("create temporary table r (a text)")
    local ok
    ok, err = pcall(db.copy_from_file, db, "r", tmp)
    assert.is_false(ok)
    assert.are.equal(tmp .. ": read error: Is a directory", err)
    assert.are.equal(0, db:query_one("select count(*)::int as n from r").n)
    db:close()
  end)
end)

describe("a plain CSV file that shrinks while it is read", function()
  it("raises instead of ending early", function()
    -- 64-byte lines: the first read block (128 KiB) ends at a line end
    local lines = {}
    for i = 1, 6144 do lines[i] = ("%063d\n"):format(i) end
    local path = tmp .. "/shrinks.csv"
    write(path, table.concat(lines))
    local r = csv.open(path, { header = false })
    local n = 0
    local ok, err = pcall(function()
      assert.are.same({ ("%063d"):format(1) }, (r:next()))
      n = 1
      write(path, "") -- another program truncates the file
      while r:next() do n = n + 1 end
    end)
    assert.is_false(ok, ("read %d rows and ended quietly"):format(n))
    assert.truthy(n < 6144, n)
    assert.are.equal(("%s:%d: file shrank to 0 bytes while it was read (%d bytes read): another program changed it")
                     :format(path, n + 1, n * 64), err)
  end)
end)

describe("db:copy_from_file with gzip input", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "gzip_spec")
    db:exec("create table t (id int primary key, name text)")
  end)
  teardown(function() db:close() end)
  before_each(function() db:exec("truncate t") end)

  local function count() return db:query_one("select count(*)::int as n from t").n end

  it("loads every member of a multi-member file", function()
    for _, name in ipairs { "multi", "padded" } do
      db:exec("truncate t")
      assert.are.equal(2000, db:copy_from_file("t", file(name)), name)
      local got = db:query_one("select count(*)::int as n, sum(id)::int as s, "
                               .. "count(*) filter (where name = 'name ' || id)::int as good from t")
      assert.are.same({ n = 2000, s = 2001000, good = 2000 }, got, name)
    end
  end)

  it("raises for trailing garbage, a cut or damaged member, or a cut single member; nothing is loaded", function()
    local expect = {
      trailing = "gzip stream is followed by bytes that are not gzip (trailing garbage at byte " .. #A .. ")",
      one_byte = "gzip stream is followed by bytes that are not gzip (trailing garbage at byte " .. #A .. ")",
      bad_magic = "gzip stream is followed by bytes that are not gzip (trailing garbage at byte " .. #A .. ")",
      cut_second = "gzip stream is truncated or corrupt: unexpected end of file",
      crc_second = "gzip stream is truncated or corrupt: incorrect data check",
    }
    for _, name in ipairs { "trailing", "one_byte", "bad_magic", "cut_second", "crc_second" } do
      local path = file(name)
      local ok, err = pcall(db.copy_from_file, db, "t", path)
      assert.is_false(ok, name)
      assert.are.equal(path .. ": " .. expect[name], err)
      assert.are.equal(0, count(), name)
      assert.are.equal("idle", db:status())
    end
    local path = tmp .. "/half.csv.gz"
    local ok, err = pcall(db.copy_from_file, db, "t", path)
    assert.is_false(ok)
    assert.are.equal(path .. ": gzip stream is truncated or corrupt: unexpected end of file", err)
    assert.are.equal(0, count())
  end)
end)
