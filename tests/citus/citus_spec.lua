-- Loading into a Citus cluster: every strategy into a hash-distributed
-- and a reference table gives the same contents as into a plain table of
-- the coordinator; rejects and checkpoints keep their counts; a conflict
-- key without the distribution column and freeze are refused before any
-- row is sent; a load through a worker node equals one through the
-- coordinator.
--
-- Needs a cluster: `make test-citus` runs this file under
-- `sluice --tmpdb=citus:2` (a coordinator and two workers).  Elsewhere
-- (make test) it is pending, saying so.
local H = require "helper"
local sluice = require "sluice"

local NODES = {}
for u in (os.getenv("SLUICE_NODES") or ""):gmatch("%S+") do NODES[#NODES + 1] = u end

local N = 6000
local EPOCH = 1700000000

-- row i: the distribution column (host), a key part, values of a few types
local function row(i)
  return { "host-" .. i % 37, i, i / 7, EPOCH + i, { "a", tostring(i % 5) }, { k = i % 3 } }
end
local function rows(n, bad)
  local out = {}
  for i = 1, n do
    out[i] = row(i)
    if bad and bad[i] then out[i][3] = bad[i] end
  end
  return out
end

describe("loading into Citus", function()
  if #NODES < 3 then
    it("needs a Citus cluster", function()
      pending("needs a Citus cluster of a coordinator and two workers: run `make test-citus`")
    end)
    return
  end

  local db
  setup(function()
    db = H.connect()
    db:exec("set client_min_messages = warning")
    H.schema(db, "citus_spec")
  end)
  teardown(function() db:close() end)

  -- kind: "plain" (a table of the coordinator), "distributed" (hash on
  -- host, 8 shards) or "reference"
  local function fresh(name, kind)
    db:exec(("drop table if exists %s; create table %s (host text not null, id int, "
      .. "v float8 check (v >= 0), ts timestamptz, tags text[], j jsonb, "
      .. "primary key (host, id)); create index %s_v on %s (v)"):format(name, name, name, name))
    if kind == "distributed" then
      db:query("select create_distributed_table($1, 'host', shard_count => 8)", name)
    elseif kind == "reference" then
      db:query("select create_reference_table($1)", name)
    end
  end
  local function digest(name)
    return db:query_one(("select count(*)::int8 as n, md5(string_agg(t::text, E'\\n' "
      .. "order by host, id)) as h from %s t"):format(name))
  end

  it("starts a coordinator and two workers with their metadata synced", function()
    local nodes = db:query("select nodename, noderole, hasmetadata, metadatasynced, groupid "
      .. "from pg_dist_node order by groupid")
    assert.are.equal(3, #nodes)
    for _, n in ipairs(nodes) do
      assert.are.equal("primary", n.noderole)
      assert.is_true(n.hasmetadata and n.metadatasynced)
    end
    assert.are.equal(0, nodes[1].groupid) -- the coordinator
    -- each worker is a server of its own that accepts connections
    for i = 2, 3 do
      local w = sluice.connect(NODES[i])
      assert.is_true(w:query_one("select citus_is_coordinator() as c").c == false)
      w:close()
    end
  end)

  local STRATEGIES = { "rowwise_tx", "batch", "pipeline", "copy_text", "copy_csv", "copy_binary",
                       "upsert", "unlogged_staging" }

  it("loads the same contents by every strategy, distributed and reference", function()
    fresh("ref_plain", "plain")
    local want = sluice.load { db = db, table = "ref_plain", rows = rows(N), strategy = "copy_binary",
                               quiet = true }
    assert.are.equal(N, want.loaded)
    local d0 = digest("ref_plain")
    for _, kind in ipairs({ "distributed", "reference" }) do
      for _, s in ipairs(STRATEGIES) do
        for _, drop in ipairs({ false, true }) do
          fresh("t", kind)
          local sum = sluice.load { db = db, table = "t", rows = rows(N), strategy = s, quiet = true,
                                    key = s == "upsert" and { "host", "id" } or nil,
                                    drop_indexes = drop }
          local what = ("%s, %s, drop_indexes = %s"):format(kind, s, tostring(drop))
          assert.are.equal(N, sum.loaded, what)
          assert.are.same(d0, digest("t"), what)
          -- the dropped index is back, on the shards too (it is used)
          assert.are.equal(1, db:query_one("select count(*)::int as n from pg_indexes "
            .. "where tablename = 't' and indexname = 't_v'").n, what)
        end
      end
    end
  end)

  it("sets bad rows aside on every strategy with on_error = reject", function()
    -- row 5: refused by the client (not a number); rows 40 and 4000: by a
    -- worker's CHECK (v >= 0), which Citus relays as XX000 in a COPY
    local bad = { [5] = "x", [40] = -1, [4000] = -1 }
    fresh("ref_plain", "plain")
    sluice.load { db = db, table = "ref_plain", rows = rows(N, bad), strategy = "batch", quiet = true,
                  on_error = "reject", on_reject = function() end }
    local d0 = digest("ref_plain")
    assert.are.equal(N - 3, d0.n)
    for _, kind in ipairs({ "distributed", "reference" }) do
      for _, s in ipairs(STRATEGIES) do
        fresh("t", kind)
        local rejected = {}
        local sum = sluice.load { db = db, table = "t", rows = rows(N, bad), strategy = s, quiet = true,
                                  key = s == "upsert" and { "host", "id" } or nil,
                                  on_error = "reject",
                                  on_reject = function(values)
                                    rejected[#rejected + 1] = tonumber(values[2])
                                  end }
        local what = kind .. ", " .. s
        assert.are.same({ N, N - 3, 3 }, { sum.read, sum.loaded, sum.rejected }, what)
        table.sort(rejected)
        assert.are.same({ 5, 40, 4000 }, rejected, what)
        assert.are.same(d0, digest("t"), what)
      end
    end
  end)

  it("resumes a checkpointed load after a failure, exactly once", function()
    for _, s in ipairs({ "copy_binary", "batch", "upsert" }) do
      fresh("t", "distributed")
      db:exec("drop table if exists sluice_ledger")
      -- the first run fails at row 4500 (a value the column refuses)
      local list = rows(N, { [4500] = "x" })
      local err = H.error_of(sluice.load, { db = db, table = "t", rows = list, strategy = s,
        key = s == "upsert" and { "host", "id" } or nil, quiet = true,
        checkpoint = "ck", checkpoint_rows = 1000 })
      assert.are.equal(4000, err.committed_rows, s)
      assert.are.equal(4000, H.count(db, "t"), s)
      list[4500] = row(4500)
      local sum = sluice.load { db = db, table = "t", rows = list, strategy = s, quiet = true,
                                key = s == "upsert" and { "host", "id" } or nil,
                                checkpoint = "ck", checkpoint_rows = 1000 }
      assert.are.same({ N, 4000 }, { sum.loaded, sum.resumed_from }, s)
      fresh("ref_plain", "plain")
      sluice.load { db = db, table = "ref_plain", rows = rows(N), strategy = "copy_binary", quiet = true }
      assert.are.same(digest("ref_plain"), digest("t"), s)
    end
  end)

  it("refuses a conflict key without the distribution column before loading", function()
    fresh("t", "distributed")
    local msg = 'table "t" is distributed by column "host" (Citus), and a conflict key must hold '
      .. "it: Citus allows unique indexes only on the distribution column and others; key is (id)"
    local err = H.error_of(sluice.load, { db = db, table = "t", rows = rows(10), strategy = "upsert",
                                          key = { "id" }, quiet = true })
    assert.are.equal("load: upsert: " .. msg, tostring(err))
    err = H.error_of(function() return db:upsert("t", { "host", "id" }, { key = "id" }) end)
    assert.matches("upsert: " .. msg, tostring(err), 1, true)
    err = H.error_of(function()
      return db:batch("t", { "host", "id" }, { on_conflict = "(id) do nothing" })
    end)
    assert.matches("batch: " .. msg, tostring(err), 1, true)
    assert.are.equal(0, H.count(db, "t"))
    -- with the distribution column the key serves
    local sum = sluice.load { db = db, table = "t", rows = rows(10), strategy = "upsert",
                              key = { "id", "host" }, quiet = true }
    assert.are.equal(10, sum.loaded)
  end)

  it("refuses freeze on a Citus table, saying why", function()
    for _, kind in ipairs({ "distributed", "reference" }) do
      fresh("t", kind)
      local err = H.error_of(sluice.load, { db = db, table = "t", rows = rows(10),
                                            strategy = "copy_binary", freeze = true, quiet = true })
      assert.matches(('freeze = true has no effect on a Citus table ("t" is a %s table): Citus '
        .. "does not pass FREEZE on to its shards"):format(kind), tostring(err), 1, true)
      assert.are.equal(0, H.count(db, "t"))
    end
  end)

  it("loads through a worker node what it loads through the coordinator", function()
    fresh("t", "distributed")
    sluice.load { db = db, table = "t", rows = rows(N), strategy = "copy_binary", quiet = true }
    local d0 = digest("t")
    fresh("t", "distributed")
    for i = 2, 3 do
      local w = sluice.connect(NODES[i])
      w:exec("set search_path = citus_spec")
      local half = {}
      for k = i - 1, N, 2 do half[#half + 1] = row(k) end
      local sum = sluice.load { db = w, table = "t", rows = half, strategy = "copy_binary", quiet = true }
      assert.are.equal(N / 2, sum.loaded)
      w:close()
    end
    assert.are.same(d0, digest("t"))
  end)
  it("loads through both workers with nodes and jobs = 2 what the coordinator loads", function()
    fresh("t", "distributed")
    sluice.load { db = db, table = "t", rows = rows(N), strategy = "copy_binary", quiet = true }
    local d0 = digest("t")
    for _, s in ipairs({ "copy_binary", "batch" }) do
      fresh("t", "distributed")
      local sum = sluice.load { db = db, table = "t", rows = rows(N), strategy = s, quiet = true,
                                nodes = { NODES[2], NODES[3] }, jobs = 2, chunk_rows = 1000 }
      assert.are.same({ N, N, 2 }, { sum.loaded, sum.read, sum.jobs }, s)
      assert.are.same(d0, digest("t"), s)
    end
  end)

  it("loads share 1/2 and share 2/2, run one after the other, as one full load", function()
    fresh("t", "distributed")
    sluice.load { db = db, table = "t", rows = rows(N), strategy = "copy_binary", quiet = true }
    local d0 = digest("t")
    fresh("t", "distributed")
    db:exec("drop table if exists sluice_ledger")
    local function share(k)
      return sluice.load { db = db, table = "t", rows = rows(N), strategy = "copy_binary",
                           quiet = true, shard = { k, 2 }, checkpoint = "fleet", chunk_rows = 500,
                           nodes = { NODES[k + 1] } }
    end
    local s1 = share(1)
    -- chunks 1, 3, 5, ... of 12: 6 chunks of 500 rows
    assert.are.same({ N / 2, 6 }, { s1.loaded, s1.chunks })
    assert.are.equal(N / 2, H.count(db, "t"))
    assert.is_false(db:query_one("select done from sluice_ledger where name = 'fleet'").done)
    local s2 = share(2)
    assert.are.same({ N / 2, 6 }, { s2.loaded, s2.chunks })
    assert.are.same(d0, digest("t"))
    assert.is_true(db:query_one("select done from sluice_ledger where name = 'fleet'").done)
    -- a share run again, or the whole load: nothing more
    local again = share(1)
    assert.is_true(again.already_done)
    assert.are.same(d0, digest("t"))
  end)
end)
