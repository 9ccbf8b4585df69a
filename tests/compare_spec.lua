-- sluice.compare: every strategy into its own copy, contents checked, a
-- table and a chart with plausible numbers; scripts/compare_strategies.lua.
local H = require "helper"
local sluice = require "sluice"

describe("sluice.compare", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "compare_spec")
    db:exec("create table m (id int primary key, host text not null, v float8); create index on m (host)")
  end)
  teardown(function() db:close() end)

  local ALL = { "rowwise_autocommit", "rowwise_tx", "batch", "pipeline", "copy_text", "copy_csv",
                "copy_binary", "upsert", "unlogged_staging", { "copy_binary", drop_indexes = true } }

  it("prints every strategy with plausible numbers and checks the copies", function()
    local out = os.tmpname()
    local res = sluice.compare {
      db = db, table = "m", n = 3000, sample = 200, strategies = ALL, quiet = true, out = out,
      rows = function(i) return i, "host-" .. i % 7, i / 3 end,
    }
    assert.is_true(res.identical)
    assert.are.equal(#ALL, #res)
    local slowest = math.huge
    for _, r in ipairs(res) do
      assert.are.equal(3000, r.rows)
      assert.truthy(r.rows_per_s > 0 and r.mb_per_s > 0 and r.seconds > 0 and r.wal_bytes > 0, r.label)
      assert.are.equal(r.sampled and 200 or 3000, r.rows_loaded)
      slowest = math.min(slowest, r.rows_per_s)
    end
    for _, r in ipairs(res) do
      assert.are.near(r.rows_per_s / slowest, r.speedup, 1e-9)
      assert.truthy(r.speedup >= 1)
    end
    assert.truthy(res.markdown:find("| rowwise_autocommit (sample of 200, scaled) | 3,000 |", 1, true), res.markdown)
    for _, name in ipairs { "| batch |", "| pipeline |", "| copy_text |", "| copy_csv |", "| copy_binary |",
                            "| upsert |", "| unlogged_staging |", "| copy_binary +drop_indexes |" } do
      assert.truthy(res.markdown:find(name, 1, true), name)
    end
    assert.truthy(res.chart:find("\ncopy_binary +drop_indexes █", 1, true), res.chart)
    assert.truthy(res.chart:find("\nrowwise_autocommit*", 1, true), res.chart)
    local f = assert(io.open(out)); local text = f:read("*a"); f:close(); os.remove(out)
    assert.are.equal(res.markdown .. "\n\n" .. res.chart .. "\n", text)
    assert.truthy(res.csv:find('^strategy,rows,rows_loaded,sampled,seconds'))
    assert.truthy(res.csv:find('\n"rowwise_autocommit",3000,200,true,', 1, true), res.csv)
    -- the copies are gone, the model table untouched
    assert.are.equal(0, db:query_one("select count(*)::int as n from m").n)
    assert.are.equal(1, db:query_one("select count(*)::int as n from pg_tables where schemaname = 'compare_spec'").n)
  end)

  it("raises when the results file cannot be written", function()
    local ok, err = pcall(function()
      sluice.compare { db = db, table = "m", n = 100, strategies = { "copy_text" }, quiet = true,
                       out = "/dev/full", rows = function(i) return i, "h", i end }
    end)
    assert.is_false(ok)
    assert.truthy(err:find("compare_spec.lua:%d+: compare: cannot write the results: /dev/full: "
                           .. "No space left on device$"), err)
  end)

  it("rejects an unknown strategy, listing the valid ones", function()
    local ok, err = pcall(function()
      sluice.compare { db = db, table = "m", n = 10, rows = function(i) return i end, strategies = { "fast" } }
    end)
    assert.is_false(ok)
    assert.truthy(err:find("compare_spec.lua:%d+: compare: unknown strategy 'fast' %(rowwise_autocommit, "
      .. "rowwise_tx, batch, pipeline, copy_text, copy_csv, copy_binary, upsert, unlogged_staging%)$"), err)
  end)
end)

describe("scripts/compare_strategies.lua", function()
  local script = H.q(H.root .. "/scripts/compare_strategies.lua")
  it("compares the strategies on a built-in shape and a custom one", function()
    local code, out, err = H.sluice(script .. " metrics 2000 --sample 100 --strategies rowwise_autocommit,batch,copy_binary")
    assert.are.equal(0, code, err)
    assert.truthy(out:find("| rowwise_autocommit (sample of 100, scaled) | 2,000 |", 1, true), out)
    assert.truthy(out:find("\n| batch | 2,000 |", 1, true), out)
    assert.truthy(out:find("\ncopy_binary         █", 1, true), out)
    code, out, err = H.sluice(script .. [[ custom 500 --columns 'id int primary key, v float8' --row 'i, i / 7' ]]
      .. "--strategies copy_text,pipeline --out csv")
    assert.are.equal(0, code, err)
    assert.truthy(out:find('\n"copy_text",500,500,false,', 1, true), out)
    assert.truthy(out:find('\n"pipeline",500,500,false,', 1, true), out)
    -- modifiers after "+"
    code, out, err = H.sluice(script .. " metrics 3000 --strategies "
      .. "copy_binary,copy_binary+drop_indexes,batch+connections=2+batch_rows=500")
    assert.are.equal(0, code, err)
    assert.truthy(out:find("\n| copy_binary +drop_indexes | 3,000 |", 1, true), out)
    assert.truthy(out:find("\n| batch +batch_rows=500 +connections=2 | 3,000 |", 1, true), out)
  end)

  it("rejects a bad command line with its usage, status 2, before connecting", function()
    local usage = "Usage: compare_strategies.lua [-h] [--columns DEFS] [--row EXPR]\n"
      .. "       [--strategies a,b,...] [--sample N] [--out FILE] [--quiet]\n"
      .. "       {metrics,users,wide,custom} <n>\n"
    for args, why in pairs {
      ["nope 10"] = "argument 'shape' must be one of 'metrics', 'users', 'wide', 'custom'",
      ["metrics"] = "missing argument 'n'",
      ["metrics 0"] = "0 is less than 1",
      ["metrics 10 --sample x"] = "'x' is not an integer",
      ["custom 10 --columns 'id int'"] = "custom needs --columns and --row",
      ["custom 10 --columns 'id int' --row 'i,'"] = "--row is not a Lua expression: --row:1: unexpected symbol near '<eof>'",
      ["metrics 10 --strategies copy_binary+fast"] = "unknown modifier fast in copy_binary+fast",
      ["metrics 10 --strategies batch+connections=two"] = "connections needs a number (in batch+connections=two)",
    } do
      local code, out, err = H.sluice(script .. " " .. args, "DATABASE_URL='postgresql:///none?host=/nonexistent'")
      assert.are.equal(2, code, args .. ": " .. err)
      assert.are.equal("", out, args)
      assert.are.equal(usage .. "\nError: " .. why .. "\n", err, args)
    end
  end)
end)

describe("sluice.compare with NULLs", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "compare_nulls_spec")
  end)
  teardown(function() db:close() end)

  it("takes nil values from the rows function as NULL, in the last column too", function()
    db:exec("create table nl (id int primary key, host text, v float8)")
    local res = sluice.compare {
      db = db, table = "nl", n = 300, sample = 50, quiet = true,
      strategies = { "batch", "copy_text", "copy_binary", "rowwise_tx" },
      rows = function(i)
        if i % 3 == 0 then return i, nil, i / 3 end
        if i % 3 == 1 then return i, "h", nil end
        return i, nil, nil
      end,
    }
    assert.is_true(res.identical)
    for _, r in ipairs(res) do assert.are.equal(300, r.rows) end
  end)
end)
