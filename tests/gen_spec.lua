-- sluice.gen: counter-based seeded generators.  Determinism and
-- seekability (one pass = ranges in any order = resumed), distributions
-- over 100k draws, uuid/vector/text shapes, the hot loop compiling, and
-- identical table contents from the same seed through COPY.
local H = require "helper"
local sluice = require "sluice"
local gen = sluice.gen

local NULL = sluice.null
local DRAWS = 100000

-- A realistic user row as one string, so rows compare with ==.
local function user_row(r, i)
  local first, last = r:first_name(), r:last_name()
  return table.concat({
    r:seq(), r:uuid4(), first, last, r:email(first, last), r:int(18, 90),
    r:city(), ("%.17g"):format(r:normal(500, 150)),
    r:timestamp("2015-01-01", "2025-01-01"), tostring(r:bool(0.3)),
    r:pick({ "a", "b", "c" }, { 1, 2, 3 }), r:zipf(100, 1.2),
  }, "|") .. "|" .. i
end

local function rows(g, first, last)
  local out = {}
  for i = first, last do out[i] = user_row(g:at(i), i) end
  return out
end

local function mean_var(xs)
  local s, n = 0, #xs
  for _, x in ipairs(xs) do s = s + x end
  local m = s / n
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, v / (n - 1)
end

local function draws(fn)
  local g = gen(7):stream("dist")
  local xs = {}
  for i = 1, DRAWS do xs[i] = fn(g:at(i)) end
  return xs
end

describe("sluice.gen determinism", function()
  it("gives the same values for the same seed, other values for another", function()
    assert.are.same(rows(gen(42):stream("users"), 1, 200), rows(gen(42):stream("users"), 1, 200))
    assert.are_not.same(rows(gen(42):stream("users"), 1, 50), rows(gen(43):stream("users"), 1, 50))
    assert.are.same(rows(gen("shop"), 1, 20), rows(gen("shop"), 1, 20))
  end)

  it("keeps streams independent of each other", function()
    local a = rows(gen(1):stream("a"), 1, 50)
    local b = rows(gen(1):stream("b"), 1, 50)
    assert.are_not.same(a, b)
    -- drawing more (or fewer) values in stream b changes nothing in a
    local g = gen(1)
    local sa, sb = g:stream("a"), g:stream("b")
    local again = {}
    for i = 1, 50 do
      sb:at(i):int(1, 10); sb:text(100)
      again[i] = user_row(sa:at(i), i)
    end
    assert.are.same(a, again)
    assert.are.same(rows(g:stream("a"):stream("x"), 1, 5), rows(gen(1):stream("a/x"), 1, 5))
  end)

  it("generates rows 0..N in one pass or in 4 ranges in any order identically", function()
    local N = 4000
    local g = gen(99):stream("users")
    local one = rows(g, 0, N)
    local parts = {}
    for _, p in ipairs({ 3, 1, 4, 2 }) do
      local a, b = gen.split(0, N, p, 4)
      -- a fresh generator per part, as a separate worker would have
      local w = gen(99):stream("users")
      for i = b, a, -1 do parts[i] = user_row(w:at(i), i) end
    end
    assert.are.same(one, parts)
    local covered = 0
    for p = 1, 4 do
      local a, b = gen.split(0, N, p, 4)
      covered = covered + (b - a + 1)
    end
    assert.are.equal(N + 1, covered)
  end)

  it("produces the same rows when resumed at row k", function()
    local full = rows(gen(5):stream("t"), 1, 3000)
    local g = gen(5):stream("t")
    local resumed = {}
    for i = 1, 1234 do resumed[i] = full[i] end
    for i = 1235, 3000 do resumed[i] = user_row(g:at(i), i) end
    assert.are.same(full, resumed)
    -- far rows cost nothing to reach
    local far = gen(5):stream("t"):at(2 ^ 53 - 1):int(1, 1000000)
    assert.are.equal(far, gen(5):stream("t"):at(2 ^ 53 - 1):int(1, 1000000))
  end)

  it("rejects bad seeds and row indexes", function()
    assert.has_error(function() gen(-1) end)
    assert.has_error(function() gen(1.5) end)
    assert.has_error(function() gen({}) end)
    assert.has_error(function() gen(1):at(-1) end)
    assert.has_error(function() gen(1):at(0.5) end)
    assert.has_error(function() gen(1):at(2 ^ 53) end)
  end)
end)

describe("g:rows(first, last, fn), a positionable source", function()
  local function all(src)
    local out = {}
    for row in src do out[#out + 1] = row end
    return out
  end

  it("iterates like an iterator, and next() and position() step together", function()
    local g = gen(9):stream("users")
    local src = g:rows(5, 1004, user_row)
    assert.are.equal("5", src:position())
    local got = all(src)
    assert.are.equal(1000, #got)
    assert.are.equal(user_row(gen(9):stream("users"):at(5), 5), got[1])
    assert.are.equal(user_row(gen(9):stream("users"):at(1004), 1004), got[1000])
    assert.are.equal("1005", src:position())
    assert.is_nil(src:next())
    assert.is_nil(src())
    assert.are.equal(0, #all(g:rows(3, 2, user_row))) -- empty
  end)

  it("resumes at a position in a fresh source: the same rows as one run", function()
    local whole = all(gen(5):stream("t"):rows(1, 3000, user_row))
    local first = gen(5):stream("t"):rows(1, 3000, user_row)
    local part = {}
    for _ = 1, 1234 do part[#part + 1] = first:next() end
    local pos = first:position()
    assert.are.equal("1235", pos)
    local again = gen(5):stream("t"):rows(1, 3000, user_row)
    again:seek(pos)
    for row in again do part[#part + 1] = row end
    assert.are.same(whole, part)
    -- back to the start, and to the end
    again:seek("1")
    assert.are.equal(whole[1], again:next())
    again:seek("3001")
    assert.is_nil(again:next())
  end)

  it("refuses positions it did not give", function()
    local src = gen(1):rows(10, 20, user_row)
    for _, bad in ipairs({ "x", "", "-1", "1.5", " 12" }) do
      assert.are.equal(('seek: invalid position "%s" (expected what position() returns: '
                        .. "a row index)"):format(bad),
                       tostring(H.error_of(src.seek, src, bad)):match("seek: .*"))
    end
    assert.are.equal("seek: position 9 is outside the rows 10..20",
                     tostring(H.error_of(src.seek, src, "9")):match("seek: .*"))
    assert.are.equal("seek: position 22 is outside the rows 10..20",
                     tostring(H.error_of(src.seek, src, "22")):match("seek: .*"))
    assert.are.equal("seek: invalid position 12 (expected what position() returns: a row index)",
                     tostring(H.error_of(src.seek, src, 12)):match("seek: .*"))
    assert.are.equal("rows: fn must be a function(r, i) returning row i, got nil",
                     tostring(H.error_of(gen(1).rows, gen(1), 1, 2)):match("rows: .*"))
  end)

  it("has an identity of seed, stream and range (not of fn)", function()
    local id = gen(42):stream("users"):rows(1, 100, user_row):identity()
    assert.are.equal('gen seed=42 stream="users" rows=1..100', id)
    assert.are.equal(id, gen(42):stream("users"):rows(1, 100, function() return 1 end):identity())
    assert.are.equal('gen seed="shop" stream="a/b" rows=0..9',
                     gen("shop"):stream("a"):stream("b"):rows(0, 9, user_row):identity())
    for _, other in ipairs({ gen(43):stream("users"):rows(1, 100, user_row),
                             gen(42):stream("user"):rows(1, 100, user_row),
                             gen(42):stream("users"):rows(1, 101, user_row) }) do
      assert.are_not.equal(id, other:identity())
    end
  end)
end)

describe("sluice.gen distributions (100k draws)", function()
  it("int and float are uniform", function()
    local m, v = mean_var(draws(function(r) return r:int(1, 100) end))
    assert.is_true(math.abs(m - 50.5) < 0.3, "int mean " .. m)
    assert.is_true(math.abs(v - (100 ^ 2 - 1) / 12) < 20, "int variance " .. v)
    local lo, hi = math.huge, -math.huge
    local xs = draws(function(r) return r:float(-2, 6) end)
    for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
    m, v = mean_var(xs)
    assert.is_true(lo >= -2 and hi < 6)
    assert.is_true(math.abs(m - 2) < 0.03, "float mean " .. m)
    assert.is_true(math.abs(v - 64 / 12) < 0.1, "float variance " .. v)
    local ints = draws(function(r) return r:int(1, 3) end)
    local seen = {}
    for _, x in ipairs(ints) do seen[x] = true end
    assert.are.same({ true, true, true }, seen)
  end)

  it("normal has its mean and variance", function()
    local m, v = mean_var(draws(function(r) return r:normal(10, 3) end))
    assert.is_true(math.abs(m - 10) < 0.05, "normal mean " .. m)
    assert.is_true(math.abs(v - 9) < 0.2, "normal variance " .. v)
  end)

  it("exponential has mean 1/lambda and variance 1/lambda^2", function()
    local m, v = mean_var(draws(function(r) return r:exponential(4) end))
    assert.is_true(math.abs(m - 0.25) < 0.005, "exponential mean " .. m)
    assert.is_true(math.abs(v - 0.0625) < 0.003, "exponential variance " .. v)
  end)

  it("bool and nullable follow p", function()
    local t = 0
    for _, b in ipairs(draws(function(r) return r:bool(0.3) end)) do if b then t = t + 1 end end
    assert.is_true(math.abs(t / DRAWS - 0.3) < 0.01)
    local nulls = 0
    for _, x in ipairs(draws(function(r) return r:nullable(0.2, r.int, 5, 5) end)) do
      if x == NULL then nulls = nulls + 1 else assert.are.equal(5, x) end
    end
    assert.is_true(math.abs(nulls / DRAWS - 0.2) < 0.01)
  end)

  it("zipf follows the rank-frequency law", function()
    for _, case in ipairs({ { 1000, 1.1 }, { 50, 0.7 }, { 1000000, 1.5 } }) do
      local n, s = case[1], case[2]
      local counts = {}
      for _, k in ipairs(draws(function(r) return r:zipf(n, s) end)) do
        assert.is_true(k >= 1 and k <= n and k % 1 == 0)
        counts[k] = (counts[k] or 0) + 1
      end
      local hn = 0
      for k = 1, math.min(n, 200000) do hn = hn + k ^ -s end
      if n > 200000 then -- the tail of the sum, by its integral
        hn = hn + (200000.5 ^ (1 - s) - (n + 0.5) ^ (1 - s)) / (s - 1)
      end
      for k = 1, 5 do
        local expected = DRAWS * k ^ -s / hn
        local got = counts[k] or 0
        -- 5 standard deviations of a binomial count
        local tol = 5 * math.sqrt(expected)
        assert.is_true(math.abs(got - expected) < tol,
          ("zipf(%d, %g) rank %d: %d draws, expected %.0f"):format(n, s, k, got, expected))
      end
    end
  end)

  it("pick with weights follows the weights", function()
    local list, w = { "x", "y", "z" }, { 1, 3, 6 }
    local c = {}
    for _, v in ipairs(draws(function(r) return r:pick(list, w) end)) do c[v] = (c[v] or 0) + 1 end
    assert.is_true(math.abs(c.x / DRAWS - 0.1) < 0.01)
    assert.is_true(math.abs(c.y / DRAWS - 0.3) < 0.01)
    assert.is_true(math.abs(c.z / DRAWS - 0.6) < 0.01)
    assert.has_error(function() gen(1):pick(list, { 0, 0, 0 }) end)
  end)
end)

describe("sluice.gen values", function()
  local g = gen(3):stream("v")

  it("makes uuid v4 with the version and variant bits", function()
    local seen = {}
    for i = 1, 1000 do
      local u = g:at(i):uuid4()
      assert.is_truthy(u:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)

  it("makes uuid v7 in time order with the version and variant bits", function()
    local base = 1700000000000 -- ms
    for _, step in ipairs({ 1, 0.25, 1000 }) do
      local prev
      for i = 0, 2000 do
        local u = g:at(i):uuid7(base, step)
        assert.is_truthy(u:match("^%x+%-%x+%-7%x%x%x%-[89ab]%x%x%x%-%x+$"), u)
        -- the first 48 bits are the unix milliseconds
        local ms = tonumber(u:sub(1, 8) .. u:sub(10, 13), 16)
        assert.are.equal(math.floor(base + i * step), ms)
        if prev then assert.is_true(prev < u, prev .. " !< " .. u) end
        prev = u
      end
    end
  end)

  it("makes unit-length vectors", function()
    for _, d in ipairs({ 1536, 3, 1 }) do
      local v = g:at(d):vector(d)
      assert.are.equal(d, #v)
      local s = 0
      for _, x in ipairs(v) do s = s + x * x end
      assert.is_true(math.abs(s - 1) < 1e-9, "norm^2 " .. s)
    end
    local buf = {}
    assert.are.equal(buf, g:at(1):vector(8, buf))
    assert.are.same(g:at(1):vector(8), buf)
  end)

  it("makes text and strings of exact and ranged length", function()
    for _, n in ipairs({ 0, 1, 2, 17, 500, 70000 }) do
      assert.are.equal(n, #g:at(n):text(n))
      local c = g:at(n):chars(n)
      assert.are.equal(n, #c)
      assert.is_nil(c:find("[^%w]"))
    end
    for i = 1, 200 do
      local n = #g:at(i):text(10, 20)
      assert.is_true(n >= 10 and n <= 20)
    end
    assert.is_truthy(g:at(1):text(60):match("^%u[%l ]+[%l.]$"))
  end)

  it("makes names, emails, phones, dates and timestamps", function()
    local r = g:at(9)
    local first, last = r:first_name(), r:last_name()
    local email = r:email(first, last)
    assert.is_truthy(email:match("^" .. first:lower():gsub("%W", "") .. "%."
                                 .. last:lower():gsub("%W", "") .. "%d+@[%w.]+$"), email)
    assert.is_truthy(r:phone():match("^%+1 %d%d%d%-555%-%d%d%d%d$"))
    assert.is_truthy(r:company():match("^%u"))
    assert.is_truthy(r:city())
    assert.is_truthy(r:word():match("^%l+$"))
    assert.are.equal(1704067200, gen.parse_time("2024-01-01"))
    assert.are.equal(1704067200 + 3723, gen.parse_time("2024-01-01 01:02:03"))
    assert.are.equal(1704067200 + 3723, gen.parse_time("2024-01-01T01:02:03Z"))
    assert.has_error(function() gen.parse_time("yesterday") end)
    for i = 1, 500 do
      local rr = g:at(i)
      local t = rr:timestamp("2024-01-01", "2024-01-31 23:59:59")
      assert.is_true(t >= 1704067200 and t < 1704067200 + 31 * 86400 and t % 1 == 0)
      local d = rr:date("2024-02-01", "2024-02-29")
      assert.is_true(d % 86400 == 0 and gen.iso_date(d):match("^2024%-02%-%d%d$") ~= nil)
    end
    assert.are.equal("2024-01-01 01:02:03", gen.iso_timestamp(1704067200 + 3723))
  end)

  it("fills JSON templates deterministically", function()
    local cjson = require "cjson"
    local tpl = {
      name = function(r) return r:name() end, kind = "user",
      score = function(r) return r:int(1, 5) end,
      tags = { function(r) return r:word() end, function(r) return r:word() end },
      nested = { missing = function() return nil end, ok = true },
    }
    local s = g:at(4):json(tpl)
    assert.are.equal(s, g:at(4):json(tpl))
    local doc = cjson.decode(s)
    assert.are.equal("user", doc.kind)
    assert.are.equal(2, #doc.tags)
    assert.are.equal(cjson.null, doc.nested.missing)
    assert.is_true(doc.score >= 1 and doc.score <= 5)
    assert.are.same(doc, cjson.decode(cjson.encode(g:at(4):doc(tpl))))
  end)

  it("draws sequences from the row index", function()
    assert.are.equal(7, g:at(7):seq())
    assert.are.equal(1070, g:at(7):seq(1000, 10))
  end)
end)

describe("sluice.gen hot loop", function()
  it("JIT-compiles a user-row generator loop without NYI aborts", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.q(dir)) == 0)
    local script, log = dir .. "/jitloop.lua", dir .. "/jit.txt"
    local f = assert(io.open(script, "w"))
    f:write(([[
      require("jit.v").start(%q)
      local gen = require "sluice.gen"
      local g = gen(1):stream("users")
      local acc = 0
      for i = 1, 200000 do
        local r = g:at(i)
        local first, last = r:first_name(), r:last_name()
        local email = r:email(first, last)
        acc = acc + #email + r:int(18, 90) + #r:city() + r:normal(500, 150)
              + r:timestamp(1500000000, 1700000000) + (r:bool(0.1) and 1 or 0)
      end
      require("jit.v").off()
      print(acc)
    ]]):format(log))
    f:close()
    local code, _, err = H.sluice(H.q(script))
    assert.are.equal(0, code, err)
    local lf = assert(io.open(log))
    local text = lf:read("*a")
    lf:close()
    os.execute("rm -rf " .. H.q(dir))
    assert.is_truthy(text:match("TRACE%s+%d+%s+jitloop%.lua:%d+ loop"), text)
    assert.is_nil(text:find("NYI"), text)
  end)
end)

describe("sluice.gen into PostgreSQL", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "gen_spec")
  end)
  teardown(function() db:close() end)

  local function load(tbl, seed)
    db:exec(("create table %s (id bigint, u uuid, name text, email text, age int, city text, "
             .. "balance float8, created timestamptz, day date, doc jsonb, vec real[])"):format(tbl))
    local g = gen(seed):stream("users")
    local cp = db:copy(tbl, nil, { format = "binary" })
    for i = 1, 2000 do
      local r = g:at(i)
      local first, last = r:first_name(), r:last_name()
      cp:row(i, r:uuid7(1700000000000), first .. " " .. last, r:email(first, last),
             r:nullable(0.1, r.int, 18, 90), r:city(), r:normal(500, 150),
             r:timestamp("2020-01-01", "2025-01-01"), r:date("2020-01-01", "2020-12-31"),
             r:json({ n = function(x) return x:int(1, 9) end }), r:vector(8))
    end
    assert.are.equal(2000, cp:finish())
    return db:query_one(("select count(*) as n, md5(string_agg(t::text, E'\\n' order by id)) as h from %s t")
      :format(tbl))
  end

  it("loads identical tables (checksums) from the same seed", function()
    local a, b, c = load("t1", 11), load("t2", 11), load("t3", 12)
    assert.are.equal(2000, a.n)
    assert.are.equal(a.h, b.h)
    assert.are_not.equal(a.h, c.h)
    -- uuid v7 sorts as the rows do, and the server agrees on the version
    local bad = db:query_one([[select count(*) as n from (select id, u,
      lag(u) over (order by id) as prev from t1) x where u <= prev]]).n
    assert.are.equal(0, bad)
    assert.are.equal(2000, db:query_one(
      "select count(*) as n from t1 where substr(u::text, 15, 1) = '7'").n)
  end)
end)

describe("g:clustered(k, d, noise)", function()
  local function dot(a, b)
    local s = 0
    for j = 1, #a do s = s + a[j] * b[j] end
    return s
  end

  it("draws unit vectors nearest to their own centroid, the same for a seed", function()
    local g = sluice.gen(3)
    local k, d = 8, 96
    local cents = g:centroids(k, d)
    assert.equal(k, #cents)
    local seen = {}
    for i = 1, 400 do
      local v, c = g:at(i):clustered(k, d, 0.4)
      assert.equal(d, #v)
      assert.is_true(math.abs(dot(v, v) - 1) < 1e-9)
      local best, bj = -2, 0
      for j = 1, k do
        local s = dot(v, cents[j])
        if s > best then best, bj = s, j end
      end
      assert.equal(c, bj)
      seen[c] = true
      local again, c2 = sluice.gen(3):at(i):clustered(k, d, 0.4)
      assert.equal(c, c2)
      assert.same(v, again)
    end
    for j = 1, k do assert.is_true(seen[j], "cluster " .. j .. " never drawn") end
    -- another seed, other centroids
    assert.is_true(math.abs(dot(sluice.gen(4):centroids(k, d)[1], cents[1])) < 0.5)
    assert.has_error(function() g:clustered(0, 3, 0.1) end,
                     "clustered: expected k >= 1 and d >= 1 (integers) and noise >= 0")
  end)
end)
