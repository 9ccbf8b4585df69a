-- sluice.rejects and sluice.read_rejects: the rejects file, written with
-- real error objects from the server, checked byte for byte, and read
-- back.
local H = require "helper"
local sluice = require "sluice"

local NULL = sluice.null
local HEADER = "row,source,sqlstate,column,message,record\n"

local db, tmp
local errs = {} -- name -> a real error object

local function err_of(sql)
  local ok, e = pcall(db.exec, db, sql)
  assert(not ok and sluice.is_error(e), "expected a server error")
  return e
end

setup(function()
  tmp = H.tmpdir()
  db = H.connect()
  db:exec([[drop table if exists rj_t;
    create table rj_t (id int primary key, n int check (n > 0), s text not null)]])
  db:exec("insert into rj_t values (1, 1, 'a')")
  errs.check = err_of("insert into rj_t values (2, -1, 'x')")
  errs.int = err_of("insert into rj_t values (3, 'abc', 'x')")
  errs.unique = err_of("insert into rj_t values (1, 5, 'x')")
  errs.notnull = err_of("insert into rj_t values (4, 5, null)")
  local p = tmp .. "/copy.csv"
  H.write(p, "id,n,s\n5,7,x\n6,zz,y\n")
  local ok, e = pcall(db.copy_from_file, db, "rj_t", p)
  assert(not ok)
  errs.copy = e
end)

teardown(function()
  db:exec("drop table if exists rj_t")
  db:close()
  os.execute("rm -rf " .. tmp)
end)

describe("sluice.rejects", function()
  it("writes a header and one exact line per reject, each column from the error", function()
    -- the server's own words, as the objects carry them
    assert.are.equal("23514", errs.check.sqlstate)
    assert.are.equal("COPY rj_t, line 3, column n: \"zz\"", errs.copy.context)
    assert.is_nil(errs.copy.column)
    local path = tmp .. "/a.csv"
    local rej = sluice.rejects(path)
    assert.are.equal(path, rej.path)
    assert.are.equal(0, rej.count)
    assert.are.equal(HEADER, H.slurp(path)) -- written at once
    rej({ "2", "-1", "x" }, errs.check, 2, { source = "in.csv:3", record = '2,-1,"x"' })
    rej({ "3", "abc", "x" }, errs.int, 3)
    rej({ 1, 5, "x" }, errs.unique, 4, { source = "in.csv:5" })
    rej({ 4, 5, nil, n = 3 }, errs.notnull, 5)
    rej({ "6", "zz", "y" }, errs.copy, 7, { source = "in.csv:7", record = "6,zz,y" })
    rej({ "7", "1" }, "column 2: \"1.5\" is not an integer", 8)
    assert.are.equal(6, rej.count)
    rej:close()
    assert.are.equal(HEADER
      .. '2,in.csv:3,23514,,"new row for relation ""rj_t"" violates check constraint ""rj_t_n_check"" '
      .. '(Failing row contains (2, -1, x).)","2,-1,""x"""\n'
      .. '3,,22P02,,"invalid input syntax for type integer: ""abc""","3,abc,x"\n'
      .. '4,in.csv:5,23505,,"duplicate key value violates unique constraint ""rj_t_pkey"" '
      .. '(Key (id)=(1) already exists.)","1,5,x"\n'
      .. '5,,23502,s,"null value in column ""s"" of relation ""rj_t"" violates not-null constraint '
      .. '(Failing row contains (4, 5, null).)","4,5,"\n'
      .. '7,in.csv:7,22P02,n,"invalid input syntax for type integer: ""zz""","6,zz,y"\n'
      .. '8,,,,"column 2: ""1.5"" is not an integer","7,1"\n',
      H.slurp(path))
    assert.are.equal(#H.slurp(path), rej.size)
    assert.has_error(function() rej({}, "x", 9) end,
                     "sluice.rejects: write: the rejects file is closed")
  end)

  it("writes values of every type as one CSV record", function()
    local path = tmp .. "/types.csv"
    local rej = sluice.rejects(path)
    local big = 2^53 + 2
    rej({ NULL, "", "a,b", 'say "hi"', "two\nlines", "\\.", " sp ", 42, -0.5, 0.1, big,
          true, false, { 1, 2, 3 }, { a = "x" }, "é😀", n = 16 }, errs.check, 1)
    rej({ "x", nil, nil, n = 3 }, errs.check, 2)
    rej({ b = "2", a = "1" }, errs.check, 3) -- keyed: by name
    rej:close()
    local lines = {}
    for e in sluice.read_rejects(path) do lines[#lines + 1] = e end
    assert.are.equal(3, #lines)
    assert.are.equal(',"","a,b","say ""hi""","two\nlines","\\.", sp ,42,-0.5,'
      .. "0.10000000000000001,9007199254740994,t,f,\"[1,2,3]\",\"{\"\"a\"\":\"\"x\"\"}\",é😀",
      lines[1].record)
    assert.are.same({ NULL, "", "a,b", 'say "hi"', "two\nlines", "\\.", " sp ", "42", "-0.5",
      "0.10000000000000001", "9007199254740994", "t", "f", "[1,2,3]", '{"a":"x"}', "é😀" },
      lines[1].values)
    assert.are.equal("x,,", lines[2].record)
    assert.are.same({ "x", NULL, NULL }, lines[2].values)
    assert.are.equal("1,2", lines[3].record)
    -- the order of a keyed row can be given
    local rej2 = sluice.rejects(tmp .. "/cols.csv", { columns = { "b", "a", "c" } })
    rej2({ b = "2", a = "1" }, errs.check, 1)
    rej2:close()
    local e = sluice.read_rejects(tmp .. "/cols.csv")()
    assert.are.same({ "2", "1", NULL }, e.values)
    -- a row in column order stays in its order, even with a column named n
    rej2 = sluice.rejects(tmp .. "/cols.csv", { columns = { "id", "v", "n" } })
    rej2({ 7, "bad", "x", n = 3 }, errs.check, 1)
    rej2({ 8, "b", "y" }, errs.check, 2)
    rej2({ id = 9, n = "z" }, errs.check, 3)
    rej2:close()
    local recs = {}
    for x in sluice.read_rejects(tmp .. "/cols.csv") do recs[#recs + 1] = x.record end
    assert.are.same({ "7,bad,x", "8,b,y", "9,,z" }, recs)
  end)

  it("round-trips records with quotes, commas, line ends and UTF-8 through read_rejects", function()
    -- records as a CSV reader hands them out: read from a real file
    local input = tmp .. "/in.csv"
    H.write(input, 'id,text\n1,"a ""quoted"", comma"\r\n2,"multi\nline\r\nfield"\n'
                   .. '3,Grüße 😀 \226\128\168\n4,""\n')
    local rej = sluice.rejects(tmp .. "/rt.csv")
    local it = sluice.csv.rows(input)
    local r = sluice.csv.reader_of(it)
    local want = {}
    for row, n in it do
      local src = { source = r.path .. ":" .. r.line, record = r:record() }
      rej({ row.id, row.text }, n % 2 == 0 and errs.unique or errs.copy, n, src)
      want[#want + 1] = { n, src.source, src.record, { row.id, row.text } }
    end
    rej:close()
    local got = {}
    for e in sluice.read_rejects(tmp .. "/rt.csv") do
      got[#got + 1] = { e.row, e.source, e.record, e.values }
      assert.are.equal(e.row % 2 == 0 and "23505" or "22P02", e.sqlstate)
      assert.are.equal(e.row % 2 == 0 and "" or "n", e.column)
      assert.are.equal(e.row % 2 == 0
        and 'duplicate key value violates unique constraint "rj_t_pkey" (Key (id)=(1) already exists.)'
        or 'invalid input syntax for type integer: "zz"', e.message)
    end
    assert.are.same(want, got)
    assert.are.equal('1,"a ""quoted"", comma"', got[1][3])
    assert.are.equal('2,"multi\nline\r\nfield"', got[2][3])
    assert.are.equal('4,""', got[4][3])
  end)

  it("puts a multi-line message on one line", function()
    local path = tmp .. "/ml.csv"
    local rej = sluice.rejects(path)
    rej({ "1" }, sluice.error { sqlstate = "P0001", message = "first\nsecond", detail = "d1\r\nd2" }, 1)
    rej:close()
    assert.are.equal(HEADER .. "1,,P0001,,first second (d1 d2),1\n", H.slurp(path))
  end)

  it("flushes every line to the file as it is written", function()
    local path = tmp .. "/flush.csv"
    local rej = sluice.rejects(path)
    rej({ "1" }, errs.int, 1)
    -- read by another handle while rej is still open
    assert.are.equal(HEADER .. '1,,22P02,,"invalid input syntax for type integer: ""abc""",1\n',
                     H.slurp(path))
    rej({ "2" }, errs.int, 2)
    assert.are.equal(3, select(2, H.slurp(path):gsub("\n", "")))
    rej:close()
  end)

  it("is usable where a function is wanted (on_reject), also in db:batch", function()
    db:exec("drop table if exists rj_b; create table rj_b (id int primary key, n int check (n > 0))")
    local rej = sluice.rejects(tmp .. "/batch.csv")
    local b = db:batch("rj_b", { "id", "n" }, { on_reject = rej.on_reject })
    b:add(1, 5)
    b:add(2, -3)
    b:add(3, 6)
    b:add(1, 7)
    b:close()
    rej:close()
    assert.are.equal(2, H.count(db, "rj_b"))
    local got = {}
    for e in sluice.read_rejects(tmp .. "/batch.csv") do
      got[#got + 1] = { e.row, e.sqlstate, e.record }
    end
    assert.are.same({ { 2, "23514", "2,-3" }, { 4, "23505", "1,7" } }, got)
    db:exec("drop table rj_b")
  end)

  it("appends to an existing file without a second header", function()
    local path = tmp .. "/app.csv"
    local rej = sluice.rejects(path)
    rej({ "1" }, errs.int, 1)
    rej:close()
    local before = H.slurp(path)
    rej = sluice.rejects(path, { append = true })
    assert.are.equal(0, rej.count)
    assert.are.equal(#before, rej.size)
    rej({ "2" }, errs.int, 2)
    rej:close()
    assert.are.equal(before .. '2,,22P02,,"invalid input syntax for type integer: ""abc""",2\n',
                     H.slurp(path))
    -- a missing file gets its header
    local fresh = tmp .. "/app2.csv"
    rej = sluice.rejects(fresh, { append = true })
    rej({ "3" }, errs.int, 3)
    rej:close()
    assert.are.equal(HEADER .. '3,,22P02,,"invalid input syntax for type integer: ""abc""",3\n',
                     H.slurp(fresh))
    -- a file of another format is not appended to
    H.write(tmp .. "/other.csv", "a,b\n1,2\n")
    local e = H.error_of(sluice.rejects, tmp .. "/other.csv", { append = true })
    assert.are.equal("sluice.rejects: " .. tmp .. "/other.csv is not a rejects file (its first line "
                     .. 'is not "row,source,sqlstate,column,message,record")', e)
    assert.are.equal("a,b\n1,2\n", H.slurp(tmp .. "/other.csv"))
    -- without append the file starts anew
    rej = sluice.rejects(path)
    rej:close()
    assert.are.equal(HEADER, H.slurp(path))
  end)

  it("cuts an existing file to truncate_to bytes, then appends", function()
    local path = tmp .. "/cut.csv"
    local rej = sluice.rejects(path)
    rej({ "1" }, errs.int, 1)
    local mark = rej.size
    rej({ "2" }, errs.int, 2)
    rej({ "3" }, errs.int, 3)
    rej:close()
    assert.are.equal(#H.slurp(path), rej.size)
    rej = sluice.rejects(path, { truncate_to = mark })
    assert.are.equal(mark, rej.size)
    rej({ "9" }, errs.check, 9)
    rej:close()
    local rows = {}
    for e in sluice.read_rejects(path) do rows[#rows + 1] = e.row end
    assert.are.same({ 1, 9 }, rows)
    -- 0: anew; beyond the size or on a missing file: an error
    rej = sluice.rejects(path, { truncate_to = 0 })
    rej:close()
    assert.are.equal(HEADER, H.slurp(path))
    assert.are.equal(("sluice.rejects: cannot cut %s to 999 bytes: it has only %d"):format(path, #HEADER),
                     H.error_of(sluice.rejects, path, { truncate_to = 999 }))
    assert.are.equal(("sluice.rejects: cannot cut %s/none.csv to 5 bytes: it does not exist"):format(tmp),
                     H.error_of(sluice.rejects, tmp .. "/none.csv", { truncate_to = 5 }))
  end)

  it("raises a clear error at once for an unwritable path or bad options", function()
    local ok, e = pcall(sluice.rejects, tmp .. "/no/such/dir/bad.csv")
    assert.is_false(ok)
    assert.are.equal("sluice.rejects: cannot open " .. tmp
                     .. "/no/such/dir/bad.csv: No such file or directory", e)
    os.execute("mkdir -p " .. H.q(tmp .. "/ro") .. " && chmod 500 " .. H.q(tmp .. "/ro"))
    if io.open(tmp .. "/ro/probe", "w") == nil then -- not root: the mode holds
      e = H.error_of(sluice.rejects, tmp .. "/ro/bad.csv")
      assert.are.equal("sluice.rejects: cannot open " .. tmp .. "/ro/bad.csv: Permission denied", e)
    end
    e = H.error_of(sluice.rejects, tmp) -- a directory
    assert.are.equal("sluice.rejects: cannot open " .. tmp .. ": Is a directory", e)
    assert.truthy(H.error_of(function() sluice.rejects(tmp .. "/x.csv", { apend = true }) end)
      :find("rejects_spec.lua:%d+: sluice.rejects: unknown option 'apend'"))
    assert.truthy(H.error_of(function() sluice.rejects(tmp .. "/x.csv", { truncate_to = -1 }) end)
      :find("sluice.rejects: option truncate_to must be a whole number of bytes >= 0", 1, true))
  end)

  it("read_rejects refuses a file that is not a rejects file", function()
    H.write(tmp .. "/nr.csv", "a,b\n1,2\n")
    assert.are.equal("sluice.read_rejects: " .. tmp .. "/nr.csv is not a rejects file (its header is not "
                     .. '"row,source,sqlstate,column,message,record")',
                     H.error_of(sluice.read_rejects, tmp .. "/nr.csv"))
  end)
end)
