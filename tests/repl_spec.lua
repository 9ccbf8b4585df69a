-- The prompt driven through a pseudo-terminal (Python's pty module drives
-- it, tests/fixtures/repl/pty_driver.py): expressions, query tables,
-- Ctrl-C during a running statement and a running load, Ctrl-D; SQL
-- lines, \d and \dt, psql-style errors, Tab completion, compare's table.
-- The expected tables and \d output are psql 15's for the same data.
-- Then the pieces without a terminal: which lines are SQL, when SQL is
-- complete, error positions, completion candidates, help topics.
local H = require "helper"

local PYTHON = "/usr/bin/python3"

local function drive(steps)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(table.concat(steps, "\n"), "\n")
  f:close()
  local code, out, err = H.run(("%s %s %s %s"):format(PYTHON,
    H.q(H.root .. "/tests/fixtures/repl/pty_driver.py"), H.q(H.exe), H.q(path)))
  os.remove(path)
  return code, out:gsub("\r\n", "\n"), err
end

local have_python = io.open(PYTHON) ~= nil

-- libedit prints the prompt before it puts the terminal in raw mode; a
-- Ctrl-D or Ctrl-C that lands in between meets the cooked terminal and is
-- lost, so the scripts pause after a prompt before sending one.

describe("the prompt on a terminal", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "repl_spec")
    db:exec("create table t (id int)")
  end)
  teardown(function() db:close() end)

  it("prints values and tables; Ctrl-C cancels and rolls back; Ctrl-D exits 0", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out, err = drive {
      "expect sluice> ",
      "send 1 + 41\\r", "expect 42", "expect sluice> ",
      "send db:exec('set search_path = repl_spec')\\r", "expect sluice> ",
      "send db:query('select 7 as a, 8 as b')\\r", "expect (1 row)", "expect sluice> ",
      -- a long statement inside a transaction after an insert
      "send db:begin(); db:exec('insert into t values (1)'); db:exec('select pg_sleep(30)')\\r",
      "sleep 1",
      "send \\x03",
      "expect rolled back)", "expect sluice> ",
      "send db:status()\\r", "expect idle", "expect sluice> ",
      "send db:query_one('select count(*)::int as n from t').n\\r", "expect sluice> ",
      -- a long load: rows from an endless iterator, in one transaction
      "send sluice.load{db = db, table = 't', strategy = 'rowwise_tx', quiet = true, rows = "
        .. "(function() local i = 0 return function() i = i + 1 return {i} end end)()}\\r",
      "sleep 1.5",
      "send \\x03",
      "expect sluice> ",
      "send db:query_one('select count(*)::int as n from t').n + 100\\r", "expect sluice> ",
      -- Ctrl-C at the prompt drops the line, twice does not kill
      "send 1 +", "send \\x03", "sleep 1.2", "send \\x03", "sleep 0.3",
      "send 'still' .. 'here'\\r", "expect stillhere", "expect sluice> ",
      "sleep 0.3", "send \\x04",
    }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("\n42\n", 1, true), out)
    -- psql's layout: numbers right-aligned, no padding after the last column
    assert.truthy(out:find(" a | b \n---+---\n 7 | 8\n(1 row)\n\n", 1, true), out)
    assert.truthy(out:find("canceling statement due to user request", 1, true), out)
    assert.truthy(out:find("(interrupted: the open transaction on db was rolled back)", 1, true), out)
    assert.truthy(out:find("db:status()\nidle\n", 1, true), out)
    -- the insert and every row of the interrupted load were rolled back
    assert.truthy(out:find("select count(*)::int as n from t').n\n0\n", 1, true), out)
    assert.truthy(out:find("from t').n + 100\n100\n", 1, true), out)
    assert.truthy(out:find("\nstillhere\n", 1, true), out)
    assert.truthy(out:find("\nexit 0\n", 1, true), out)
    assert.are.equal(0, db:query_one("select count(*)::int as n from t").n)
  end)
end)

-- Lines joined as the terminal shows them (after \r\n -> \n).
local function block(lines)
  return table.concat(lines, "\n") .. "\n"
end

local function has(out, text)
  assert.truthy(out:find(text, 1, true), "missing:\n" .. text .. "\n--- in:\n" .. out)
end

describe("the prompt with SQL", function()
  local db, owner
  setup(function()
    db = H.connect()
    H.schema(db, "repl_sql")
    db:exec([[
      create table fruit_stock (id int primary key, fruit_name text not null default 'x',
                                qty int8, price float8, note text);
      create index fruit_stock_name on fruit_stock (fruit_name);
      create table fruit_sale (sale_id serial primary key,
                               fruit_id int not null references fruit_stock (id),
                               sold_at timestamptz default now(), check (sale_id > 0));
      insert into fruit_stock values (1, 'apple', 9007199254740993, 0.5, E'two\nlines'),
        (2, 'pear', 5, 12.25, null), (10, 'fig', -3, 1e20, '')]])
    owner = db:query_one("select current_user::text as u").u
  end)
  teardown(function() db:close() end)

  it("prints results as psql does: column order, alignment, NULL, (0 rows), one row", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out = drive {
      "expect sluice> ",
      "send set search_path = repl_sql\\r", "expect SET", "expect sluice> ",
      "send select id, fruit_name, qty, price, note from fruit_stock order by id;\\r",
      "expect (3 rows)", "expect sluice> ",
      "send select fruit_name, id from fruit_stock where id > 100\\r", "expect (0 rows)",
      "expect sluice> ",
      "send db:query('select fruit_name, id from fruit_stock order by id desc')\\r",
      "expect (3 rows)", "expect sluice> ",
      "send db:query_one('select price, id from fruit_stock where id = 2')\\r",
      "expect (1 row)", "expect sluice> ",
      "send \\\\pset null (null)\\r", "expect sluice> ",
      "send select note from fruit_stock where id = 2;\\r", "expect (1 row)", "expect sluice> ",
      -- Ctrl-C at an empty prompt: a new line, a fresh prompt
      "sleep 0.3", "send \\x03", "expect sluice> ",
      "send 6 * 7\\r", "expect 42", "expect sluice> ",
      "sleep 0.3", "send \\x04",
    }
    assert.are.equal(0, code, out)
    -- the SELECT's column order; numbers right-aligned; int8 beyond 2^53
    -- exact, without LL; a float as the server prints it; a value with a
    -- line break on two lines, marked +; NULL empty
    has(out, block {
      " id | fruit_name |       qty        | price | note  ",
      "----+------------+------------------+-------+-------",
      "  1 | apple      | 9007199254740993 |   0.5 | two  +",
      "    |            |                  |       | lines",
      "  2 | pear       |                5 | 12.25 | ",
      " 10 | fig        |               -3 | 1e+20 | ",
      "(3 rows)",
      "",
    })
    has(out, block { " fruit_name | id ", "------------+----", "(0 rows)", "" })
    -- db:query from Lua: the same table, and no command tag after it
    has(out, block {
      " fruit_name | id ",
      "------------+----",
      " fig        | 10",
      " pear       |  2",
      " apple      |  1",
      "(3 rows)",
      "",
    })
    -- query_one's row is one row
    has(out, block { " price | id ", "-------+----", " 12.25 |  2", "(1 row)", "" })
    has(out, 'Null display is "(null)".\n')
    has(out, block { "  note  ", "--------", " (null)", "(1 row)", "" })
    has(out, "sluice> \nsluice> 6 * 7")
    assert.falsy(out:find("LL", 1, true), out)
    assert.falsy(out:find("SELECT 3", 1, true), out)
  end)

  it("runs SQL lines, multi-line ones until ;, and prints server errors as psql", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out = drive {
      "expect sluice> ",
      "send SET search_path = repl_sql;\\r", "expect SET", "expect sluice> ",
      "send select id,\\r", "expect ...> ",
      "send   fruit_name\\r", "expect ...> ",
      "send from fruit_stock where id < 3 order by id;\\r", "expect (2 rows)", "expect sluice> ",
      "send select 1 +\\r", "expect ...> ", "send   from x;\\r", "expect ^", "expect sluice> ",
      "send db:query('select * from nosuch')\\r", "expect exist", "expect sluice> ",
      "send begin\\r", "expect BEGIN", "expect sluice> ",
      "send insert into fruit_stock (id) values (50), (51);\\r", "expect INSERT 0 2",
      "expect sluice> ",
      "send Rollback\\r", "expect ROLLBACK", "expect sluice> ",
      "send select count(*) from fruit_stock; select 'a' as x;\\r", "expect (1 row)",
      "expect (1 row)", "expect sluice> ",
      -- a Lua global named like a keyword: valid Lua stays Lua
      "send select = 5\\r", "expect sluice> ",
      "send select + 1\\r", "expect 6", "expect sluice> ",
      "send select max(id) as top from fruit_stock\\r", "expect (1 row)", "expect sluice> ",
      -- two columns of one name: both shown
      "send select f.id, s.id from fruit_stock f, (select 7 as id) s where f.id = 1;\\r",
      "expect (1 row)", "expect sluice> ",
      "send copy (select id, note from fruit_stock where id < 3 order by id) to stdout;\\r",
      "expect COPY 2", "expect sluice> ",
      -- Ctrl-C cancels a running SQL line
      "send select pg_sleep(30);\\r", "sleep 1", "send \\x03", "expect canceling",
      "expect sluice> ",
      "send \\\\q\\r",
    }
    assert.are.equal(0, code, out)
    has(out, block { " id | fruit_name ", "----+------------", "  1 | apple", "  2 | pear",
                     "(2 rows)", "" })
    has(out, block { 'ERROR:  syntax error at or near "from"', "LINE 2:   from x;",
                     "          ^" })
    has(out, 'ERROR:  relation "nosuch" does not exist\n')
    assert.falsy(out:find("stack traceback", 1, true), out)
    has(out, "\nBEGIN\n")
    has(out, "\nINSERT 0 2\n")
    has(out, "\nROLLBACK\n")
    has(out, block { " count ", "-------", "     3", "(1 row)", "", " x ", "---", " a", "(1 row)" })
    has(out, "select + 1\n6\n")
    has(out, block { " top ", "-----", "  10", "(1 row)" })
    has(out, block { " id | id ", "----+----", "  1 |  7", "(1 row)" })
    has(out, block { "1\ttwo\\nlines", "2\t\\N", "COPY 2" })
    has(out, "ERROR:  canceling statement due to user request\n")
    has(out, "\nexit 0\n")
    -- the rolled back rows are not there
    assert.are.equal(3, db:query_one("select count(*)::int as n from fruit_stock").n)
  end)

  it("describes a table with \\d and lists tables with \\dt, as psql", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out = drive {
      "expect sluice> ",
      "send set search_path = repl_sql\\r", "expect sluice> ",
      "send \\\\d fruit_stock\\r", "expect Referenced by:", "expect sluice> ",
      "send \\\\d+ fruit_sale\\r", "expect Foreign-key constraints:", "expect sluice> ",
      "send \\\\dt\\r", "expect (2 rows)", "expect sluice> ",
      "send \\\\d nosuch\\r", "expect Did not find", "expect sluice> ",
      "sleep 0.3", "send \\x04",
    }
    assert.are.equal(0, code, out)
    has(out, block {
      '                   Table "repl_sql.fruit_stock"',
      "   Column   |       Type       | Collation | Nullable |  Default  ",
      "------------+------------------+-----------+----------+-----------",
      " id         | integer          |           | not null | ",
      " fruit_name | text             |           | not null | 'x'::text",
      " qty        | bigint           |           |          | ",
      " price      | double precision |           |          | ",
      " note       | text             |           |          | ",
      "Indexes:",
      '    "fruit_stock_pkey" PRIMARY KEY, btree (id)',
      '    "fruit_stock_name" btree (fruit_name)',
      "Referenced by:",
      '    TABLE "fruit_sale" CONSTRAINT "fruit_sale_fruit_id_fkey" FOREIGN KEY (fruit_id) '
        .. "REFERENCES fruit_stock(id)",
      "",
    })
    has(out, block {
      '                                       Table "repl_sql.fruit_sale"',
      "  Column  |           Type           | Collation | Nullable |                   Default                   ",
      "----------+--------------------------+-----------+----------+---------------------------------------------",
      " sale_id  | integer                  |           | not null | nextval('fruit_sale_sale_id_seq'::regclass)",
      " fruit_id | integer                  |           | not null | ",
      " sold_at  | timestamp with time zone |           |          | now()",
      "Indexes:",
      '    "fruit_sale_pkey" PRIMARY KEY, btree (sale_id)',
      "Check constraints:",
      '    "fruit_sale_sale_id_check" CHECK (sale_id > 0)',
      "Foreign-key constraints:",
      '    "fruit_sale_fruit_id_fkey" FOREIGN KEY (fruit_id) REFERENCES fruit_stock(id)',
      "",
    })
    -- the Owner column is as wide as the user's name (psql centres headers)
    local w = math.max(5, #owner)
    local head = (" "):rep(math.floor((w - 5) / 2)) .. "Owner" .. (" "):rep(math.floor((w - 4) / 2))
    local title_pad = (" "):rep(math.floor((10 + 13 + 7 + w + 2 + 3 - 17) / 2))
    has(out, block {
      title_pad .. "List of relations",
      "  Schema  |    Name     | Type  | " .. head .. " ",
      "----------+-------------+-------+-" .. ("-"):rep(w) .. "-",
      " repl_sql | fruit_sale  | table | " .. owner,
      " repl_sql | fruit_stock | table | " .. owner,
      "(2 rows)",
      "",
    })
    has(out, 'Did not find any relation named "nosuch".\n')
  end)

  it("completes Lua names, methods, and table and column names (SQL lines, strings)", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out = drive {
      "expect sluice> ",
      "send set search_path = repl_sql\\r", "expect sluice> ",
      "send sluice.lo\\t", "sleep 0.3", "send  == sluice.load\\r", "expect true", "expect sluice> ",
      "send db:que\\t", "sleep 0.3", "send _one('select 5 as five').five\\r", "expect 5",
      "expect sluice> ",
      "send select fruit_n\\t", "sleep 0.3", "send from fruit_st\\t", "sleep 0.3",
      "send where id = 10;\\r", "expect (1 row)", "expect sluice> ",
      "send db:query_one('select count(*) from fruit_sa\\t", "sleep 0.3", "send ').count\\r",
      "expect sluice> ",
      -- a new table is offered once DDL ran
      "send create table fruit_crate (crate_no int);\\r", "expect CREATE TABLE", "expect sluice> ",
      "send table fruit_c\\t", "sleep 0.3", "send ;\\r", "expect (0 rows)", "expect sluice> ",
      "sleep 0.3", "send \\x04",
    }
    assert.are.equal(0, code, out)
    has(out, "\ntrue\n")
    has(out, "\n5\n")
    has(out, block { " fruit_name ", "------------", " fig", "(1 row)" })
    has(out, ").count\n0\n")
    has(out, block { " crate_no ", "----------", "(0 rows)" })
  end)

  it("shows sluice.compare's table at the prompt, not its return value", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out = drive {
      "expect sluice> ",
      "send set search_path = repl_sql\\r", "expect sluice> ",
      "send create table cmp_t (id int)\\r", "expect sluice> ",
      "send sluice.compare{db = db, table = 'cmp_t', n = 50, rows = function(i) return i end,"
        .. " strategies = {'copy_text', 'batch'}}\\r",
      "expect rows/s", "expect sluice> ",
      "sleep 0.3", "send \\x04",
    }
    assert.are.equal(0, code, out)
    has(out, "\n| strategy | rows | seconds | rows/s | MB/s | WAL MB | speed-up |\n")
    has(out, "\n| copy_text | 50")
    -- printed once, and no dump of the results table
    local _, n = out:gsub("| strategy | rows |", "")
    assert.are.equal(1, n, out)
    assert.falsy(out:find("rows_per_s", 1, true), out)
    assert.falsy(out:find("identical", 1, true), out)
  end)
end)

describe("the prompt's pieces", function()
  local S = require "sluice.repl_sql"
  local C = require "sluice.repl_complete"

  it("tells SQL lines from Lua lines", function()
    local cases = {
      { "select * from t", "sql" }, { "SELECT 1;", "sql" }, { "  with x as (select 1) table x", "sql" },
      { "begin", "sql" }, { "commit;", "sql" }, { "values (1), (2)", "sql" },
      { "table t", "sql" }, { "insert into t values (1)", "sql" }, { "explain select 1", "sql" },
      { "select('#', 1, 2)", "lua" }, { "select", "lua" }, { "values = {1, 2}", "lua" },
      { "table.insert(x, 1)", "lua" }, { "db:query('select 1')", "lua" }, { "x = 1", "lua" },
      { "selection = 1", "lua" }, { "\\d t", "meta" }, { "\\q", "meta" },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], S.kind(c[1]), c[1])
    end
  end)

  it("knows when SQL input is ready to run", function()
    local cases = {
      { "select 1", true, true }, { "select 1;", true, true }, { "select a,", true, false },
      { "select * from", true, false }, { "select * from t where", true, false },
      { "select (1", true, false }, { "select 'a;", true, false }, { "select $$;", true, false },
      { "select 1 /* x;", true, false }, { "insert into t default values", true, true },
      { "insert into t values", true, false }, { "select 1 -- note", true, true },
      { "select a,\nb", false, false }, { "select a,\nb from t;", false, true },
      { "select ';'", true, true }, { "select 1; -- done", true, true },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[3], S.ready(c[1], c[2]), c[1])
    end
    assert.are.same({ "select 1;", "select ';' as x;", "select $a$;$a$" },
      S.split("select 1; -- one\n;  select ';' as x;\nselect $a$;$a$"))
  end)

  it("completes from Lua values and the catalog", function()
    local db = H.connect()
    H.schema(db, "repl_cmp")
    db:exec("create table orders (order_id int, order_total numeric); create table other (x int)")
    C.forget()
    -- Lua names are the prompt's globals: db and sluice, as it sets them
    local saved_db, saved_sluice = rawget(_G, "db"), rawget(_G, "sluice")
    rawset(_G, "db", db)
    rawset(_G, "sluice", require "sluice")
    local methods = C.complete("x = db:co", "db:co", false)
    local fields = C.complete("sluice.lo", "sluice.lo", false)
    rawset(_G, "db", saved_db)
    rawset(_G, "sluice", saved_sluice)
    assert.are.same({ "db:commit", "db:copy", "db:copy_from_file", "db:copy_out" }, methods)
    assert.are.same({ "sluice.load" }, fields)
    local list, space = C.complete("select order_t", "order_t", false, db)
    assert.are.same({ "order_total" }, list)
    assert.is_true(space)
    list, space = C.complete("db:query('select * from ord", "ord", false, db)
    assert.are.same({ "order", "order_id", "order_total", "orders" }, list)
    assert.is_false(space)
    assert.are.same({ "orders.order_id", "orders.order_total" },
      (C.complete("select orders.", "orders.", false, db)))
    assert.are.same({ "FROM" }, (C.complete("SELECT 1 FR", "FR", false, db)))
    -- \d NAME: relations only
    assert.are.same({ "orders" }, (C.complete("\\d ord", "ord", false, db)))
    -- cached until forgotten
    db:exec("create table orders2 (y int)")
    assert.are.same({ "orders" }, (C.complete("table orders", "orders", false, db)))
    C.forget()
    assert.are.same({ "orders", "orders2" }, (C.complete("table orders", "orders", false, db)))
    C.forget()
    db:close()
  end)

  it("help() lists topics, help(topic) shows that topic only", function()
    local code, out = H.sluice([[-e 'require("sluice.repl").help("copy")']])
    assert.are.equal(0, code)
    assert.are.equal("  db:copy(t [, cols] [, opts])  a COPY stream: cp:row(...), cp:rows(list),",
                     out:match("^[^\n]*"))
    assert.truthy(out:find("db:copy_from_file", 1, true), out)
    assert.falsy(out:find("sluice.load", 1, true), out)
    assert.falsy(out:find("db:batch", 1, true), out)
    code, out = H.sluice([[-e 'require("sluice.repl").help()']])
    assert.are.equal(0, code)
    assert.truthy(out:find('help("TOPIC") shows one', 1, true), out)
    assert.truthy(out:find("\n  copy           COPY streams in and out, CSV files into COPY\n", 1, true), out)
    assert.truthy(out:find("\n  prompt         ", 1, true), out)
    assert.falsy(out:find("cp:row", 1, true), out)
    code, out = H.sluice([[-e 'require("sluice.repl").help("nosuch")']])
    assert.truthy(out:find('no help on "nosuch"; topics: connect, query', 1, true), out)
  end)
end)
