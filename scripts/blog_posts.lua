--- The End Point experiment, in sluice: blog posts built as objects with a
-- little model logic, loaded through sluice.compare
--   * one by one with autocommit (on a sample, scaled: it is slow),
--   * one by one inside one transaction (on a sample too),
--   * batched multi-row INSERT, pipelined prepared INSERT,
--   * by COPY (text and binary),
-- for each size given on the command line; prints a markdown table
-- (rows/s, MB/s, WAL MB, speed-up) and a bar chart per size.
--
--   sluice --tmpdb scripts/blog_posts.lua [sizes...] [--sample N] [--check]
--   (default sizes: 10000; sample: 500; --help lists the options)
--
-- Every strategy loads the same posts into its own copy of the table;
-- --check compares the copies' contents (count and md5 of all rows) and
-- fails if they differ.
local sluice = require "sluice"

local cli = sluice.args.parser("blog_posts.lua",
  "Loads the same blog posts by every strategy (row by row, batched, pipelined, COPY) "
  .. "and prints a comparison per size.")
cli:argument("sizes", "How many posts to load (one run per size; default 10000)."):args("*")
  :convert(sluice.args.integer(1))
cli:option("--sample", "Posts for the slow row-by-row strategies (their rates are scaled).", "500")
  :argname("N"):convert(sluice.args.integer(1))
cli:flag("--check", "Compare the tables' contents afterwards; fail if they differ.")
local args = cli:parse()
local sizes, sample, check = args.sizes, args.sample, args.check or false
if #sizes == 0 then sizes = { 10000 } end

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

local db = sluice.connect()
db:exec("set client_min_messages = warning")
db:exec("drop table if exists blog_posts; create table blog_posts (id int primary key, "
  .. "slug text not null, title text, body text, payload text, words int, published bool, "
  .. "created_at timestamptz)")

local STRATEGIES = { "rowwise_autocommit", "rowwise_tx", "batch", "pipeline", "copy_text", "copy_binary" }

for _, n in ipairs(sizes) do
  print(("\n## %d posts\n"):format(n))
  sluice.compare {
    db = db, table = "blog_posts", columns = COLUMNS, n = n, sample = sample,
    strategies = STRATEGIES, check = check,
    rows = function(i) return Post.new(i):values() end,
  }
end
db:exec("drop table blog_posts")
if check then print("\nall strategies loaded identical rows") end
