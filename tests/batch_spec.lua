-- luacheck: std +busted
-- Batched multi-row INSERT (db:batch) against the real server: the
-- 65,535-parameter split, flush by size and by age, ON CONFLICT,
-- RETURNING order, failed flushes and what stays committed.
local H = require "helper"
local ffi = require "ffi"

pcall(ffi.cdef, [[ int usleep(unsigned int usec); ]])

local count = H.count

local error_of = H.error_of

describe("db:batch", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "batch_spec")
  end)
  teardown(function()
    db:exec("DROP SCHEMA batch_spec CASCADE")
    db:close()
  end)

  -- 30 columns: id, 9 text, 10 float8, 5 int8, 4 bool, 1 timestamptz
  local function wide_table(name)
    local cols, defs = { "id" }, { "id int primary key" }
    for j = 2, 10 do cols[#cols + 1] = "t" .. j; defs[#defs + 1] = "t" .. j .. " text" end
    for j = 11, 20 do cols[#cols + 1] = "f" .. j; defs[#defs + 1] = "f" .. j .. " float8" end
    for j = 21, 25 do cols[#cols + 1] = "i" .. j; defs[#defs + 1] = "i" .. j .. " int8" end
    for j = 26, 29 do cols[#cols + 1] = "b" .. j; defs[#defs + 1] = "b" .. j .. " bool" end
    cols[#cols + 1] = "ts"; defs[#defs + 1] = "ts timestamptz"
    db:exec(("create table %s (%s)"):format(name, table.concat(defs, ", ")))
    return cols
  end

  local function wide_row(i)
    local r = { i }
    for j = 2, 10 do r[#r + 1] = ("row %d\tcol %d 'q' \"d\" \\ é"):format(i, j) end
    for j = 11, 20 do r[#r + 1] = i / j end
    for j = 21, 25 do r[#r + 1] = i * 1000003 + j end
    for j = 26, 29 do r[#r + 1] = (i + j) % 2 == 0 end
    r[#r + 1] = 1700000000 + i
    return r
  end

  it("splits a 5,000-row flush of 30 columns under the parameter cap", function()
    local cols = wide_table("wide")
    local b = db:batch("wide", cols, { rows = 5000 })
    assert.are.equal(2184, b.rows_per_statement) -- floor(65535 / 30)
    for i = 1, 4999 do b:add(unpack(wide_row(i))) end
    assert.are.equal(4999, b.buffered)
    assert.are.equal(0, count(db, "wide"))
    b:add(unpack(wide_row(5000)))            -- the 5,000th row flushes
    assert.are.equal(0, b.buffered)
    assert.are.equal(5000, count(db, "wide"))
    assert.are.equal(5000, b:close())
    local rows = db:query("select *, extract(epoch from ts) as epoch from wide order by id")
    assert.are.equal(5000, #rows)
    for i, r in ipairs(rows) do
      local want = wide_row(i)
      for j, c in ipairs(cols) do
        local got = r[c]
        if c == "ts" then
          assert.are.equal(want[j], tonumber(r.epoch))
        elseif c:sub(1, 1) == "i" then
          assert.are.equal(want[j], tonumber(got))
        else
          assert.are.equal(want[j], got, ("row %d column %s"):format(i, c))
        end
      end
    end
  end)

  it("flushes by age: on the next add, and on poll", function()
    db:exec("create table aged (id int)")
    local b = db:batch("aged", { "id" }, { rows = 100, max_age_ms = 50 })
    b:add(1)
    assert.are.equal(1, b.buffered)
    assert.are.equal(0, b:poll())            -- not old yet
    assert.are.equal(0, count(db, "aged"))
    ffi.C.usleep(80000)
    b:add(2)                                 -- the oldest row is 80 ms old
    assert.are.equal(0, b.buffered)
    assert.are.equal(2, count(db, "aged"))
    b:add(3)
    ffi.C.usleep(80000)
    assert.are.equal(1, b:poll())
    assert.are.equal(3, count(db, "aged"))
    assert.are.equal(3, b:close())
  end)

  it("flushes by bytes", function()
    db:exec("create table sized (s text)")
    local b = db:batch("sized", { "s" }, { rows = 1000, bytes = 1000 })
    for _ = 1, 9 do b:add(("x"):rep(100)) end
    assert.are.equal(9, b.buffered)
    b:add(("x"):rep(100))
    assert.are.equal(0, b.buffered)
    assert.are.equal(10, count(db, "sized"))
    b:close()
  end)

  it("drops the bytes of a row that fails half-way (bytes trigger unchanged)", function()
    db:exec("create table half (e int4[], s text)")
    local b = db:batch("half", { "e", "s" }, { rows = 1000, bytes = 20 })
    b:add({ 1 }, "ab") -- "{1}\0ab\0"
    assert.are.equal(7, b.buffered_bytes)
    local long = {}
    for i = 1, 50 do long[i] = i end
    long[51] = function() end
    local err = error_of(b.add, b, long, "x")
    assert.are.equal('batch:add: row 2, column "e": expected array elements that are '
      .. "strings, numbers, booleans, tables or sluice.null, got table", err.message)
    assert.are.equal("22P02", err.sqlstate)
    assert.are.equal("e", err.column)
    assert.are.equal(7, b.buffered_bytes)
    assert.are.equal(1, b.buffered)
    -- a value that fails after an earlier column was encoded
    err = error_of(b.add, b, { 9 }, {})
    assert.matches('batch:add: row 2, column "s": expected a string', err.message, 1, true)
    assert.are.equal(7, b.buffered_bytes)
    b:add({ 2 }, "cd")
    assert.are.equal(14, b.buffered_bytes)
    assert.are.equal(2, b.buffered)
    b:add({ 3, 4 }, "ef") -- 14 + 9 bytes: flushes
    assert.are.equal(0, b.buffered)
    assert.are.equal(0, b.buffered_bytes)
    b:add({ 5 }, "gh")
    assert.are.equal(4, b:close())
    local got = {}
    for i, r in ipairs(db:query("select e::text, s from half order by s")) do got[i] = r.e .. " " .. r.s end
    assert.are.same({ "{1} ab", "{2} cd", "{3,4} ef", "{5} gh" }, got)
  end)

  it("refuses int8 numbers beyond 2^53 and a rows option out of range", function()
    db:exec("create table big8 (id int, n int8)")
    local b = db:batch("big8", { "id", "n" })
    local err = error_of(b.add, b, 1, 1e18 + 1)
    assert.are.equal('batch:add: row 1, column "n": expected an int64 cdata '
      .. "(e.g. 1000000000000000001LL) or a string for an integer beyond +-2^53 "
      .. "(a Lua number that large may have been rounded), got number",
      err.message)
    assert.are.equal("22003", err.sqlstate)
    assert.are.equal(0, b.buffered_bytes)
    b:add(1, 2^53)
    b:add(2, -2^53)
    b:add(3, 1000000000000000001LL)
    b:add(4, "1000000000000000001")
    assert.are.equal(4, b:close())
    local got = {}
    for i, r in ipairs(db:query("select n::text from big8 order by id")) do got[i] = r.n end
    assert.are.same({ "9007199254740992", "-9007199254740992", "1000000000000000001",
                      "1000000000000000001" }, got)
    err = error_of(db.batch, db, "big8", { "id" }, { rows = 2^31 - 1 })
    assert.are.equal("batch: rows must be an integer from 1 to 10000000, got 2147483647",
                     err:match("batch: .*$"))
    assert.are.equal(0, db:batch("big8", { "id" }, { rows = 1e7 }):close())
  end)

  it("upserts with on_conflict DO UPDATE and DO NOTHING", function()
    db:exec("create table oc (host text, ts int, v float8, primary key (host, ts))")
    db:exec("insert into oc values ('a', 1, 1), ('b', 2, 2)")
    local b = db:batch("oc", { "host", "ts", "v" },
      { on_conflict = "(host, ts) DO UPDATE SET v = excluded.v" })
    b:add("a", 1, 10); b:add("c", 3, 30)
    b:close()
    assert.are.same({ { host = "a", v = 10 }, { host = "b", v = 2 }, { host = "c", v = 30 } },
      db:query("select host, v from oc order by host"))
    b = db:batch("oc", { "host", "ts", "v" }, { on_conflict = "DO NOTHING" })
    b:add("a", 1, 99); b:add("d", 4, 40)
    b:close()
    assert.are.same({ { host = "a", v = 10 }, { host = "b", v = 2 }, { host = "c", v = 30 },
                      { host = "d", v = 40 } },
      db:query("select host, v from oc order by host"))
  end)

  it("returns RETURNING rows in input order, from flush and on_returning", function()
    db:exec("create table ret (id serial primary key, name text)")
    local seen = {}
    local b = db:batch("ret", { "name" }, {
      rows = 300, returning = { "id", "name" },
      on_returning = function(rows) for _, r in ipairs(rows) do seen[#seen + 1] = r end end,
    })
    local names = {}
    for i = 1, 700 do
      names[i] = ("n%05d"):format((i * 7919) % 1000)
      b:add(names[i])
    end
    local n, rows = b:flush()                -- the last 100
    assert.are.equal(100, n)
    assert.are.equal(100, #rows)
    assert.are.equal(names[601], rows[1].name)
    b:close()
    assert.are.equal(700, #seen)
    local by_id = {}
    for _, r in ipairs(db:query("select id, name from ret")) do by_id[r.id] = r.name end
    for i, r in ipairs(seen) do
      assert.are.equal(names[i], r.name)
      assert.are.equal(names[i], by_id[r.id])
      if i > 1 then assert.is_true(r.id > seen[i - 1].id) end
    end
  end)

  it("a failing flush keeps the earlier flushes and none of its rows", function()
    db:exec("create table fail (id int primary key)")
    db:exec("insert into fail values (-2500)")
    local b = db:batch("fail", { "id" }, { rows = 1000 })
    local err = error_of(function()
      for i = 1, 5000 do b:add(i == 2500 and -2500 or i) end
    end)
    assert.are.equal(
      "batch: rows 2001-3000 were not inserted (this flush was rolled back; "
      .. "rows 1-2000 were committed by earlier flushes): duplicate key value "
      .. "violates unique constraint \"fail_pkey\"", err.message)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal(2001, err.first_row)
    assert.are.equal(3000, err.last_row)
    assert.are.equal(2000, err.committed_rows)
    assert.are.equal(2001, count(db, "fail"))
    assert.are.equal(0, db:query_one("select count(*) as n from fail where id > 2000").n)
    assert.are.equal("idle", db:status())
    -- the batch goes on: numbering continues after the failed rows
    for i = 3001, 3500 do b:add(i) end
    assert.are.equal(3500, b:close())
    assert.are.equal(2501, count(db, "fail"))
  end)

  it("after a failed flush, a later error does not claim its rows were committed", function()
    db:exec("create table fail2 (id int primary key)")
    db:exec("insert into fail2 values (-1500), (-3500)")
    local b = db:batch("fail2", { "id" }, { rows = 1000 })
    local err = error_of(function() for i = 1, 2000 do b:add(i == 1500 and -1500 or i) end end)
    assert.are.equal(1000, err.committed_rows)
    err = error_of(function() for i = 2001, 4000 do b:add(i == 3500 and -3500 or i) end end)
    assert.are.equal(
      "batch: rows 3001-4000 were not inserted (this flush was rolled back; earlier flushes "
      .. "committed 2000 of rows 1-3000 (earlier errors named the others)): duplicate key value "
      .. "violates unique constraint \"fail2_pkey\"",
      err.message)
    assert.are.equal(2000, err.committed_rows)
    assert.are.equal(2000 + 2, count(db, "fail2"))
    assert.are.equal(2000, b.rows_committed)
    b:close()
  end)

  it("a failing split flush rolls back all of its statements", function()
    local cols = wide_table("wide_fail")
    db:exec("insert into wide_fail (id) values (-4000)")
    local b = db:batch("wide_fail", cols, { rows = 5000 })
    local err = error_of(function()
      for i = 1, 5000 do
        local r = wide_row(i)
        if i == 4000 then r[1] = -4000 end   -- in the second statement
        b:add(unpack(r))
      end
    end)
    assert.are.equal(
      "batch: rows 1-5000 were not inserted (this flush was rolled back; no "
      .. "earlier rows were committed): duplicate key value violates unique "
      .. "constraint \"wide_fail_pkey\"", err.message)
    assert.are.equal(1, count(db, "wide_fail"))
    assert.are.equal("idle", db:status())
    b:close()
  end)

  it("with transaction = \"caller\" and no transaction open, commits a split flush whole", function()
    local cols = wide_table("wide_callr")
    db:exec("insert into wide_callr (id) values (-4000)")
    local b = db:batch("wide_callr", cols, { rows = 5000, transaction = "caller" })
    local err = error_of(function()
      for i = 1, 5000 do
        local r = wide_row(i)
        if i == 4000 then r[1] = -4000 end   -- in the second statement
        b:add(unpack(r))
      end
    end)
    -- the first statement's rows are not left behind, and the message
    -- says so instead of speaking of a caller's transaction
    assert.are.equal(1, count(db, "wide_callr"))
    assert.are.equal(
      "batch: rows 1-5000 were not inserted (this flush was rolled back; no "
      .. "earlier rows were committed): duplicate key value violates unique "
      .. "constraint \"wide_callr_pkey\"", err.message)
    assert.are.equal(0, err.committed_rows)
    assert.are.equal("idle", db:status())
    b:close()
  end)

  it("runs inside the caller's transaction with transaction = \"caller\"", function()
    db:exec("create table callr (id int primary key)")
    db:begin()
    local b = db:batch("callr", { "id" }, { rows = 10, transaction = "caller" })
    for i = 1, 25 do b:add(i) end
    b:close()
    assert.are.equal(25, count(db, "callr"))
    db:rollback()
    assert.are.equal(0, count(db, "callr"))
    -- a failure aborts the caller's transaction and says so
    db:begin()
    b = db:batch("callr", { "id" }, { rows = 10, transaction = "caller" })
    local err = error_of(function() for i = 1, 25 do b:add(i % 15) end end)
    assert.are.equal(
      "batch: rows 11-20 were not inserted (transaction = \"caller\": the "
      .. "caller's transaction is aborted; roll it back): duplicate key value "
      .. "violates unique constraint \"callr_pkey\"", err.message)
    assert.are.equal("inerror", db:status())
    db:rollback()
    b:close()
  end)

  it("on_reject keeps the good rows of a failing flush and hands over each bad one", function()
    db:exec("create table rej (id int primary key, qty int check (qty >= 0), note text)")
    db:exec("insert into rej values (1500, 0, 'there before')")
    local rejected, ids = {}, {}
    local b = db:batch("rej", { "id", "qty", "note" }, {
      rows = 1000, returning = "id",
      on_returning = function(rows) for _, x in ipairs(rows) do ids[#ids + 1] = x.id end end,
      on_reject = function(values, err, row)
        rejected[#rejected + 1] = { values = values, sqlstate = err.sqlstate, row = row,
                                    constraint = err.constraint }
      end,
    })
    for i = 1, 3000 do
      -- row 1500 repeats a key, row 2222 breaks the check, row 2500 has a NULL note
      b:add(i, i == 2222 and -1 or i % 7, i ~= 2500 and ("n" .. i) or nil)
    end
    local n = b:close()
    assert.are.equal(3000, n)
    assert.are.same({
      { values = { "1500", "2", "n1500" }, sqlstate = "23505", row = 1500, constraint = "rej_pkey" },
      { values = { "2222", "-1", "n2222" }, sqlstate = "23514", row = 2222, constraint = "rej_qty_check" },
    }, rejected)
    -- every other row is in, with its values; the row already there is untouched
    assert.are.equal(2999, count(db, "rej"))
    local r = db:query_one("select count(*) as n, sum(qty) as q, "
                           .. "count(*) filter (where note is null) as nulls from rej where id <> 1500")
    local want_q = 0
    for i = 1, 3000 do if i ~= 1500 and i ~= 2222 then want_q = want_q + i % 7 end end
    assert.are.same({ n = 2998, q = want_q, nulls = 1 }, r)
    assert.are.equal("there before", db:query_one("select note from rej where id = 1500").note)
    -- RETURNING still comes back in input order, without the rejected rows
    local want_ids = {}
    for i = 1, 3000 do if i ~= 1500 and i ~= 2222 then want_ids[#want_ids + 1] = i end end
    assert.are.same(want_ids, ids)
    assert.are.equal("idle", db:status())
  end)

  it("on_reject in the caller's transaction uses savepoints and keeps the transaction alive", function()
    db:exec("create table rejc (id int primary key)")
    db:begin()
    local bad = {}
    local b = db:batch("rejc", { "id" }, { rows = 10, transaction = "caller",
                                           on_reject = function(v, _, row) bad[#bad + 1] = row .. ":" .. v[1] end })
    for i = 1, 25 do b:add(i % 15) end -- 15..24 repeat 0..9 (0 is new)
    b:close()
    assert.are.equal("intrans", db:status())
    db:commit()
    assert.are.same({ "16:1", "17:2", "18:3", "19:4", "20:5", "21:6", "22:7", "23:8", "24:9", "25:10" },
                    bad)
    assert.are.equal(15, count(db, "rejc"))
  end)

  it("on_reject may add() a corrected row; its own error names the rows it did not get", function()
    db:exec("create table rejf (id int primary key, qty int check (qty >= 0))")
    local b
    b = db:batch("rejf", { "id", "qty" }, { rows = 10, on_reject = function(v)
      b:add(tonumber(v[1]), 0) -- fixed, and queued again
    end })
    b:add(1, 5); b:add(2, -1); b:add(3, 7)
    assert.are.equal(3, b:flush())
    assert.are.equal(1, b.buffered)
    assert.are.equal(4, b:close())
    assert.are.equal("1:5,2:0,3:7",
                     db:query_one("select string_agg(id || ':' || qty, ',' order by id) as s from rejf").s)
    -- on_reject raising: the good rows are in, and the error says what it missed
    db:exec("truncate rejf")
    b = db:batch("rejf", { "id", "qty" }, { rows = 10, on_reject = function(_, _, row)
      error("no room for row " .. row, 0)
    end })
    for i = 1, 6 do b:add(i, i % 3 == 0 and -1 or i) end
    local err = error_of(function() b:flush() end)
    assert.are.equal("batch: on_reject raised for row 3 (the other rows of the flush are inserted; "
                     .. "rejected rows not handed over: 6): no room for row 3", err)
    assert.are.equal("1,2,4,5", db:query_one("select string_agg(id::text, ',' order by id) as s from rejf").s)
    b:close()
  end)

  it("on_reject with transaction = \"caller\" and no transaction open just autocommits", function()
    db:exec("create table rejn (id int primary key)")
    local b = db:batch("rejn", { "id" }, { rows = 10, transaction = "caller", on_reject = function() end })
    b:add(1); b:add(1); b:add(2)
    assert.are.equal(3, b:close())
    assert.are.equal(2, count(db, "rejn"))
    assert.are.equal("idle", db:status())
  end)

  it("on_reject leaves no savepoint behind, and a failed flush keeps the caller's transaction", function()
    db:exec("create table rejs (id int primary key)")
    db:begin()
    local b = db:batch("rejs", { "id" }, { rows = 10, transaction = "caller", on_reject = function() end })
    for i = 1, 10 do b:add(i % 7) end -- 7..9 repeat 0..2
    b:flush()
    -- a savepoint still open would make this RELEASE succeed
    local ok = pcall(db.exec, db, "RELEASE SAVEPOINT sluice_batch")
    assert.is_false(ok)
    db:rollback()
    db:begin()
    b:add(1)
    db:exec("alter table rejs rename to rejs_gone")
    local err = error_of(function() b:flush() end)
    assert.are.equal("batch: rows 11-11 were not inserted (transaction = \"caller\": this flush was "
                     .. "rolled back to a savepoint; the caller's transaction goes on): relation "
                     .. "\"rejs\" does not exist", err.message)
    assert.are.equal("intrans", db:status())
    db:rollback()
    b:close()
  end)

  it("on_reject does not swallow errors that are not a row's fault", function()
    db:exec("create table rejx (id int primary key)")
    local called = 0
    local b = db:batch("rejx", { "id" }, { rows = 5, on_reject = function() called = called + 1 end })
    for i = 1, 3 do b:add(i) end
    db:exec("alter table rejx rename to rejx_gone") -- the statement no longer finds its table
    local err = error_of(function() b:flush() end)
    assert.are.equal(0, called)
    assert.matches("^batch: rows 1%-3 were not inserted", err.message)
    assert.are.equal("42P01", err.sqlstate)
    b:close()
    assert.has_error(function() db:batch("rejx_gone", { "id" }, { on_reject = 1 }) end,
                     "batch: on_reject must be a function(values, err, row)")
  end)

  it("refuses per_flush inside an open transaction, keeping the rows", function()
    db:exec("create table pf (id int)")
    local b = db:batch("pf", { "id" }, { rows = 10 })
    b:add(1)
    db:begin()
    local err = error_of(b.flush, b)
    assert.matches("transaction = \"per_flush\" commits each flush, but a "
      .. "transaction is open on the connection (status intrans); pass "
      .. "transaction = \"caller\" to flush inside it", err, 1, true)
    db:rollback()
    assert.are.equal(1, b.buffered)
    b:close()
    assert.are.equal(1, count(db, "pf"))
  end)

  it("raises a wrong value count at the caller's line", function()
    db:exec("create table vc (a int, b text, c float8)")
    local b = db:batch("vc", { "a", "b", "c" })
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() b:add(1, "x") end)
    assert.is_false(ok)
    assert.are.equal(("tests/batch_spec.lua:%d: batch:add: expected 3 values "
      .. "(one per column), got 2"):format(line), err:match("tests/.*$"))
    b:add(1, "x", 0.5)
    assert.are.equal(1, b:close())
  end)

  it("encodes NULL, int64, arrays, json and bytea by column type", function()
    db:exec("create table kinds (id int, n int8, a text[], j jsonb, by bytea, d date, s text)")
    local b = db:batch("kinds", { "id", "n", "a", "j", "by", "d", "s" })
    b:add(1, 9007199254740993LL, { "x", "y,z", 'q"' }, { k = { 1, 2 } }, "\0\1\255", 86400, require("sluice").null)
    b:add(2, nil, {}, "[1]", "", "2024-01-02", nil)
    b:close()
    local r = db:query("select id, n::text, a::text, j::text, encode(by, 'hex') as by, d::text, s from kinds order by id")
    assert.are.same({ id = 1, n = "9007199254740993", a = '{x,"y,z","q\\""}',
                      j = '{"k": [1, 2]}', by = "0001ff", d = "1970-01-02", s = require("sluice").null }, r[1])
    assert.are.equal("[1]", r[2].j)
    assert.are.equal("{}", r[2].a)
    local err = error_of(function() local bb = db:batch("kinds", { "s" }); bb:add({}) end)
    assert.matches('batch:add: row 1, column "s": expected a string, number, boolean '
      .. 'or nil (tables only for array, json and vector columns), got table', err.message, 1, true)
  end)

  it("reports a bad column when the batch is made", function()
    db:exec("create table bc (a int)")
    local err = error_of(db.batch, db, "bc", { "nope" })
    assert.are.equal('column "nope" of relation "bc" does not exist', err.message)
  end)
end)
