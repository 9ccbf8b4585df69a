-- luacheck: std +busted
-- Pipeline mode (db:pipeline) against the real server: rows in flight,
-- errors mapped back to their row, what each sync group commits.
local H = require "helper"

local count = H.count

local error_of = H.error_of

describe("db:pipeline", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "pipeline_spec")
    db:exec("create table p (id int primary key, host text, ts timestamptz, v float8)")
  end)
  teardown(function()
    db:exec("DROP SCHEMA pipeline_spec CASCADE")
    db:close()
  end)
  before_each(function() db:exec("truncate p") end)

  it("sends many rows without a round trip each", function()
    local pl = db:pipeline("insert into p values ($1, $2, $3, $4)", { sync_every = 500 })
    for i = 1, 5000 do pl:send(i, ("host-%03d"):format(i % 1000), 1700000000 + i, i / 7) end
    assert.are.equal(5000, pl:close())
    assert.are.equal("closed", pl.state)
    assert.are.equal(5000, pl.rows_done)
    assert.are.equal(5000, pl.rows_committed)
    local r = db:query_one("select count(*) as n, sum(v) as s, min(ts)::text as t from p")
    assert.are.equal(5000, r.n)
    local s = 0
    for i = 1, 5000 do s = s + i / 7 end
    assert.is_true(math.abs(r.s - s) < 1e-6)
    assert.are.equal("2023-11-14 22:13:21+00", r.t)
    assert.are.equal("idle", db:status())
  end)

  it("reports the failing row: row 777 of 2,000", function()
    db:exec("insert into p (id) values (-777)")
    local pl = db:pipeline("insert into p (id) values ($1)")  -- sync_every 1000
    local err = error_of(function()
      for i = 1, 2000 do pl:send(i == 777 and -777 or i) end
      pl:close()
    end)
    assert.are.equal(777, err.row)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal("pipeline: row 777: duplicate key value violates unique "
      .. "constraint \"p_pkey\" (nothing was committed)", err.message)
    assert.are.equal("failed", pl.state)
    assert.are.equal("idle", db:status())
    assert.are.equal(1, count(db, "p"))     -- only the row that was there
  end)

  it("keeps the sync groups before the failing one", function()
    db:exec("insert into p (id) values (-777)")
    local pl = db:pipeline("insert into p (id) values ($1)", { sync_every = 100 })
    local err = error_of(function()
      for i = 1, 2000 do pl:send(i == 777 and -777 or i) end
      pl:close()
    end)
    assert.are.equal(777, err.row)
    assert.are.equal(700, err.committed_rows)
    assert.are.equal("pipeline: row 777: duplicate key value violates unique "
      .. "constraint \"p_pkey\" (rows 1-700 were committed by earlier syncs; "
      .. "nothing from row 701 on was)", err.message)
    assert.are.equal(701, count(db, "p"))
    assert.are.equal(700, db:query_one("select max(id) as m from p").m)
  end)

  it("commits nothing itself inside the caller's transaction", function()
    db:begin()
    local pl = db:pipeline("insert into p (id) values ($1)", { sync_every = 7 })
    for i = 1, 100 do pl:send(i) end
    assert.are.equal(100, pl:sync())
    pl:close()
    assert.are.equal(100, count(db, "p"))
    db:rollback()
    assert.are.equal(0, count(db, "p"))
    db:begin()
    pl = db:pipeline("insert into p (id) values ($1)", { sync_every = 7 })
    local err = error_of(function()
      for i = 1, 100 do pl:send(i % 50 + 1) end
      pl:close()
    end)
    assert.are.equal(51, err.row)
    assert.are.equal("pipeline: row 51: duplicate key value violates unique "
      .. "constraint \"p_pkey\" (the caller's transaction is aborted; roll it back)",
      err.message)
    assert.are.equal("inerror", db:status())
    db:rollback()
  end)

  it("holds the connection while open, and leaves pipeline mode on close", function()
    local pl = db:pipeline("insert into p (id) values ($1)")
    pl:send(1)
    local err = error_of(db.query, db, "select 1")
    assert.matches("the connection is busy", err, 1, true)
    pl:close()
    assert.are.equal(1, db:query_one("select count(*) as n from p").n)
    -- COPY works again
    local cp = db:copy("p", { "id" })
    cp:row(2)
    assert.are.equal(1, cp:finish())
  end)

  it("rolls back the open group of a pipeline dropped unclosed", function()
    do
      local pl = db:pipeline("insert into p (id) values ($1)", { sync_every = 10 })
      for i = 1, 25 do pl:send(i) end
      pl:sync()                              -- rows 1-25 synced: committed
      for i = 26, 30 do pl:send(i) end       -- an open group
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal("idle", db:status())
    assert.are.equal(25, count(db, "p"))
  end)

  it("raises a wrong value count at the caller's line", function()
    local pl = db:pipeline("insert into p (id, host) values ($1, $2)")
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() pl:send(1) end)
    assert.is_false(ok)
    assert.are.equal(("tests/pipeline_spec.lua:%d: pipeline:send: expected 2 values "
      .. "(one per parameter), got 1"):format(line), err:match("tests/.*$"))
    pl:send(1, "a")
    assert.are.equal(1, pl:close())
  end)

  it("refuses int8 numbers beyond 2^53 and goes on after a refused row", function()
    db:exec("create table p8 (id int, n int8, a int4[])")
    local pl = db:pipeline("insert into p8 values ($1, $2, $3)")
    pl:send(1, 2^53, { 1 })
    local err = error_of(pl.send, pl, 2, 1e18 + 1, nil)
    assert.are.equal("pipeline:send: row 2, parameter $2: expected an int64 cdata "
      .. "(e.g. 1000000000000000001LL) or a string for an integer beyond +-2^53 "
      .. "(a Lua number that large may have been rounded), got number",
      err.message)
    assert.are.equal("22003", err.sqlstate)
    assert.are.equal("$2", err.parameter)
    assert.are.equal("string", type(err.where)) -- the calling line (here pcall: none)
    err = error_of(pl.send, pl, 2, 1, { 1, 2, function() end })
    assert.matches("pipeline:send: row 2, parameter $3: expected array elements", err.message, 1, true)
    pl:send(2, 1000000000000000001LL, { 2, 3 })
    assert.are.equal(2, pl:close())
    local got = {}
    for i, r in ipairs(db:query("select n::text, a::text from p8 order by id")) do
      got[i] = r.n .. " " .. r.a
    end
    assert.are.same({ "9007199254740992 {1}", "1000000000000000001 {2,3}" }, got)
  end)

  it("raises the statement's own error when it does not parse", function()
    local err = error_of(db.pipeline, db, "insert into nope values ($1)")
    assert.are.equal('relation "nope" does not exist', err.message)
    assert.are.equal("idle", db:status())
  end)

  it("abort() rolls back the rows since the last sync point and commits nothing more", function()
    local pl = db:pipeline("insert into p (id) values ($1)", { sync_every = 4 })
    for i = 1, 10 do pl:send(i) end
    assert.are.equal(8, pl:abort())
    assert.are.equal(8, pl:abort()) -- a second call does nothing
    assert.are.equal("closed", pl.state)
    -- two groups of 4 were synced (committed); rows 9-10 were not
    local r = db:query_one("select count(*)::int as n, max(id) as m from p")
    assert.are.same({ n = 8, m = 8 }, { n = r.n, m = r.m })
    assert.are.equal("idle", db:status())
  end)
end)
