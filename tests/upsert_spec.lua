-- luacheck: std +busted
-- Staged upsert (db:upsert): COPY into a temporary staging table, then
-- one INSERT ... SELECT ... ON CONFLICT DO UPDATE, in one transaction.
local H = require "helper"

local error_of = H.error_of

describe("db:upsert", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "upsert_spec")
  end)
  teardown(function()
    db:exec("DROP SCHEMA upsert_spec CASCADE")
    db:close()
  end)

  it("upserts 100k rows over 50k existing keys: exactly the expected table", function()
    db:exec("create table m (host text, ts int, v float8, note text, primary key (host, ts))")
    -- existing keys: k = 1..100000 step 2 (50k rows), v = -k
    db:exec([[insert into m select 'h' || (k % 100), k, -k, 'old'
              from generate_series(1, 100000, 2) k]])
    -- staged: k = 50001..150000 (100k rows): 25k over existing keys
    local up = db:upsert("m", { "host", "ts", "v", "note" }, { key = { "host", "ts" }, update = { "v" } })
    for k = 50001, 150000 do up:row("h" .. (k % 100), k, k / 3, "new") end
    local changed, staged = up:finish()
    assert.are.equal(100000, changed)
    assert.are.equal(100000, staged)
    assert.are.equal("idle", db:status())
    local want = db:query_one([[
      with e as (
        select 'h' || (k % 100) as host, k as ts,
               case when k > 50000 then k / 3.0::float8 else -k end as v,
               case when k > 100000 or (k > 50000 and k % 2 = 0) then 'new' else 'old' end as note
          from generate_series(1, 150000) k
         where k > 50000 or k % 2 = 1)
      select count(*) as n, md5(string_agg(e::text, ',' order by ts)) as h from e]])
    local got = db:query_one("select count(*) as n, md5(string_agg(m::text, ',' order by ts)) as h from m")
    assert.are.equal(125000, got.n)
    assert.are.same(want, got)
    -- the staging table is gone
    assert.are.equal(0, db:query_one(
      "select count(*) as n from pg_class where relname like 'sluice_upsert_%'").n)
  end)

  it("resolves duplicate keys among the staged rows to the last one", function()
    db:exec("create table d (id int primary key, v text)")
    db:exec("insert into d values (1, 'old'), (2, 'old')")
    local up = db:upsert("d", { "id", "v" }, { key = "id" })
    up:rows({ { 1, "a" }, { 3, "b" }, { 1, "c" }, { 3, "d" }, { 1, "last" } })
    up:row(3, "final")
    assert.are.equal(2, (up:finish()))
    assert.are.same({ { id = 1, v = "last" }, { id = 2, v = "old" }, { id = 3, v = "final" } },
      db:query("select * from d order by id"))
  end)

  it("does nothing on conflict when update is empty", function()
    db:exec("create table dn (id int primary key, v text)")
    db:exec("insert into dn values (1, 'keep')")
    local up = db:upsert("dn", { "id", "v" }, { key = "id", update = {} })
    up:row(1, "lost"); up:row(2, "new")
    assert.are.equal(1, (up:finish()))
    assert.are.same({ { id = 1, v = "keep" }, { id = 2, v = "new" } },
      db:query("select * from dn order by id"))
  end)

  it("uses a savepoint inside the caller's transaction", function()
    db:exec("create table sp (id int primary key, v int)")
    db:begin()
    local up = db:upsert("sp", { "id", "v" }, { key = "id" })
    up:row(1, 1)
    up:finish()
    assert.are.equal("intrans", db:status())
    db:rollback()
    assert.are.equal(0, db:query_one("select count(*) as n from sp").n)
  end)

  it("rolls everything back when a row is refused", function()
    db:exec("create table bad (id int primary key, v int not null)")
    db:exec("insert into bad values (1, 1)")
    local up = db:upsert("bad", { "id", "v" }, { key = "id" })
    up:row(1, 2)
    up:row(2, require("sluice").null)
    local err = error_of(up.finish, up)
    assert.are.equal('null value in column "v" of relation "bad" violates not-null constraint',
      err.message)
    assert.are.equal("idle", db:status())
    assert.are.same({ { id = 1, v = 1 } }, db:query("select * from bad"))
  end)

  it("checks its arguments at the caller's line", function()
    local err = error_of(db.upsert, db, "bad", { "id", "v" }, { key = "nope" })
    assert.matches('upsert: key column "nope" is not among the columns', err, 1, true)
  end)

  -- issue: DISTINCT ON (key) merged every NULL key into one row
  it("inserts every row whose key holds a NULL (such rows never conflict)", function()
    local null = require("sluice").null
    db:exec("create table nk (a int, b int, v text, unique (a, b))")
    db:exec("insert into nk values (1, 1, 'old'), (1, null, 'old-null')")
    local up = db:upsert("nk", { "a", "b", "v" }, { key = { "a", "b" } })
    up:rows({ { 1, null, "n1" }, { null, null, "n2" }, { 1, 1, "first" }, { 1, null, "n3" },
              { null, 2, "n4" }, { 1, 1, "last" } })
    local changed, staged = up:finish()
    assert.are.equal(6, staged)
    assert.are.equal(5, changed) -- (1,1) updated once, four NULL-key rows inserted
    local got = {}
    for i, r in ipairs(db:query("select coalesce(a::text, 'null') || ',' || coalesce(b::text, 'null') "
      .. "|| ',' || v as r from nk order by r")) do got[i] = r.r end
    assert.are.same({ "1,1,last", "1,null,n1", "1,null,n3", "1,null,old-null", "null,2,n4", "null,null,n2" }, got)
  end)

  it("treats NULL keys as equal when the unique index says NULLS NOT DISTINCT", function()
    local null = require("sluice").null
    db:exec("create table nnd (a int, v text)")
    db:exec("create unique index nnd_a on nnd (a) nulls not distinct")
    db:exec("insert into nnd values (null, 'old')")
    local up = db:upsert("nnd", { "a", "v" }, { key = "a" })
    up:rows({ { null, "x" }, { 1, "one" }, { null, "last" } })
    assert.are.equal(2, (up:finish()))
    local got = {}
    for i, r in ipairs(db:query("select coalesce(a::text, 'null') || ',' || v as r from nnd order by r")) do
      got[i] = r.r
    end
    assert.are.same({ "1,one", "null,last" }, got)
  end)

  -- issue: a client-side value error left the transaction aborted
  for _, inside in ipairs { false, true } do
    it("rolls back and frees the connection when up:row() refuses a value"
       .. (inside and " (in the caller's transaction)" or ""), function()
      db:exec("drop table if exists bv; create table bv (id int primary key, n int)")
      if inside then
        db:begin()
        db:exec("insert into bv values (100, 100)")
      end
      local up = db:upsert("bv", { "id", "n" }, { key = "id" })
      up:row(1, 1)
      local err = error_of(up.row, up, 2, "not a number")
      assert.matches('column "n"', tostring(err), 1, true)
      assert.are.equal("aborted", up.state)
      assert.is_false(up:abort())
      local err2 = error_of(up.row, up, 3, 3)
      assert.matches("upsert:row: the upsert is aborted", tostring(err2), 1, true)
      if inside then
        -- the caller's transaction is usable and holds its own row only
        assert.are.equal("intrans", db:status())
        assert.are.same({ { id = 100, n = 100 } }, db:query("select * from bv"))
        db:commit()
      end
      assert.are.equal("idle", db:status())
      assert.are.same(inside and { { id = 100, n = 100 } } or {}, db:query("select * from bv"))
      assert.are.equal(0, db:query_one(
        "select count(*) as n from pg_class where relname like 'sluice_upsert_%'").n)
    end)
  end
end)
