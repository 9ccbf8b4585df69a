-- sluice.load: every strategy and modifier loads the same contents;
-- drop_indexes restores the exact index definitions, also after a failure.
local H = require "helper"
local sluice = require "sluice"

local N = 20000
local EPOCH = 1700000000

-- row i: int pk, not-null text, float, timestamptz, text[] and jsonb
local function row(i)
  return { i, "name-" .. i % 97, i / 7, EPOCH + i, { "a", tostring(i % 5) }, { k = i % 3 } }
end

local function rows_iter(n, from)
  local i = (from or 1) - 1
  return function()
    i = i + 1
    if i <= n then return row(i) end
  end
end

describe("sluice.load", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "load_spec")
  end)
  teardown(function() db:close() end)

  local function fresh(name)
    db:exec(("drop table if exists %s; create table %s (id int primary key, name text not null, "
      .. "v float8, ts timestamptz, tags text[], j jsonb); create index %s_name on %s (name); "
      .. "create index %s_v on %s (v desc) where v > 100"):format(name, name, name, name, name, name))
  end

  local function digest(name)
    return db:query_one(("select count(*)::int8 as n, md5(string_agg(t::text, E'\\n' order by id)) as h from %s t")
      :format(name))
  end

  local function indexes(name)
    return db:query("select indexname, indexdef from pg_indexes where schemaname = 'load_spec' "
      .. "and tablename = $1 order by indexname", name)
  end

  local ref
  setup(function()
    fresh("ref")
    local cp = db:copy("ref")
    for i = 1, N do cp:row(unpack(row(i))) end
    cp:finish()
    ref = digest("ref")
  end)

  local cases = {
    { strategy = "rowwise_autocommit", n = 2000 },
    { strategy = "rowwise_tx", n = 2000 },
    { strategy = "rowwise_tx", commit_every = 300, n = 2000 },
    { strategy = "batch" },
    { strategy = "batch", batch_rows = 333, max_age_ms = 50 },
    { strategy = "pipeline" },
    { strategy = "copy_text" },
    { strategy = "copy_csv" },
    { strategy = "copy_binary" },
    { strategy = "upsert" },
    { strategy = "unlogged_staging" },
    { strategy = "copy_binary", drop_indexes = true },
    { strategy = "batch", drop_indexes = true },
    { strategy = "copy_text", freeze = true },
    { strategy = "copy_binary", synchronous_commit = "off" },
    { strategy = "copy_binary", connections = 3 },
    { strategy = "batch", connections = 2 },
    { strategy = "pipeline", connections = 2 },
  }
  for k, c in ipairs(cases) do
    local desc = {}
    for key, v in pairs(c) do if key ~= "n" then desc[#desc + 1] = key .. "=" .. tostring(v) end end
    table.sort(desc)
    it("loads identical contents: " .. table.concat(desc, " "), function()
      local t = "t" .. k
      fresh(t)
      local before = indexes(t)
      local n = c.n or N
      local opts = { db = db, table = t, rows = rows_iter(n), quiet = true }
      for key, v in pairs(c) do if key ~= "n" then opts[key] = v end end
      local s = sluice.load(opts)
      assert.are.equal(n, s.rows)
      assert.truthy(s.seconds > 0 and s.rows_per_s > 0 and s.bytes > 0 and s.mb_per_s > 0)
      assert.truthy(s.wal_bytes and s.wal_bytes > 0)
      local d = digest(t)
      if n == N then
        assert.are.same(ref, d)
      else
        assert.are.equal(n, d.n)
        local sub = db:query_one(("select md5(string_agg(t::text, E'\\n' order by id)) as h from ref t "
          .. "where id <= %d"):format(n))
        assert.are.equal(sub.h, d.h)
      end
      assert.are.same(before, indexes(t))
      assert.are.equal("idle", db:status())
      db:exec("drop table " .. t)
    end)
  end

  it("takes keyed rows and arrays, columns from the table", function()
    fresh("keyed")
    local list = {}
    for i = 1, 100 do
      local r = row(i)
      list[i] = { id = r[1], name = r[2], v = r[3], ts = r[4], tags = r[5], j = r[6] }
    end
    local s = sluice.load { db = db, table = "keyed", rows = list, strategy = "batch", quiet = true }
    assert.are.equal(100, s.rows)
    local sub = db:query_one("select md5(string_agg(t::text, E'\\n' order by id)) as h from ref t where id <= 100")
    assert.are.equal(sub.h, digest("keyed").h)
  end)

  it("drop_indexes recreates the exact indexes after a failure injected mid-load", function()
    fresh("failing")
    local before = indexes("failing")
    assert.are.equal(3, #before)
    local other = H.connect() -- db is busy with the load
    for _, strategy in ipairs { "copy_binary", "batch" } do
      local i = 0
      local ok, err = pcall(sluice.load, {
        db = db, table = "failing", strategy = strategy, drop_indexes = true, quiet = true,
        rows = function()
          i = i + 1
          if i == 5000 then
            -- the indexes are gone while the load runs
            assert.are.equal(1, #other:query("select 1 from pg_indexes where schemaname = "
              .. "'load_spec' and tablename = 'failing'"))
            error("injected failure at row 5000")
          end
          return row(i)
        end,
      })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("injected failure at row 5000", 1, true), tostring(err))
      assert.are.same(before, indexes("failing"))
      assert.are.equal("idle", db:status())
    end
    other:close()
    -- copy loads nothing; batch keeps the flushes committed before the failure
    assert.are.equal(4000, db:query_one("select count(*)::int as n from failing").n)
  end)

  it("drop_indexes recreates them after a server error too", function()
    fresh("dup")
    local before = indexes("dup")
    local ok, err = pcall(sluice.load, {
      db = db, table = "dup", strategy = "copy_text", drop_indexes = true, quiet = true,
      rows = { row(1), row(2), row(1) },
    })
    assert.is_false(ok)
    assert.are.equal("23505", err.sqlstate)
    assert.are.same(before, indexes("dup"))
    assert.are.equal(0, db:query_one("select count(*)::int as n from dup").n)
  end)

  for _, strategy in ipairs({ "batch", "rowwise_autocommit", "rowwise_tx" }) do
    it("on_reject sets refused rows aside and loads the others (" .. strategy .. ")", function()
      db:exec("drop table if exists rej; create table rej (id int primary key, qty int check (qty >= 0))")
      local list = {}
      for i = 1, 500 do list[i] = { i, (i % 97 == 0) and -i or i } end
      list[#list + 1] = { 7, 7 } -- a key already loaded
      local refused = {}
      local s = sluice.load { db = db, table = "rej", rows = list, strategy = strategy, quiet = true,
        batch_rows = strategy == "batch" and 100 or nil,
        on_reject = function(v, err, at) refused[#refused + 1] = at .. ":" .. v[1] .. ":" .. err.sqlstate end }
      assert.are.same({ "97:97:23514", "194:194:23514", "291:291:23514", "388:388:23514",
                        "485:485:23514", "501:7:23505" }, refused)
      assert.are.equal(501, s.rows)
      assert.are.equal(6, s.rejected)
      assert.are.equal(495, db:query_one("select count(*) as n from rej").n)
      assert.are.equal(0, db:query_one("select count(*) as n from rej where qty < 0").n)
      assert.are.equal("idle", db:status())
    end)
  end

  it("reports misuse with what to do", function()
    fresh("misuse")
    local function msg(opts)
      opts.db = opts.db == nil and db or opts.db
      opts.table = opts.table or "misuse"
      opts.rows = opts.rows or {}
      opts.quiet = true
      local ok, err = pcall(sluice.load, opts)
      assert.is_false(ok)
      return (tostring(err):gsub("^[^:]*:%d+: ", ""))
    end
    assert.are.equal("load: unknown strategy 'copy' (rowwise_autocommit, rowwise_tx, batch, pipeline, "
      .. "copy_text, copy_csv, copy_binary, upsert, unlogged_staging)", msg { strategy = "copy" })
    assert.are.equal("load: freeze = true needs a COPY strategy (copy_text, copy_csv, copy_binary), "
      .. "not \"batch\"", msg { strategy = "batch", freeze = true })
    assert.are.equal("load: connections = N works with copy_text, copy_csv, copy_binary, batch and "
      .. "pipeline, not \"rowwise_tx\"", msg { strategy = "rowwise_tx", connections = 2 })
    assert.are.equal("load: table \"nope\" does not exist", msg { table = "nope" })
    assert.are.equal("load: on_error = \"reject\" needs rejects = \"file.csv\" or on_reject = "
      .. "function(values, err, row) (a rejected row must go somewhere)",
      msg { on_error = "reject" })
    assert.are.equal("load: on_error must be \"abort\" or \"reject\", got skip",
      msg { on_error = "skip" })
    assert.are.equal("load: on_error = \"abort\" cannot take on_reject or rejects (they set rows "
      .. "aside: on_error = \"reject\")", msg { on_error = "abort", on_reject = function() end })
    assert.are.equal("load: max_rejects needs on_error = \"reject\"", msg { max_rejects = 3 })
    assert.are.equal("load: max_reject_ratio must be a number from 0 to 1, got 2",
      msg { on_reject = function() end, max_reject_ratio = 2 })
    assert.are.equal("load: reject_chunk must be an integer from 1 to 10000000 rows, got 0",
      msg { on_reject = function() end, reject_chunk = 0 })
    assert.are.equal("load: on_reject must be a function(values, err, row), got string",
      msg { strategy = "batch", on_reject = "x" })
    assert.truthy(msg { frob = 1 }:find("^load: unknown option 'frob' %(batch_rows, "))
    db:exec("insert into misuse values (1, 'x')")
    assert.are.equal("load: freeze = true needs an empty table (COPY FREEZE needs it truncated in "
      .. "the same transaction, and table \"misuse\" has rows): truncate it first or drop freeze",
      msg { strategy = "copy_binary", freeze = true })
    db:exec("create table nopk (a int)")
    assert.are.equal("load: strategy \"upsert\" needs key = {columns} (table \"nopk\" has no primary key)",
      msg { table = "nopk", strategy = "upsert", rows = { { 1 } } })
    -- the position is the caller's line
    local ok, err = pcall(function()
      sluice.load { db = db, table = "misuse", rows = {}, strategy = "x" }
    end)
    assert.is_false(ok)
    assert.truthy(err:find("load_spec.lua:%d+: load: unknown strategy"), err)
  end)

  -- issue: a row of the wrong width was padded with NULL or cut short
  it("refuses a row with more or fewer values than columns, or an unknown key, on every strategy", function()
    db:exec("drop table if exists wid; create table wid (id int primary key, a text, b int)")
    local cols = "(id, a, b)"
    local bad = {
      { row = { 3, "c" }, msg = "load: row 3: expected 3 values " .. cols .. ", got 2 "
        .. "(a NULL in the first or last column must be sluice.null, not nil)" },
      { row = { 3, "c", 3, 4 }, msg = "load: row 3: expected 3 values " .. cols .. ", got 4 "
        .. "(a NULL in the first or last column must be sluice.null, not nil)" },
      { row = { 3, "c", nil }, msg = "load: row 3: expected 3 values " .. cols .. ", got 2 "
        .. "(a NULL in the first or last column must be sluice.null, not nil)" },
      { row = { id = 3, a = "c", bb = 3 }, msg = "load: row 3: \"bb\" is not among the columns " .. cols },
      { row = { id = 3, x = 1, y = 2 }, msg = "load: row 3: \"x\", \"y\" are not among the columns " .. cols },
      { row = {}, msg = "load: row 3: an empty table (give the values in column order or by column name; "
        .. "all NULL is {sluice.null, ...})" },
    }
    -- what a failure at row 3 leaves: only autocommitted rows stay
    local kept = { rowwise_autocommit = 2 }
    for _, strategy in ipairs(require("sluice.load").STRATEGIES) do
      for _, b in ipairs(bad) do
        db:exec("truncate wid")
        local ok, err = pcall(sluice.load, { db = db, table = "wid", strategy = strategy, quiet = true,
          rows = { { 1, "a", 1 }, { id = 2, a = "b" }, b.row, { 4, "d", 4 } } })
        assert.is_false(ok, strategy)
        -- the error says what the load committed, then why it stopped
        local k = kept[strategy] or 0
        assert.are.equal((k > 0 and ("load: rows 1-%d were committed: "):format(k) or "load: nothing was committed: ")
          .. b.msg, err.message, strategy)
        assert.are.same({ k, 0 }, { err.committed_rows, err.in_doubt_rows }, strategy)
        assert.are.equal(k, db:query_one("select count(*)::int as n from wid").n, strategy)
        assert.are.equal("idle", db:status(), strategy)
      end
      -- a NULL between values and missing keys are NULL; sluice.null anywhere
      db:exec("truncate wid")
      sluice.load { db = db, table = "wid", strategy = strategy, quiet = true,
        rows = { { 1, sluice.null, 1 }, { 2, nil, 2 }, { id = 3 }, { 4, "d", sluice.null } } }
      assert.are.same({ { id = 1, b = 1 }, { id = 2, b = 2 }, { id = 3 }, { id = 4, a = "d" } },
        (function()
          local out = {}
          for i, r in ipairs(db:query("select id, a, b from wid order by id")) do
            out[i] = { id = r.id, a = r.a ~= sluice.null and r.a or nil, b = r.b ~= sluice.null and r.b or nil }
          end
          return out
        end)(), strategy)
    end
  end)
end)
