-- The synthetic-data scripts, run as a user would (child processes of the
-- sluice executable, against the test database): scripts/synthetic_shop.lua
-- and scripts/embeddings.lua with small sizes.  And the command line of
-- every script in scripts/: --help, and a bad option.
local H = require "helper"
local lfs = require "lfs"

local function script(name, args)
  local code, out, err = H.sluice(H.q(H.root .. "/scripts/" .. name) .. " " .. args)
  assert.are.equal(0, code, err)
  return out
end

local TABLES = { users = "id", products = "id", orders = "id", order_items = "order_id, line" }

local function checksums(db, schema)
  local out = {}
  for t, order in pairs(TABLES) do
    out[t] = db:query_one(("select count(*) as n, md5(string_agg(x::text, E'\\n' order by %s)) as h from %s.%s x")
      :format(order, schema, t))
  end
  return out
end

describe("scripts/synthetic_shop.lua", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function()
    db:exec("drop schema if exists shop_a, shop_b, shop_c cascade")
    db:close()
  end)

  it("loads users, products, orders and items with valid foreign keys, reproducibly", function()
    local out = script("synthetic_shop.lua", "300 50 800 --seed 7 --schema shop_a")
    assert.is_truthy(out:find("users:%s+300"), out)
    assert.is_truthy(out:find("products:%s+50"), out)
    assert.is_truthy(out:find("orders:%s+800"), out)
    local items = tonumber(out:match("order_items:%s+(%d+)"))
    assert.is_true(items >= 800 and items <= 6 * 800, out)
    -- parents before children
    assert.is_truthy(out:find("load order: users, orders, products, order_items", 1, true)
                     or out:find("load order: products, users, orders, order_items", 1, true)
                     or out:find("load order: users, products, orders, order_items", 1, true), out)

    local a = checksums(db, "shop_a")
    assert.are.equal(300, a.users.n)
    assert.are.equal(items, a.order_items.n)
    -- no orphans (the constraints exist too; this is what a user would run)
    local orphans = db:query_one([[
      select (select count(*) from shop_a.orders o left join shop_a.users u on u.id = o.user_id
               where u.id is null)
           + (select count(*) from shop_a.order_items i left join shop_a.orders o on o.id = i.order_id
               where o.id is null)
           + (select count(*) from shop_a.order_items i left join shop_a.products p on p.id = i.product_id
               where p.id is null) as n]]).n
    assert.are.equal(0, orphans)
    -- derived, not stored: every order's total is the sum of its items,
    -- at the product's price
    assert.are.equal(0, db:query_one([[
      select count(*) as n from shop_a.orders o
       where o.total <> (select sum(quantity * unit_price) from shop_a.order_items i where i.order_id = o.id)
          or o.item_count <> (select count(*) from shop_a.order_items i where i.order_id = o.id)]]).n)
    assert.are.equal(0, db:query_one([[
      select count(*) as n from shop_a.order_items i join shop_a.products p on p.id = i.product_id
       where i.unit_price <> p.price]]).n)
    -- realistic shapes: a Zipf-popular product leads, statuses vary
    local top = db:query("select product_id, count(*) as n from shop_a.order_items group by 1 order by 2 desc limit 2")
    assert.are.equal(1, top[1].product_id)
    assert.is_true(db:query_one("select count(distinct status) as n from shop_a.orders").n >= 4)
    assert.are.equal(0, db:query_one("select count(*) as n from shop_a.users where email not like '%@%'").n)

    -- same seed, another run: identical tables; another seed: different
    script("synthetic_shop.lua", "300 50 800 --seed 7 --schema shop_b")
    script("synthetic_shop.lua", "300 50 800 --seed 8 --schema shop_c")
    local b, c = checksums(db, "shop_b"), checksums(db, "shop_c")
    for t in pairs(TABLES) do
      assert.are.equal(a[t].h, b[t].h, t)
      assert.are_not.equal(a[t].h, c[t].h, t)
    end
  end)
end)

describe("scripts/embeddings.lua", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function()
    db:exec("drop schema if exists emb_a, emb_v cascade")
    db:close()
  end)

  it("loads documents and unit-length 1536-dim embeddings, then rebuilds the index", function()
    local out = script("embeddings.lua", "30 --seed 3 --schema emb_a --type real[]")
    assert.is_truthy(out:find("documents:%s+30"), out)
    local n = tonumber(out:match("embeddings:%s+(%d+)"))
    assert.are.equal(n, db:query_one("select count(*) as n from emb_a.embeddings").n)
    assert.are.equal(n, db:query_one("select sum(chunk_count) as n from emb_a.documents").n)
    local r = db:query_one([[
      select min(array_length(embedding, 1)) as lo, max(array_length(embedding, 1)) as hi,
             max(abs(1 - (select sqrt(sum(x::float8 * x)) from unnest(embedding) x))) as err
        from emb_a.embeddings]])
    assert.are.equal(1536, r.lo)
    assert.are.equal(1536, r.hi)
    assert.is_true(r.err < 1e-5, "norm error " .. r.err)
    -- the index is back, a btree on document_id
    local idx = db:query_one([[select indexdef from pg_indexes
      where schemaname = 'emb_a' and indexname = 'embeddings_document_id_idx']])
    assert.is_truthy(idx and idx.indexdef:find("btree (document_id)", 1, true))
    assert.are.equal(0, db:query_one([[select count(*) as n from emb_a.embeddings e
      left join emb_a.documents d on d.id = e.document_id where d.id is null]]).n)
  end)

  local probe = H.connect()
  local have_vector = probe:query_one("select 1 as x from pg_available_extensions where name = 'vector'")
  probe:close()
  local it_vector = have_vector and it or pending
  it_vector("stores vector(D) with an HNSW index, and compares strategies with and without it", function()
    local out = script("embeddings.lua", "20 2 --seed 3 --dim 64 --schema emb_v --compare 60")
    assert.is_truthy(out:find("embeddings: 40 (dim 64, vector)", 1, true), out)
    local r = db:query_one([[select count(*) as n, min(vector_dims(embedding)) as lo,
      max(abs(1 - vector_norm(embedding))) as err from emb_v.embeddings]])
    assert.are.equal(40, r.n)
    assert.are.equal(64, r.lo)
    assert.is_true(r.err < 1e-5, "norm error " .. r.err)
    local defs = {}
    for _, x in ipairs(db:query("select indexdef from pg_indexes where schemaname = 'emb_v' "
                                .. "and tablename = 'embeddings' order by 1")) do
      defs[#defs + 1] = x.indexdef
    end
    assert.are.equal(2, #defs)
    assert.is_truthy(defs[1]:find("btree (document_id)", 1, true), defs[1])
    assert.is_truthy(defs[2]:find("USING hnsw (embedding vector_cosine_ops)", 1, true), defs[2])
    for _, st in ipairs { "rowwise_tx", "batch", "copy_text", "copy_binary" } do
      for _, how in ipairs { "indexes in place", "drop, load, rebuild" } do
        assert.is_truthy(out:find(("| %s (%s) | "):format(st, how), 1, true), st .. " " .. how)
      end
    end
    assert.is_truthy(out:find("COPY binary: with indexes [%d.]+ s, drop%-and%-rebuild [%d.]+ s"), out)
  end)
end)

describe("every script in scripts/", function()
  -- no database behind this target: the command line is read first
  local NOWHERE = "DATABASE_URL='postgresql:///none?host=/nonexistent'"

  local names = {}
  for f in lfs.dir(H.root .. "/scripts") do
    if f:match("%.lua$") then names[#names + 1] = f end
  end
  table.sort(names)

  it("takes --help (usage on stdout, status 0) and rejects a bad option (usage and error, status 2)", function()
    assert.is_true(#names >= 5, table.concat(names, " "))
    for _, name in ipairs(names) do
      local path = H.q(H.root .. "/scripts/" .. name)
      local code, out, err = H.sluice(path .. " --help", NOWHERE)
      assert.are.equal(0, code, name .. ": " .. err)
      assert.are.equal("", err, name)
      local usage = out:match("^(Usage: " .. name:gsub("%p", "%%%0") .. " %[%-h%].-)\n\n")
      assert.truthy(usage, name .. ":\n" .. out)
      assert.truthy(out:find("\n   -h, --help            Show this help message and exit.\n", 1, true), out)
      assert.truthy(out:find("\n   --quiet               No live progress lines", 1, true), out)
      code, out, err = H.sluice(path .. " --no-such-option", NOWHERE)
      assert.are.equal(2, code, name .. ": " .. err)
      assert.are.equal("", out, name)
      assert.are.equal(usage .. "\n\nError: unknown option '--no-such-option'\n", err, name)
    end
  end)
end)

describe("scripts/synthetic_shop.lua and scripts/embeddings.lua", function()
  it("check their numbers before they connect", function()
    for args, why in pairs {
      ["synthetic_shop.lua 0"] = "0 is less than 1",
      ["synthetic_shop.lua 10 5 x"] = "'x' is not an integer",
      ["synthetic_shop.lua --seed 1.5"] = "'1.5' is not an integer",
      ["synthetic_shop.lua 1 2 3 4"] = "too many arguments",
      ["embeddings.lua 5 --dim 0"] = "0 is less than 1",
      ["embeddings.lua 5 2 3"] = "too many arguments",
    } do
      local code, out, err = H.sluice(H.q(H.root .. "/scripts/") .. args)
      assert.are.equal(2, code, args .. ": " .. err)
      assert.are.equal("", out, args)
      assert.truthy(err:find("\n\nError: " .. why .. "\n", 1, true), args .. ": " .. err)
    end
  end)
end)
