--- The End Point experiment, in sluice: blog posts built as objects with a
-- little model logic, saved
--   * one by one with autocommit (on a sample, scaled: it is slow),
--   * one by one inside one transaction (a prepared INSERT),
--   * by COPY (text and binary),
-- for each size given on the command line; prints seconds and rows/s.
--
--   sluice --tmpdb scripts/blog_posts.lua [sizes...] [--sample N] [--check]
--   (default sizes: 10000 100000; sample: 500)
--
-- Every strategy loads the same posts into its own table; --check compares
-- the tables' contents (md5 of all rows) and fails if they differ.
local sluice = require "sluice"

local args = { ... }
local sizes, sample, check = {}, 500, false
do
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--sample" then
      sample = assert(tonumber(args[i + 1]), "--sample needs a number"); i = i + 1
    elseif a == "--check" then
      check = true
    elseif tonumber(a) then
      sizes[#sizes + 1] = math.floor(tonumber(a))
    else
      error("usage: blog_posts.lua [sizes...] [--sample N] [--check]  (unknown argument " .. a .. ")", 0)
    end
    i = i + 1
  end
  if #sizes == 0 then sizes = { 10000, 100000 } end
end

-- The model: what an ORM class would hold.
local TITLE = ("title"):rep(1764)
local BODY = ("body"):rep(1764)
local PAYLOAD = ("dummy data"):rep(1764)
local EPOCH = 1700000000 -- a fixed "now", so every strategy writes the same rows

local Post = {}
Post.__index = Post

function Post.new(i)
  local p = setmetatable({ id = i, title = TITLE, body = BODY, payload = PAYLOAD }, Post)
  p:before_save()
  return p
end

-- business logic: derived fields and a validation, as a model would do
function Post:before_save()
  self.slug = ("post-%d-%s"):format(self.id, self.title:sub(1, 10))
  self.words = math.floor(#self.body / 4)
  self.published = self.id % 3 ~= 0
  self.created_at = EPOCH + self.id -- epoch seconds
  assert(#self.title > 0 and #self.body > 0, "a post needs a title and a body")
end

function Post:values()
  return self.id, self.slug, self.title, self.body, self.payload, self.words,
         self.published, self.created_at
end

local COLUMNS = { "id", "slug", "title", "body", "payload", "words", "published", "created_at" }
local INSERT = "insert into %s (" .. table.concat(COLUMNS, ", ")
  .. ") values ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8))"

local db = sluice.connect()
db:exec("set client_min_messages = warning")

local function fresh(name)
  db:exec(("drop table if exists %s; create table %s (id int primary key, slug text not null, "
    .. "title text, body text, payload text, words int, published bool, created_at timestamptz)")
    :format(name, name))
end

local now = os.clock
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef "typedef struct { long s, ns; } bp_ts; int clock_gettime(int, bp_ts *);"
    local ts = ffi.new("bp_ts")
    now = function() ffi.C.clock_gettime(1, ts); return tonumber(ts.s) + tonumber(ts.ns) * 1e-9 end
  end
end

local strategies = {
  {
    name = "one by one, autocommit", sampled = true,
    run = function(tbl, n)
      local ins = db:prepare(INSERT:format(tbl))
      for i = 1, n do ins:exec(Post.new(i):values()) end
      ins:close()
    end,
  },
  {
    name = "one by one, one transaction",
    run = function(tbl, n)
      db:transaction(function()
        local ins = db:prepare(INSERT:format(tbl))
        for i = 1, n do ins:exec(Post.new(i):values()) end
        ins:close()
      end)
    end,
  },
  {
    name = "COPY text",
    run = function(tbl, n)
      local cp = db:copy(tbl, COLUMNS, { format = "text" })
      for i = 1, n do cp:row(Post.new(i):values()) end
      assert(cp:finish() == n)
    end,
  },
  {
    name = "COPY binary",
    run = function(tbl, n)
      local cp = db:copy(tbl, COLUMNS, { format = "binary" })
      for i = 1, n do cp:row(Post.new(i):values()) end
      assert(cp:finish() == n)
    end,
  },
}

local function digest(tbl)
  return db:query_one(("select count(*) as n, md5(string_agg(md5(t::text), '' order by id)) as h from %s t")
    :format(tbl))
end

print("| posts | strategy | rows timed | seconds | rows/s | vs autocommit |")
print("|---:|---|---:|---:|---:|---:|")
local failures = 0
for _, n in ipairs(sizes) do
  local base_rate, ref
  for si, s in ipairs(strategies) do
    local tbl = "blog_posts_" .. si
    fresh(tbl)
    local rows = s.sampled and math.min(sample, n) or n
    local t0 = now()
    s.run(tbl, rows)
    local secs = now() - t0
    local rate = rows / secs
    base_rate = base_rate or rate
    print(("| %d | %s | %d%s | %.2f | %.0f | %.1f× |"):format(n, s.name, rows,
      rows < n and " (sample)" or "", secs, rate, rate / base_rate))
    if check and not s.sampled then
      local d = digest(tbl)
      assert(d.n == n, tbl .. ": expected " .. n .. " rows, found " .. tostring(d.n))
      if ref and ref ~= d.h then
        io.stderr:write(("%s: contents differ from the first full strategy\n"):format(s.name))
        failures = failures + 1
      end
      ref = ref or d.h
    end
    db:exec("drop table " .. tbl)
  end
end
if check then
  print(failures == 0 and "\nall strategies loaded identical rows" or "\nCONTENTS DIFFER")
  if failures > 0 then os.exit(1) end
end
