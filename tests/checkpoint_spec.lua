-- Checkpointed loads: chunks committed with their ledger row, a run
-- again goes on from the ledger, a finished one does nothing, another
-- input is refused, rejects are written once across runs.
local H = require "helper"
local sluice = require "sluice"

describe("sluice.load checkpoint", function()
  local db, dir
  setup(function()
    db = H.connect()
    dir = H.tmpdir()
  end)
  teardown(function()
    os.execute("rm -rf " .. H.q(dir))
    db:close()
  end)

  local N = 5000
  local function fresh()
    db:exec("drop table if exists ckt; create table ckt (id int primary key, v int check (v >= 0))")
    db:exec("drop table if exists sluice_ledger")
  end
  local function row(i) return { i, i % 101 == 0 and -1 or i } end
  -- rows 1..N; raises when asked for row `stop`
  local function input(stop)
    local i = 0
    return function()
      i = i + 1
      if i == stop then error("input failed at row " .. i, 0) end
      if i <= N then return row(i) end
    end
  end
  local function digest()
    return db:query_one("select count(*)::int as n, coalesce(sum(id), 0)::int8 as s, "
                        .. "count(distinct id)::int as d from ckt")
  end
  local function ledger(name)
    return db:query("select * from sluice_ledger where name = $1", name)[1]
  end
  local want_n, want_s = 0, 0
  for i = 1, N do
    if i % 101 ~= 0 then want_n, want_s = want_n + 1, want_s + i end
  end

  for _, strategy in ipairs { "copy_binary", "copy_text", "batch", "pipeline", "upsert",
                              "unlogged_staging" } do
    it("goes on after the last committed chunk, rejects written once (" .. strategy .. ")", function()
      fresh()
      local path = dir .. "/" .. strategy .. ".rej"
      local opts = { db = db, table = "ckt", strategy = strategy, checkpoint = "c-" .. strategy,
                     checkpoint_rows = 700, on_error = "reject", rejects = path, quiet = true }
      opts.rows = input(2345)
      local ok, err = pcall(sluice.load, opts)
      assert.is_false(ok)
      -- chunks 1-3 (rows 1-2100) are committed, the fourth rolled back
      assert.are.equal(('load: checkpoint "c-%s": rows 1-2100 are committed and in the ledger '
                        .. '(2080 loaded, 20 rejected); rows 2101-2344 were rolled back; run the '
                        .. 'load again to go on: input failed at row 2345'):format(strategy), err.message)
      assert.are.equal(2080, err.committed_rows)
      assert.are.equal(2080, digest().n)
      local l = ledger("c-" .. strategy)
      assert.are.same({ 2100, 2080, 20, false }, { l.rows_read, l.rows_loaded, l.rows_rejected, l.done })
      -- a run again goes on (this input cannot seek: rows 1-2100 are read
      -- again and skipped)
      opts.rows = input(nil)
      local s = sluice.load(opts)
      assert.are.same({ N, want_n, N - want_n, 2100 }, { s.read, s.loaded, s.rejected, s.resumed_from })
      local d = digest()
      assert.are.same({ want_n, want_s, want_n }, { d.n, d.s, d.d })
      local rows = {}
      for e in sluice.read_rejects(path) do rows[#rows + 1] = e.row end
      local expect = {}
      for i = 101, N, 101 do expect[#expect + 1] = i end
      assert.are.same(expect, rows)
      -- done: a run again does nothing
      opts.rows = input(nil)
      s = sluice.load(opts)
      assert.is_true(s.already_done)
      assert.are.equal(want_n, digest().n)
      assert.is_true(ledger("c-" .. strategy).done)
    end)
  end

  it("refuses to go on from another input", function()
    fresh()
    local list = {}
    for i = 1, 100 do list[i] = row(i) end
    sluice.load { db = db, table = "ckt", rows = list, checkpoint = "other", checkpoint_rows = 10,
                  on_reject = function() end, quiet = true }
    list[101] = row(101)
    local ok, err = pcall(sluice.load, { db = db, table = "ckt", rows = list, checkpoint = "other",
                                         on_reject = function() end, quiet = true })
    assert.is_false(ok)
    assert.are.equal('load: checkpoint "other" belongs to another input (a list of 100 rows); this '
                     .. 'load reads a list of 101 rows: sluice.reset_checkpoint(db, "other") starts '
                     .. 'it over', tostring(err))
    assert.is_true(sluice.reset_checkpoint(db, "other"))
    assert.is_false(sluice.reset_checkpoint(db, "other"))
    assert.are.same({}, sluice.checkpoints(db))
  end)

  it("lists checkpoints and checks its options", function()
    fresh()
    sluice.load { db = db, table = "ckt", rows = { { 1, 1 }, { 2, 2 } }, checkpoint = "a",
                  quiet = true }
    local l = sluice.checkpoints(db)
    assert.are.equal(1, #l)
    assert.are.same({ "a", "ckt", "a list of 2 rows", 2, 2, 0, true },
                    { l[1].name, l[1].target, l[1].identity, l[1].rows_read, l[1].rows_loaded,
                      l[1].rows_rejected, l[1].done })
    local function msg(o)
      o.db, o.table, o.rows, o.quiet = db, "ckt", {}, true
      local ok, err = pcall(sluice.load, o)
      assert.is_false(ok)
      return (tostring(err):gsub("^[^:]*:%d+: ", ""))
    end
    assert.are.equal("load: checkpoint works with copy_text, copy_csv, copy_binary, batch, pipeline, "
                     .. "upsert and unlogged_staging, not \"rowwise_tx\"",
                     msg { checkpoint = "x", strategy = "rowwise_tx" })
    assert.are.equal("load: retries needs checkpoint = \"name\"", msg { retries = 2 })
    assert.are.equal("load: checkpoint_rows must be a positive integer, got 0",
                     msg { checkpoint = "x", checkpoint_rows = 0 })
  end)
end)
