-- sluice.load in reject mode on a large input: exactly the good rows
-- loaded, one rejects-file line per bad row (row number and SQLSTATE),
-- the summary's counts; the same input in abort mode loads nothing and
-- names the first bad row; CSV input keeps the records as written.
local H = require "helper"
local sluice = require "sluice"

local N = 100000

-- Row i, and the bad rows: a value that is no integer (22P02), a CHECK
-- violation (23514), a key given twice (23505; for upsert an update).
local BAD_TYPE = { [5] = true, [9999] = true, [10000] = true, [10001] = true, [61234] = true,
                   [99999] = true }
local BAD_CHECK = { [7] = true, [500] = true, [20000] = true, [33333] = true, [50001] = true,
                    [77777] = true, [88888] = true, [100000] = true }
local DUP = {} -- row -> the earlier row whose id it repeats
for _, r in ipairs { 12, 4567, 30000, 30001, 65536, 90000 } do DUP[r] = r - 11 end
for r = 40000, 40020 do DUP[r] = r - 100 end -- a run of 21 in one chunk

local function row(i)
  local id = DUP[i] or i
  local qty = i % 1000
  if BAD_TYPE[i] then qty = "x" .. i end
  if BAD_CHECK[i] then qty = -i end
  return { id, qty, "name " .. i }
end

local function rows_iter()
  local i = 0
  return function()
    i = i + 1
    if i <= N then return row(i) end
  end
end

-- The bad rows of a strategy, "row:sqlstate" in row order.
local function expected_rejects(upsert)
  local out = {}
  for i = 1, N do
    if BAD_TYPE[i] then out[#out + 1] = i .. ":22P02"
    elseif BAD_CHECK[i] then out[#out + 1] = i .. ":23514"
    elseif DUP[i] and not upsert then out[#out + 1] = i .. ":23505" end
  end
  return out
end

-- count, sum(id), sum(qty), sum(length(name)) the table must hold.
local function expected_sums(upsert)
  local by_id = {}
  for i = 1, N do
    if not BAD_TYPE[i] and not BAD_CHECK[i] then
      local r = row(i)
      if by_id[r[1]] == nil or upsert then by_id[r[1]] = r end
    end
  end
  local n, sid, sq, sl = 0, 0, 0, 0
  for id, r in pairs(by_id) do
    n, sid, sq, sl = n + 1, sid + id, sq + r[2], sl + #r[3]
  end
  return { n = n, sid = sid, sq = sq, sl = sl }
end

describe("sluice.load on_error = \"reject\" (100,000 rows)", function()
  local db, dir
  setup(function()
    db = H.connect()
    dir = H.tmpdir()
  end)
  teardown(function()
    os.execute("rm -rf " .. H.q(dir))
    db:close()
  end)

  local function fresh()
    db:exec("drop table if exists items; create table items (id int primary key, "
            .. "qty int check (qty >= 0), name text not null)")
  end
  local function sums()
    return db:query_one("select count(*)::int8 as n, coalesce(sum(id), 0)::int8 as sid, "
                        .. "coalesce(sum(qty), 0)::int8 as sq, "
                        .. "coalesce(sum(length(name)), 0)::int8 as sl from items")
  end

  for _, strategy in ipairs { "copy_binary", "copy_text", "batch", "upsert", "unlogged_staging",
                              "pipeline" } do
    local upsert = strategy == "upsert"
    it("loads exactly the good rows and writes one line per bad row (" .. strategy .. ")", function()
      fresh()
      local path = dir .. "/" .. strategy .. ".rejects.csv"
      local s = sluice.load { db = db, table = "items", rows = rows_iter(), strategy = strategy,
                              on_error = "reject", rejects = path, quiet = true }
      local want = expected_rejects(upsert)
      local got = {}
      for e in sluice.read_rejects(path) do
        got[#got + 1] = e.row .. ":" .. e.sqlstate
        assert.are.equal("", e.source) -- generated rows have no file
      end
      assert.are.same(want, got)
      assert.are.equal(N, s.read)
      assert.are.equal(#want, s.rejected)
      assert.are.equal(N - #want, s.loaded)
      assert.are.same(expected_sums(upsert), sums())
      assert.are.equal("idle", db:status())
    end)

    it("in abort mode loads nothing and names the first bad row (" .. strategy .. ")", function()
      fresh()
      local ok, err = pcall(sluice.load, { db = db, table = "items", rows = rows_iter(),
                                           strategy = strategy, quiet = true })
      assert.is_false(ok)
      -- the server's error (22P02), or the client's refusal of the value
      -- before it was sent (a message, no SQLSTATE)
      if err.sqlstate ~= nil then assert.are.equal("22P02", err.sqlstate) end
      assert.truthy(tostring(err.message):find("row 5[,:]"), tostring(err))
      assert.are.equal(0, sums().n)
      assert.are.equal(0, err.committed_rows)
    end)
  end

  it("sets aside rows of the wrong shape in row order, across connections", function()
    fresh()
    local rows = {}
    for i = 1, 40 do rows[i] = { i, i, "n" .. i } end
    rows[3] = { 3, 3 }                        -- too few values
    rows[10] = { id = 10, qty = 1, nmae = "x" } -- a key that is no column
    rows[11][2] = -1                           -- the server's CHECK
    rows[30] = { 30, 30, "n", "extra" }       -- too many
    rows[31][2] = "y"                          -- not an integer
    for _, strategy in ipairs { "copy_binary", "batch" } do
      fresh()
      local got = {}
      local s = sluice.load { db = db, table = "items", rows = rows, strategy = strategy,
        connections = 2, on_reject = function(_, err, at) got[#got + 1] = at .. ":" .. err.sqlstate end,
        reject_chunk = 4, batch_rows = 4, quiet = true }
      assert.are.same({ "3:22P04", "10:22P04", "11:23514", "30:22P04", "31:22P02" }, got)
      assert.are.equal(40, s.read)
      assert.are.equal(35, s.loaded)
      assert.are.equal(35, sums().n)
      assert.are.equal(0, db:query_one("select count(*)::int as n from items where id in (3, 10, 11, 30, 31)").n)
    end
  end)

  it("db:copy_from_file sets bad records aside with their text and line", function()
    fresh()
    local csv = dir .. "/file.csv"
    local f = assert(io.open(csv, "wb"))
    f:write('id,qty,name\n1,10,"a\nb"\n2,x,bad\n3,-3,neg\n4,40\n5,50,"five"\n\n6,60,six,extra\n7,,null qty\n')
    f:close()
    local path = dir .. "/file.rejects.csv"
    local loaded, rejected = db:copy_from_file("items", csv, { rejects = path })
    assert.are.equal(3, loaded)
    assert.are.equal(4, rejected)
    local got = {}
    for e in sluice.read_rejects(path) do
      got[#got + 1] = table.concat({ e.row, e.source, e.sqlstate, e.record }, "|")
    end
    assert.are.same({ "2|" .. csv .. ":4|22P02|2,x,bad", "3|" .. csv .. ":5|23514|3,-3,neg",
                      "4|" .. csv .. ":6|22P04|4,40", "6|" .. csv .. ":9|22P04|6,60,six,extra" }, got)
    local names = {}
    for _, r in ipairs(db:query("select id, qty is null as q, name from items order by id")) do
      names[#names + 1] = r.id .. "=" .. tostring(r.q) .. "=" .. r.name
    end
    assert.are.same({ "1=false=a\nb", "5=false=five", "7=true=null qty" }, names)
  end)

  it("raises when the server counts other rows than were sent (a trigger skipped some)", function()
    fresh()
    db:exec([[create or replace function items_skip() returns trigger language plpgsql as $$
      begin if new.id % 10 = 0 then return null; end if; return new; end $$;
      create trigger items_skip before insert on items for each row execute function items_skip()]])
    local rows = {}
    for i = 1, 50 do rows[i] = { i, i, "n" } end
    for _, strategy in ipairs { "copy_binary", "copy_text" } do
      db:exec("truncate items")
      local ok, err = pcall(sluice.load, { db = db, table = "items", rows = rows,
                                           strategy = strategy, quiet = true })
      assert.is_false(ok)
      assert.are.equal('load: the server counted 45 rows loaded where 50 were sent (a trigger or '
                       .. 'rule on table "items" skipped or added rows); the 45 rows it counted '
                       .. 'were committed', err.message)
      assert.are.equal(45, err.committed_rows)
      assert.are.equal(45, sums().n)
      db:exec("truncate items")
      ok, err = pcall(sluice.load, { db = db, table = "items", rows = rows, strategy = strategy,
                                     on_reject = function() end, quiet = true })
      assert.is_false(ok)
      assert.are.equal(0, err.committed_rows)
      assert.are.equal(0, sums().n)
    end
  end)

  it("keeps a CSV record as written, with its file and line", function()
    fresh()
    local csv = dir .. "/in.csv"
    local f = assert(io.open(csv, "wb"))
    f:write('id,qty,name\n',
            '1,10,"plain"\n',
            '2,20,"two\nlines"\n',             -- lines 3-4
            '3,"x3","bad, ""quoted"" qty"\n',  -- line 5: 22P02
            '4,-4,four\r\n',                   -- line 6: 23514
            '5,50,"five\nsix\nseven"\n',       -- lines 7-9
            '1,60,"dup of 1"\n')               -- line 10: 23505
    f:close()
    local path = dir .. "/csv.rejects.csv"
    local s = sluice.load { db = db, table = "items", rows = sluice.csv.rows(csv),
                            strategy = "copy_text", on_error = "reject", rejects = path,
                            quiet = true }
    assert.are.equal(6, s.read)
    assert.are.equal(3, s.rejected)
    local got = {}
    for e in sluice.read_rejects(path) do
      got[#got + 1] = { e.row, e.source, e.sqlstate, e.record }
    end
    assert.are.same({
      { 3, csv .. ":5", "22P02", '3,"x3","bad, ""quoted"" qty"' },
      { 4, csv .. ":6", "23514", "4,-4,four" },
      { 6, csv .. ":10", "23505", '1,60,"dup of 1"' },
    }, got)
    local names = {}
    for _, r in ipairs(db:query("select id, name from items order by id")) do
      names[#names + 1] = r.id .. "=" .. r.name
    end
    assert.are.same({ "1=plain", "2=two\nlines", "5=five\nsix\nseven" }, names)
  end)
end)
