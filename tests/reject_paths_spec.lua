-- luacheck: std +busted
-- Reject mode on the paths that move staged rows or pipeline them:
-- db:upsert{on_reject}, sluice.settle.move (an UNLOGGED staging table's
-- move) and db:pipeline{on_reject}.  Each against the server: scattered
-- bad rows of every kind, the table's exact contents, the exact rows,
-- SQLSTATEs and row numbers handed to on_reject.
local H = require "helper"
local sluice = require "sluice"
local settle = require "sluice.settle"

local error_of = H.error_of

-- The rows given to on_reject, as {row, sqlstate} pairs, and their values.
local function collector()
  local got, vals = {}, {}
  return got, vals, function(values, err, row)
    assert(type(err) == "table" and err.sqlstate, "on_reject gets the error object")
    got[#got + 1] = { row, err.sqlstate }
    vals[row] = values
  end
end

-- The target of the upsert and settle specs: a key, a CHECK, a NOT NULL,
-- a foreign key, a unique index other than the key, a short varchar.
local function make_target(db, name)
  db:exec(([[
    create table %s (id int primary key, v int not null check (v >= 0),
                     ref int references parent (id), code varchar(6) unique)]]):format(name))
end

-- n input rows for {id, v, ref, code} with scattered bad rows of each
-- kind; returns the rows and, per row, its fault (a SQLSTATE) or nil.
-- kinds: "copy" faults are refused by the staging COPY; the others by the
-- move.  Keys repeat: rows 251.. reuse ids 1..50.
local function upsert_input(n)
  local rows, fault = {}, {}
  for i = 1, n do
    local id = i <= 250 and i or (i - 250)
    local r = { id, i, (i % 7) + 1, "c" .. i }
    if i % 37 == 0 then r[2] = "x" .. i; fault[i] = "22P02"          -- not an int
    elseif i % 41 == 0 then r[2] = -i; fault[i] = "23514"            -- CHECK
    elseif i % 43 == 0 then r[2] = sluice.null; fault[i] = "23502"   -- NOT NULL
    elseif i % 47 == 0 then r[3] = 999; fault[i] = "23503"           -- foreign key
    elseif i % 53 == 0 then r[4] = "toolong" .. i; fault[i] = "22001" -- too long (COPY)
    elseif i % 59 == 0 then r = { id, i }; fault[i] = "22P04"        -- wrong count
    elseif i % 61 == 0 and i > 100 then                              -- code taken
      r[4] = "c" .. (i - 30); fault[i] = "23505"
    end
    rows[i] = r
  end
  return rows, fault
end

local COPY_FAULT = { ["22P02"] = true, ["22P04"] = true, ["22001"] = true }

-- What the upsert must leave: the table (id -> {v, ref, code}) and the
-- rejections, from the input and the rows the table held before.
local function upsert_model(rows, fault, before)
  local want, winner = {}, {}
  for id, r in pairs(before) do want[id] = r end
  for i, r in ipairs(rows) do
    if not COPY_FAULT[fault[i]] then winner[r[1]] = i end
  end
  local rejected = {}
  for i = 1, #rows do
    local f = fault[i]
    if COPY_FAULT[f] or (f and winner[rows[i][1]] == i) then
      rejected[#rejected + 1] = { i, f }
    end
  end
  for id, i in pairs(winner) do
    if not fault[i] then
      local r = rows[i]
      want[id] = { r[2], r[3], r[4] }
    end
  end
  return want, rejected
end

local function table_of(db, name)
  local t = {}
  for _, r in ipairs(db:query("select id, v, ref, code from " .. name)) do
    t[r.id] = { r.v, r.ref, r.code }
  end
  return t
end

describe("reject mode", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "reject_paths_spec")
    db:exec("create table parent (id int primary key)")
    db:exec("insert into parent select generate_series(1, 10)")
  end)
  teardown(function()
    db:exec("DROP SCHEMA reject_paths_spec CASCADE")
    db:close()
  end)

  describe("db:upsert", function()
    local function run(name, opts, n, before_rows)
      make_target(db, name)
      local before = {}
      for _, r in ipairs(before_rows or {}) do
        db:query("insert into " .. name .. " values ($1, $2, $3, $4)", r[1], r[2], r[3], r[4])
        before[r[1]] = { r[2], r[3], r[4] }
      end
      local rows, fault = upsert_input(n)
      local got, vals, on_reject = collector()
      opts.on_reject = on_reject
      local up = db:upsert(name, { "id", "v", "ref", "code" }, opts)
      for i = 1, 150 do up:row(unpack(rows[i])) end
      local list = {}
      for i = 151, n do list[#list + 1] = rows[i] end
      up:rows(list)
      local changed, staged, nrej = up:finish()
      return rows, fault, before, got, vals, changed, staged, nrej, up
    end

    it("sets aside each kind of bad row, with its row number, and upserts the rest", function()
      local before_rows = {}
      for id = 1, 20 do before_rows[id] = { id, 1000 + id, 1, "old" .. id } end
      local rows, fault, before, got, vals, changed, staged, nrej, up =
        run("ut", { key = "id", reject_chunk = 40 }, 320, before_rows)
      local want, rejected = upsert_model(rows, fault, before)
      assert.are.same(want, table_of(db, "ut"))
      assert.are.same(rejected, got)
      -- every kind is there, the COPY's and the move's
      local kinds = {}
      for _, r in ipairs(got) do kinds[r[2]] = true end
      assert.are.same({ ["22P02"] = true, ["22P04"] = true, ["22001"] = true, ["23514"] = true,
                        ["23502"] = true, ["23503"] = true, ["23505"] = true }, kinds)
      local copy_rej = 0
      for _, r in ipairs(rejected) do if COPY_FAULT[r[2]] then copy_rej = copy_rej + 1 end end
      assert.are.equal(320 - copy_rej, staged)
      assert.are.equal(#rejected, nrej)
      assert.are.equal(#rejected, up.rows_rejected)
      -- the winners that were moved (inserted or updated)
      local moved = 0
      local seen = {}
      for i = 320, 1, -1 do
        local id = rows[i][1]
        if not COPY_FAULT[fault[i]] and not seen[id] then
          seen[id] = true
          if not fault[i] then moved = moved + 1 end
        end
      end
      assert.are.equal(moved, changed)
      -- values: the COPY's as given, the move's as staged text
      assert.are.same(rows[37], vals[37])                          -- {37, "x37", 3, "c37"}
      assert.are.same({ 59, 59 }, vals[59])                        -- the wrong count as given
      -- (ids above 70 are not given again)
      assert.are.same({ "82", "-82", tostring(82 % 7 + 1), "c82" }, vals[82]) -- CHECK: staged
      assert.are.same({ "86", nil, tostring(86 % 7 + 1), "c86" }, vals[86])
      assert.are.same("idle", db:status())
      assert.are.equal(0, db:query_one(
        "select count(*) as n from pg_class where relname like 'sluice_upsert_%'").n)
    end)

    it("a clean run upserts everything and rejects nothing", function()
      make_target(db, "uc")
      local n = 0
      local up = db:upsert("uc", { "id", "v", "ref", "code" },
        { key = "id", on_reject = function() n = n + 1 end })
      for i = 1, 300 do up:row(i, i, 1, "c" .. i) end
      local changed, staged, nrej = up:finish()
      assert.are.same({ 300, 300, 0, 0 }, { changed, staged, nrej, n })
      assert.are.equal(300, H.count(db, "uc"))
      assert.are.equal(300 * 301 / 2, db:query_one("select sum(v) as s from uc").s)
    end)

    it("works inside the caller's transaction, and the caller decides", function()
      make_target(db, "utx")
      db:exec("insert into utx values (1, 5, 1, 'keep')")
      db:begin()
      db:exec("insert into utx values (2, 5, 1, 'mine')")
      local rows, fault = upsert_input(200)
      local got, _, on_reject = collector()
      local up = db:upsert("utx", { "id", "v", "ref", "code" },
        { key = "id", on_reject = on_reject, reject_chunk = 64 })
      for i = 1, 200 do up:row(unpack(rows[i])) end
      up:finish()
      assert.are.equal("intrans", db:status())
      local want, rejected = upsert_model(rows, fault, { [1] = { 5, 1, "keep" }, [2] = { 5, 1, "mine" } })
      assert.are.same(rejected, got)
      assert.are.same(want, table_of(db, "utx"))
      db:rollback()
      assert.are.same({ [1] = { 5, 1, "keep" } }, table_of(db, "utx"))
    end)

    it("the last staged row of a key wins; when it is refused the key keeps its row", function()
      make_target(db, "ud")
      db:exec("insert into ud values (1, 1, 1, 'one'), (2, 2, 1, 'two')")
      local got, _, on_reject = collector()
      local up = db:upsert("ud", { "id", "v", "ref", "code" }, { key = "id", on_reject = on_reject })
      up:rows({ { 1, 10, 1, "a" }, { 2, -1, 1, "b" }, { 1, -2, 1, "c" }, { 2, 20, 1, "d" },
                { 3, 30, 1, "e" }, { 3, 31, 999, "f" } })
      assert.are.same({ 1, 6, 2 }, { up:finish() })
      -- row 2 (bad) was superseded by row 4; row 3 (bad) is key 1's last
      assert.are.same({ { 3, "23514" }, { 6, "23503" } }, got)
      assert.are.same({ [1] = { 1, 1, "one" }, [2] = { 20, 1, "d" } }, table_of(db, "ud"))
    end)

    it("on_reject raising: every rejection is handed over, the upsert stays committed", function()
      make_target(db, "ur")
      local seen = {}
      local up = db:upsert("ur", { "id", "v", "ref", "code" }, { key = "id",
        on_reject = function(_, _, row)
          seen[#seen + 1] = row
          if row == 3 then error("no thanks") end
        end })
      up:rows({ { 1, 1, 1, "a" }, { 2, "bad", 1, "b" }, { 3, -3, 1, "c" }, { 4, 4, 1, "d" },
                { 5, 5, 999, "e" } })
      local err = error_of(up.finish, up)
      assert.are.same({ 2, 3, 5 }, seen)
      assert.matches("^upsert: on_reject raised for row 3 %(the upsert is committed: 4 rows "
        .. "staged, 2 inserted or updated, 3 rejected; every other rejected row was handed "
        .. "over%): .*no thanks$", tostring(err))
      assert.are.same({ [1] = { 1, 1, "a" }, [4] = { 4, 1, "d" } }, table_of(db, "ur"))
      assert.are.equal("finished", up.state)
      assert.are.equal("idle", db:status())
    end)

    it("an error that is no row's fault rolls everything back and says so", function()
      make_target(db, "ue")
      db:exec("insert into ue values (1, 1, 1, 'old')")
      -- a trigger that sleeps past the statement timeout on one row
      db:exec([[create function ue_slow() returns trigger language plpgsql as $$
                begin if new.v = 777 then perform pg_sleep(5); end if; return new; end $$]])
      db:exec("create trigger ue_slow before insert or update on ue for each row execute function ue_slow()")
      local n = 0
      db:exec("SET statement_timeout = '300ms'")
      local up = db:upsert("ue", { "id", "v", "ref", "code" },
        { key = "id", on_reject = function() n = n + 1 end })
      up:rows({ { 1, 2, 1, "new" }, { 2, -1, 1, "b" }, { 3, 777, 1, "c" }, { 4, 4, 1, "d" } })
      local err = error_of(up.finish, up)
      db:exec("RESET statement_timeout")
      assert.are.equal("57014", err.sqlstate)
      assert.are.equal(0, err.committed_rows)
      assert.matches("^upsert: nothing was committed %(everything the upsert did was rolled "
        .. "back%): canceling statement due to statement timeout", err.message)
      assert.are.equal(0, n)
      assert.are.same({ [1] = { 1, 1, "old" } }, table_of(db, "ue"))
      assert.are.equal("idle", db:status())
    end)
  end)

  describe("settle.move (an UNLOGGED staging table)", function()
    -- Stage rows by COPY in reject mode into an UNLOGGED table with an
    -- identity column, as a load's staging would, then settle the move.
    local function stage(name, rows, chunk)
      db:exec(("create unlogged table %s_stage as select id, v, ref, code from %s with no data")
        :format(name, name))
      db:exec(("alter table %s_stage add column sluice_seq bigint generated always as identity")
        :format(name))
      local copy_rej = {}
      local cp = db:copy(name .. "_stage", { "id", "v", "ref", "code" }, {
        format = "text", reject_chunk = chunk,
        on_reject = function(values, err, row) copy_rej[#copy_rej + 1] = { values, err, row } end })
      for _, r in ipairs(rows) do cp:row(unpack(r, 1, #r)) end
      cp:finish()
      return copy_rej
    end

    local function move(name, copy_rej)
      local skipped = {}
      for i, r in ipairs(copy_rej) do skipped[i] = r[3] end
      local stg = name .. "_stage"
      return settle.move(db, {
        staging = stg, columns = { "id", "v", "ref", "code" }, skipped = skipped,
        sql = function(where)
          return ("insert into %s (id, v, ref, code) select id, v, ref, code from %s%s "
            .. "order by sluice_seq"):format(name, stg, where and (" where " .. where) or "")
        end,
      })
    end

    -- distinct ids: every row is its own
    local function input(n)
      local rows, fault = upsert_input(n)
      for i, r in ipairs(rows) do
        r[1] = i
        if fault[i] == "22P04" then rows[i] = { i, sluice.null, r[2], "c" .. i } end
      end
      return rows, fault
    end

    for _, in_tx in ipairs({ false, true }) do
      it(("moves the good rows and numbers the refused ones as input rows (%s)")
          :format(in_tx and "in a transaction" or "autocommit"), function()
        local name = in_tx and "st_tx" or "st"
        make_target(db, name)
        local rows, fault = input(300)
        if in_tx then db:begin() end
        local copy_rej = stage(name, rows, 25)
        -- the COPY sent refused chunks again: identity values were used up
        local s = db:query_one(("select count(*) as n, max(sluice_seq) as m from %s_stage"):format(name))
        assert.is_true(s.m > s.n)
        local moved, rejected = move(name, copy_rej)
        if in_tx then
          assert.are.equal("intrans", db:status())
          db:commit()
        end
        local got, vals, on_reject = collector()
        assert.is_nil(settle.hand_over(on_reject, copy_rej, rejected))
        local want_rej, want = {}, {}
        for i = 1, 300 do
          if fault[i] then
            want_rej[#want_rej + 1] = { i, fault[i] == "22P04" and "23502" or fault[i] }
          else
            want[i] = { rows[i][2], rows[i][3], rows[i][4] }
          end
        end
        assert.are.same(want_rej, got)
        assert.are.same(want, table_of(db, name))
        local n = 0
        for _ in pairs(want) do n = n + 1 end
        assert.are.equal(n, moved)
        assert.are.same({ "41", "-41", "7", "c41" }, vals[41])
        assert.are.same({ 37, "x37", 3, "c37" }, vals[37])
      end)
    end

    it("a clean move is one statement", function()
      make_target(db, "sc")
      local rows = {}
      for i = 1, 200 do rows[i] = { i, i, 1, "c" .. i } end
      local copy_rej = stage("sc", rows, 50)
      local moved, rejected = move("sc", copy_rej)
      assert.are.same({ 200, {} }, { moved, rejected })
      assert.are.equal(200, H.count(db, "sc"))
      -- no index was needed
      assert.are.equal(0, db:query_one(
        "select count(*) as n from pg_indexes where tablename = 'sc_stage'").n)
    end)

    it("an error that is no row's fault stops it and says what was moved", function()
      make_target(db, "sx")
      local rows = {}
      for i = 1, 100 do rows[i] = { i, i == 50 and -1 or i, 1, "c" .. i } end
      local copy_rej = stage("sx", rows, 100)
      db:exec([[create function sx_slow() returns trigger language plpgsql as $$
                begin if new.v = 80 then perform pg_sleep(5); end if; return new; end $$]])
      db:exec("create trigger sx_slow before insert on sx for each row execute function sx_slow()")
      db:exec("SET statement_timeout = '300ms'")
      local err = error_of(move, "sx", copy_rej)
      db:exec("RESET statement_timeout")
      assert.are.equal("57014", err.sqlstate)
      -- autocommit: the ranges before the one that stopped are committed
      assert.are.equal(err.moved_rows, H.count(db, "sx"))
      assert.are.equal(49, err.moved_rows)
      assert.are.equal(49, db:query_one("select max(id) as m from sx").m)
      assert.are.equal(50, err.settled_seq)
      assert.are.equal(1, #err.rejected)
      assert.are.equal(50, err.rejected[1].row)
    end)
  end)

  describe("db:pipeline", function()
    -- n rows for insert into <t> (id, v, ref, code) with scattered bad
    -- rows: values as sent, and per row the SQLSTATE expected (rows run in
    -- order: a duplicate id is refused when its first row went in)
    local function input(n)
      local rows, fault, inserted = {}, {}, {}
      for i = 1, n do
        local r = { i, i, (i % 7) + 1, "c" .. i }
        local f
        if i % 37 == 0 then r[2] = "x" .. i; f = "22P02"
        elseif i % 41 == 0 then r[2] = -i; f = "23514"
        elseif i % 43 == 0 then r[2] = nil; f = "23502"
        elseif i % 47 == 0 then r[3] = 999; f = "23503"
        elseif i % 29 == 0 then r[1] = i - 13; if inserted[i - 13] then f = "23505" end
        end
        if not f then inserted[r[1]] = i end
        rows[i], fault[i] = r, f
      end
      return rows, fault
    end

    local function want_of(rows, fault)
      local want, rejected = {}, {}
      for i, r in ipairs(rows) do
        if fault[i] then rejected[#rejected + 1] = { i, fault[i] }
        else want[r[1]] = { r[2], r[3], r[4] } end
      end
      return want, rejected
    end

    local function make(name)
      db:exec(("create table %s (id int primary key, v int not null check (v >= 0), "
        .. "ref int references parent (id), code text)"):format(name))
    end

    local function send_all(pl, rows, from, to)
      for i = from or 1, to or #rows do
        local r = rows[i]
        pl:send(r[1], r[2], r[3], r[4])
      end
    end

    for _, every in ipairs({ 50, 7, 1000 }) do
      it(("sets aside each kind of bad row and inserts exactly the others (sync_every %d)")
          :format(every), function()
        local name = "pl_" .. every
        make(name)
        local rows, fault = input(400)
        local got, vals, on_reject = collector()
        local pl = db:pipeline(("insert into %s values ($1, $2, $3, $4)"):format(name),
          { sync_every = every, on_reject = on_reject })
        send_all(pl, rows, 1, 200)
        local done = pl:sync()
        send_all(pl, rows, 201, 400)
        assert.are.equal(400, pl:close())
        local want, rejected = want_of(rows, fault)
        assert.are.same(rejected, got)
        assert.are.same(want, table_of(db, name))
        local kinds = {}
        for _, r in ipairs(got) do kinds[r[2]] = true end
        assert.are.same({ ["22P02"] = true, ["23514"] = true, ["23502"] = true,
                          ["23503"] = true, ["23505"] = true }, kinds)
        assert.are.equal(200, done)
        assert.are.equal(#rejected, pl.rows_rejected)
        local n = 0
        for _ in pairs(want) do n = n + 1 end
        assert.are.equal(n, pl.rows_committed)
        assert.are.equal(400, pl.rows_done)
        -- the values as sent: strings, nil for NULL
        assert.are.same({ "37", "x37", "3", "c37" }, vals[37])
        assert.are.same({ "43", nil, "2", "c43" }, vals[43])
        assert.are.same({ "45", "58", "3", "c58" }, vals[58])
        assert.are.equal("idle", db:status())
      end)
    end

    it("a clean run inserts everything", function()
      make("plc")
      local n = 0
      local pl = db:pipeline("insert into plc values ($1, $2, $3, $4)",
        { sync_every = 64, on_reject = function() n = n + 1 end })
      for i = 1, 500 do pl:send(i, i, 1, "c" .. i) end
      assert.are.equal(500, pl:close())
      assert.are.equal(0, n)
      assert.are.equal(500, H.count(db, "plc"))
      assert.are.equal(500, pl.rows_committed)
    end)

    it("inside the caller's transaction: a savepoint per group, the caller decides", function()
      make("pltx")
      db:begin()
      db:exec("insert into pltx values (1000, 1, 1, 'mine')")
      local rows, fault = input(300)
      local got, _, on_reject = collector()
      local pl = db:pipeline("insert into pltx values ($1, $2, $3, $4)",
        { sync_every = 40, on_reject = on_reject })
      send_all(pl, rows)
      pl:close()
      assert.are.equal("intrans", db:status())
      local want, rejected = want_of(rows, fault)
      want[1000] = { 1, 1, "mine" }
      assert.are.same(rejected, got)
      assert.are.same(want, table_of(db, "pltx"))
      assert.are.equal(0, pl.rows_committed)
      db:rollback()
      assert.are.equal(0, H.count(db, "pltx"))
    end)

    it("on_reject may send a corrected row", function()
      make("plfix")
      local pl
      pl = db:pipeline("insert into plfix values ($1, $2, $3, $4)", { sync_every = 10,
        on_reject = function(values)
          pl:send(tonumber(values[1]) + 1000, 0, 1, "fixed")
        end })
      for i = 1, 100 do pl:send(i, i % 30 == 0 and -1 or i, 1, "c" .. i) end
      assert.are.equal(103, pl:close())
      assert.are.equal(100, H.count(db, "plfix"))
      assert.are.same({ { id = 1030 }, { id = 1060 }, { id = 1090 } },
        db:query("select id from plfix where code = 'fixed' order by id"))
    end)

    it("on_reject raising ends the pipeline and says what was committed", function()
      make("plr")
      local seen = {}
      local pl = db:pipeline("insert into plr values ($1, $2, $3, $4)", { sync_every = 10,
        on_reject = function(_, _, row)
          seen[#seen + 1] = row
          if row == 25 then error("stop here") end
        end })
      local err = error_of(function()
        for i = 1, 100 do pl:send(i, (i == 5 or i == 25) and -1 or i, 1, "c" .. i) end
        pl:close()
      end)
      assert.are.same({ 5, 25 }, seen)
      local n = H.count(db, "plr")
      assert.are.equal(n, err.committed_rows)
      assert.is_true(n >= 18)
      assert.matches("^pipeline: on_reject raised for row 25 %(" .. n .. " rows were committed "
        .. "and 2 handed to on_reject; each row up to row " .. (n + 2)
        .. " is one or the other; no other row was committed%): .*stop here$", err.message)
      assert.are.equal("failed", pl.state)
      assert.are.equal("idle", db:status())
    end)

    it("an error that is no row's fault stops it and says what was committed", function()
      make("ple")
      db:exec([[create function ple_slow() returns trigger language plpgsql as $$
                begin if new.v = 777 then perform pg_sleep(5); end if; return new; end $$]])
      db:exec("create trigger ple_slow before insert on ple for each row execute function ple_slow()")
      local rows, fault = input(400)
      rows[250] = { 250, 777, 1, "slow" }
      fault[250] = nil
      db:exec("SET statement_timeout = '300ms'")
      local got, _, on_reject = collector()
      local pl = db:pipeline("insert into ple values ($1, $2, $3, $4)",
        { sync_every = 50, on_reject = on_reject })
      local err = error_of(function()
        send_all(pl, rows)
        pl:close()
      end)
      db:exec("RESET statement_timeout")
      assert.are.equal("57014", err.sqlstate)
      assert.are.equal(250, err.row)
      -- the groups before row 250's (groups shift as refused rows are
      -- sent again): rows 1-k committed or set aside, nothing after k
      local n, k = err.message:match("^pipeline: row 250: canceling statement due to "
        .. "statement timeout %((%d+) rows were committed and %d+ handed to on_reject; each "
        .. "row up to row (%d+) is one or the other; no other row was committed%)")
      n, k = tonumber(n), tonumber(k)
      assert.is_true(k >= 150 and k < 250, err.message)
      local want = want_of({ unpack(rows, 1, k) }, fault)
      assert.are.same(want, table_of(db, "ple"))
      assert.are.equal(n, H.count(db, "ple"))
      assert.are.equal(n, err.committed_rows)
      assert.are.equal(0, err.in_doubt_rows)
      -- every row set aside before row 250 was handed over (none after)
      local want_rej = {}
      for i = 1, 400 do if fault[i] and i < 250 then want_rej[#want_rej + 1] = { i, fault[i] } end end
      assert.are.same(want_rej, got)
      assert.are.equal("idle", db:status())
    end)
  end)
end)
