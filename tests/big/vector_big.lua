-- luacheck: std +busted
-- The lesson's embeddings table at its size: 100,000 x 1536 vector rows
-- loaded by binary COPY with drop_indexes, ending with a valid HNSW
-- index that the planner uses and that finds a row's nearest neighbour.
-- Too slow for `make test` (the HNSW build of 100k x 1536 takes
-- minutes on two cores): `make test-vector-big` runs it.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:gsub("^@", ""):gsub("big/[^/]*$", "?.lua")
local H = require "helper"
local sluice = require "sluice"

local N, D = tonumber(os.getenv("VECTOR_BIG_ROWS")) or 100000, 1536

describe("100k x 1536 vectors with drop-and-rebuild", function()
  local db
  setup(function()
    db = H.connect()
    db:exec("create extension if not exists vector schema public")
    H.schema(db, "vector_big")
    db:exec("set search_path = vector_big, public")
  end)
  teardown(function()
    db:exec("drop schema vector_big cascade")
    db:close()
  end)

  it("ends with a valid HNSW index that finds the nearest neighbour", function()
    db:exec(("create table embeddings (id int primary key, document_id int not null, e vector(%d))")
            :format(D))
    db:exec("create index embeddings_hnsw on embeddings using hnsw (e vector_cosine_ops)")
    db:exec("create index embeddings_document on embeddings (document_id)")
    local g = sluice.gen(19)
    local t0 = H.now()
    local s = sluice.load {
      db = db, table = "embeddings", drop_indexes = true, quiet = true,
      maintenance_work_mem = "2GB", max_parallel_maintenance_workers = 1,
      rows = g:rows(1, N, function(r, i) return { i, math.floor((i - 1) / 4) + 1, (r:clustered(200, D, 0.35)) } end),
    }
    io.stderr:write(("vector_big: %d rows loaded in %.1f s, indexes rebuilt in %.1f s (total %.1f s)\n")
                    :format(s.rows, s.seconds - s.index_seconds, s.index_seconds, H.now() - t0))
    assert.equal(N, s.rows)
    assert.equal(N, H.count(db, "embeddings"))
    assert.is_true(db:query_one([[select bool_and(indisvalid and indisready) as ok, count(*) as n
      from pg_index where indrelid = 'embeddings'::regclass]]).ok)
    assert.matches("USING hnsw %(e vector_cosine_ops%)", db:query_one(
      "select indexdef from pg_indexes where indexname = 'embeddings_hnsw'").indexdef)
    db:exec("analyze embeddings")
    -- 6 kB vectors live in TOAST, so the heap looks small to the planner,
    -- which then prefers a sequential scan; as pgvector's own tests do,
    -- take that choice away to see that the index serves the query
    db:exec("set enable_seqscan = off")
    local q = "select id from embeddings order by e <=> $1::vector limit 1"
    for _, id in ipairs { 1, math.floor(N / 2) + 7, N } do
      local probe = g:at(id):clustered(200, D, 0.35)
      local lit = "[" .. table.concat(probe, ",") .. "]"
      local plan = {}
      for _, r in ipairs(db:query("explain " .. q, lit)) do plan[#plan + 1] = r["QUERY PLAN"] end
      plan = table.concat(plan, "\n"):gsub("'%[[^']*%]'", "'[...]'")
      assert.matches("Index Scan using embeddings_hnsw", plan)
      assert.equal(id, db:query_one(q, lit).id)
    end
    db:exec("reset enable_seqscan")
  end)
end)
