--- A synthetic shop: users, products, orders and order items, with valid
-- foreign keys and realistic distributions, generated reproducibly from a
-- seed and streamed into PostgreSQL by COPY through sluice models.
--
--   sluice --tmpdb scripts/synthetic_shop.lua [users] [products] [orders]
--          [--seed N] [--schema NAME]
--   (defaults: 1000 users, 200 products, 5000 orders; seed 1; --help lists
--   the options)
--
-- Nothing is held in memory: every value is a pure function of (seed,
-- stream, row index), so children derive their parents' keys and values
-- instead of looking them up:
--   * order i belongs to user int(1, users) drawn at order i's index;
--   * the items of order i are drawn from the "order_items" stream at
--     index i (how many, which products by Zipf popularity, quantities),
--     both when the items are written and when the order's total is
--     computed, so the total always equals the sum of its items;
--   * a product's price is the first draw of the "price" stream at the
--     product's id, so items can quote it without reading products.
-- Running it twice with the same seed gives identical tables, and so
-- does running it with `sluice --jobs N`: then each table is loaded by N
-- worker processes (sluice.load's jobs), one table after another, each
-- committed before the next (a worker's connection sees only committed
-- parents), where one process loads all four in one transaction.
local sluice = require "sluice"

local cli = sluice.args.parser("synthetic_shop.lua",
  "Generates a shop (users, products, orders, order items) from a seed and loads it by COPY.")
cli:argument("users", "How many users (default 1000)."):args("?"):convert(sluice.args.integer(1))
cli:argument("products", "How many products (default 200)."):args("?"):convert(sluice.args.integer(1))
cli:argument("orders", "How many orders (default 5000)."):args("?"):convert(sluice.args.integer(0))
cli:option("--seed", "The seed: the same seed gives the same tables.", "1"):argname("N")
  :convert(sluice.args.integer())
cli:option("--schema", "Create the tables in this schema (created if missing)."):argname("NAME")
local args = cli:parse()
local seed, schema = args.seed, args.schema
local N_USERS, N_PRODUCTS, N_ORDERS = args.users or 1000, args.products or 200, args.orders or 5000

local db = sluice.connect()
db:exec("SET client_min_messages = warning")
if schema then
  db:exec("CREATE SCHEMA IF NOT EXISTS " .. db:quote_ident(schema))
  db:exec("SET search_path = " .. db:quote_ident(schema))
end

local g = sluice.gen(seed)
local gu, gp, gprice = g:stream("users"), g:stream("products"), g:stream("price")
local go, gi = g:stream("orders"), g:stream("order_items")

-- A fixed "now" keeps runs identical.
local USERS_FROM, USERS_TO = "2019-01-01", "2023-12-31"
local ORDERS_FROM, ORDERS_TO = "2024-01-01", "2025-06-30"

---------------------------------------------------------------- models
local User = sluice.model {
  table = "users",
  columns = {
    { "id", "bigint primary key" }, { "uuid", "uuid not null" },
    { "first_name", "text not null" }, { "last_name", "text not null" },
    { "email", "text not null" }, { "city", "text" }, { "age", "int" },
    { "tier", "text not null" }, { "created_at", "timestamptz not null" },
  },
  defaults = { tier = "basic" },
  validate = function(u)
    if not u.email:find("@", 1, true) then return false, "email without @" end
    return sluice.is_null(u.age) or (u.age >= 13 and u.age <= 120), "age out of range"
  end,
  methods = {
    full_name = function(u) return u.first_name .. " " .. u.last_name end,
  },
}

local CATEGORIES = { "books", "electronics", "garden", "toys", "kitchen", "sports", "beauty", "grocery" }
local COLORS = { "red", "green", "blue", "black", "white", "silver" }

local Product = sluice.model {
  table = "products",
  columns = {
    { "id", "bigint primary key" }, { "sku", "text not null" }, { "name", "text not null" },
    { "category", "text not null" }, { "price", "numeric(10,2) not null" },
    { "stock", "int not null" }, { "attributes", "jsonb" },
  },
  validate = function(p) return p.price > 0, "price must be positive" end,
}

local STATUSES = { "pending", "paid", "shipped", "delivered", "cancelled" }
local STATUS_W = { 5, 15, 20, 55, 5 }

local Order = sluice.model {
  table = "orders",
  columns = {
    { "id", "bigint primary key" }, { "user_id", "bigint not null references users(id)" },
    { "status", "text not null" }, { "ordered_at", "timestamptz not null" },
    { "item_count", "int not null" }, { "total", "numeric(12,2) not null" },
  },
  validate = function(o) return o.item_count > 0, "an order needs items" end,
}

local Item = sluice.model {
  table = "order_items",
  columns = {
    { "order_id", "bigint not null references orders(id)" }, { "line", "int not null" },
    { "product_id", "bigint not null references products(id)" },
    { "quantity", "int not null" }, { "unit_price", "numeric(10,2) not null" },
  },
}

------------------------------------------------------- derived values
-- Price in cents of product pid: log-normal around ~$20.
local function price_cents(pid)
  local r = gprice:at(pid)
  return math.max(99, math.floor(math.exp(r:normal(7.6, 0.9))))
end

local ITEM_COUNTS, ITEM_COUNT_W = { 1, 2, 3, 4, 5, 6 }, { 35, 25, 18, 10, 7, 5 }
local QTYS, QTY_W = { 1, 2, 3, 4 }, { 70, 20, 7, 3 }

-- The items of order o, drawn from the order_items stream at index o:
-- calls fn(line, product_id, quantity, unit_cents) for each.  Returns the
-- number of lines.  Order totals and item rows both come from here.
local function each_item(o, fn)
  local r = gi:at(o)
  local n = r:pick(ITEM_COUNTS, ITEM_COUNT_W)
  for line = 1, n do
    local pid = r:zipf(N_PRODUCTS, 1.1) -- a few products sell most
    local qty = r:pick(QTYS, QTY_W)
    fn(line, pid, qty, price_cents(pid))
  end
  return n
end

---------------------------------------------------------------- rows
local function user_row(r, i)
  local first, last = r:first_name(), r:last_name()
  return User:new {
    id = i, uuid = r:uuid4(), first_name = first, last_name = last,
    email = r:email(first, last), city = r:nullable(0.05, r.city),
    age = r:nullable(0.1, r.int, 16, 85),
    tier = r:bool(0.1) and "premium" or nil, -- nil: the default applies
    created_at = r:timestamp(USERS_FROM, USERS_TO),
  }
end

local function product_row(r, i)
  local color = r:pick(COLORS)
  return Product:new {
    id = i, sku = ("SKU-%06d"):format(i),
    name = r:word():gsub("^%l", string.upper) .. " " .. r:word(),
    category = r:pick(CATEGORIES), price = price_cents(i) / 100,
    stock = r:int(0, 500),
    attributes = r:json { color = color, weight_g = function(x) return x:int(50, 5000) end,
                          tags = { function(x) return x:word() end, function(x) return x:word() end } },
  }
end

local function order_row(r, i)
  local total = 0
  local n = each_item(i, function(_, _, qty, cents) total = total + qty * cents end)
  return Order:new {
    id = i, user_id = r:int(1, N_USERS), status = r:pick(STATUSES, STATUS_W),
    ordered_at = r:timestamp(ORDERS_FROM, ORDERS_TO),
    item_count = n, total = total / 100,
  }
end

-- Items of orders 1..N_ORDERS, one row at a time, parents never stored.
local function items()
  local o, pending, k = 0, {}, 0
  return function()
    if k >= #pending then
      pending, k = {}, 0
      o = o + 1
      if o > N_ORDERS then return nil end
      each_item(o, function(line, pid, qty, cents)
        pending[line] = Item:new { order_id = o, line = line, product_id = pid,
                                   quantity = qty, unit_price = cents / 100 }
      end)
    end
    k = k + 1
    return pending[k]
  end
end

-- The items of orders first..last as a source a parallel load can cut by
-- order (sluice.load's jobs): position() is the order whose items come
-- next, or "order:line" inside an order's items.
local function item_source(first, last)
  local o, pending, k = first - 1, {}, 0
  local src = { first = first, last = last }
  function src.next()
    while k >= #pending do
      o = o + 1
      if o > last then return nil end
      pending, k = {}, 0
      each_item(o, function(line, pid, qty, cents)
        pending[line] = Item:new { order_id = o, line = line, product_id = pid,
                                   quantity = qty, unit_price = cents / 100 }
      end)
    end
    k = k + 1
    return pending[k]
  end
  function src.position() return k >= #pending and tostring(o + 1) or (o .. ":" .. k) end
  function src.seek(_, pos)
    o, pending, k = tonumber(pos) - 1, {}, 0
  end
  function src.identity() return ("order items seed=%d orders=%d..%d"):format(seed, first, last) end
  return src
end

----------------------------------------------------------------- load
local sources = {
  [User] = function() return gu:rows(1, N_USERS, user_row) end,
  [Product] = function() return gp:rows(1, N_PRODUCTS, product_row) end,
  [Order] = function() return go:rows(1, N_ORDERS, order_row) end,
  [Item] = items,
}

-- Declared in any order; model.order puts parents first (from the
-- `references` in the column types).
local models = sluice.model.create_all(db, { Item, Order, User, Product }, { drop = true })
local names = {}
for j, m in ipairs(models) do names[j] = m.table end
print("load order: " .. table.concat(names, ", "))

local t0 = os.time()
if sluice.parallel_jobs() > 1 then
  -- sluice --jobs N: every table by N workers, parents committed first
  sources[Item] = function() return item_source(1, N_ORDERS) end
  for _, m in ipairs(models) do
    local s = sluice.load { db = db, rows = sources[m]() }
    print(("%-12s %d"):format(m.table .. ":", s.loaded))
  end
else
  db:transaction(function()
    for _, m in ipairs(models) do
      local loaded = m:save_all(db, sources[m]())
      print(("%-12s %d"):format(m.table .. ":", loaded))
    end
  end)
end
db:exec("ANALYZE")
io.stderr:write(("done in %ds\n"):format(os.time() - t0))
