local H = require "helper"
local sluice = require "sluice"

describe("sluice.connect", function()
  it("connects with DATABASE_URL when given no target", function()
    local db = sluice.connect()
    assert.are.equal(2, db:query_one("select 1 + 1 as x").x)
    db:close()
  end)

  it("accepts a conninfo string and a postgres:// URI", function()
    local url = H.url()
    assert.truthy(url:match("^postgresql://"))
    local db1 = sluice.connect(url)
    local info = db1:info()
    local host = info.host
    local ci = ("host=%s port=%s dbname=%s user=%s"):format(host, info.port,
      info.dbname, info.user)
    local db2 = sluice.connect(ci)
    assert.are.equal(info.dbname, db2:query_one("select current_database() as d").d)
    db1:close(); db2:close()
  end)

  it("uses the PG* environment variables when DATABASE_URL is unset", function()
    local info = H.connect():info()
    local env = ("env -u DATABASE_URL PGHOST=%s PGPORT=%s PGDATABASE=%s PGUSER=%s")
      :format(H.q(info.host), info.port, info.dbname, info.user)
    local code, out = H.sluice([[-e 'print(require"sluice".connect():query_one("select current_user as u").u)']], env)
    assert.are.equal(0, code)
    assert.are.equal(info.user .. "\n", out)
  end)

  it("raises an error object with sqlstate 08001 when it cannot connect", function()
    local ok, err = pcall(sluice.connect, "host=/nonexistent-dir port=5999 dbname=x user=y")
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err))
    assert.are.equal("08001", err.sqlstate)
    assert.truthy(err.message:find('host=/nonexistent-dir port=5999 dbname=x user=y', 1, true))
    assert.truthy(err.message:find("No such file or directory", 1, true), err.message)
  end)

  it("rejects a target that is not a string, at the caller's line", function()
    local ok, err = pcall(function() sluice.connect(42) end)
    assert.is_false(ok)
    assert.truthy(err:find("conn_spec.lua:%d+: sluice.connect: target must be"), err)
  end)
end)

describe("db:query", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function() db:close() end)

  it("converts values by column type", function()
    local r = db:query_one([[
      select 1::int2 as i2, 2::int4 as i4, 3::int8 as i8, 1.5::float4 as f4,
             0.1::float8 as f8, true as t, false as f, 12.50::numeric as num,
             'héllo'::text as txt, '{"a":1}'::json as j, '2024-02-29'::date as d,
             '\x00ff41'::bytea as b, null::int as n, 'NaN'::float8 as nan,
             'Infinity'::float8 as inf, 9007199254740993::int8 as big,
             -9007199254740992::int8 as edge]])
    assert.are.equal(1, r.i2); assert.are.equal(2, r.i4); assert.are.equal(3, r.i8)
    assert.are.equal(1.5, r.f4); assert.are.equal(0.1, r.f8)
    assert.are.equal(true, r.t); assert.are.equal(false, r.f)
    assert.are.equal("12.50", r.num); assert.are.equal("héllo", r.txt)
    assert.are.equal('{"a":1}', r.j); assert.are.equal("2024-02-29", r.d)
    assert.are.equal("\0\255A", r.b)
    assert.are.equal(sluice.null, r.n)
    assert.is_true(r.nan ~= r.nan)
    assert.are.equal(math.huge, r.inf)
    assert.are.equal("cdata", type(r.big))
    assert.are.equal("9007199254740993LL", tostring(r.big))
    assert.are.equal("number", type(r.edge))
    assert.are.equal(-9007199254740992, r.edge)
  end)

  it("returns rows as an array keyed by column name, NULL as sluice.null", function()
    local rows, tag = db:query("select g as id, case when g % 2 = 0 then null else 'odd' end as kind from generate_series(1, 4) g order by g")
    assert.are.equal(4, #rows)
    assert.are.equal("SELECT 4", tag)
    assert.are.same({ id = 1, kind = "odd" }, rows[1])
    assert.are.equal(sluice.null, rows[2].kind)
    assert.is_true(sluice.is_null(rows[2].kind))
    assert.are.same({}, db:query("select 1 where false"))
    assert.is_nil(db:query_one("select 1 where false"))
  end)

  it("sends parameters: nil, sluice.null, booleans, numbers, strings, int64", function()
    local r = db:query_one([[select $1::int as a, $2::text as b, $3::bool as c,
      $4::float8 as d, $5::text as e, $6::int8 as f, $7::numeric as g,
      $8::int8 as h, $9::float8 as i, $10::text as j, $11::numeric as k]],
      nil, sluice.null, true, 0.1, "it's \"quoted\"\n\ttab",
      0x7fffffffffffffffLL, 12345678901234, -42, 1e300,
      "", 2^53)
    assert.are.equal(sluice.null, r.a)
    assert.are.equal(sluice.null, r.b)
    assert.are.equal(true, r.c)
    assert.are.equal(0.1, r.d)
    assert.are.equal("it's \"quoted\"\n\ttab", r.e)
    assert.are.equal("9223372036854775807LL", tostring(r.f))
    assert.are.equal("12345678901234", r.g)
    assert.are.equal(-42, r.h)
    assert.are.equal(1e300, r.i)
    assert.are.equal("", r.j)
    assert.are.equal("9007199254740992", r.k)
    -- a float for a numeric column keeps its short form
    assert.are.equal("0.1", db:query_one("select $1::numeric as x", 0.1).x)
    assert.are.equal("-0", db:query_one("select $1::float8::text as x", -0.0).x)
  end)

  it("sends a string with NUL bytes as raw bytes (bytea)", function()
    local r = db:query_one("select $1::bytea as b, length($1::bytea) as n", "a\0b")
    assert.are.equal("a\0b", r.b)
    assert.are.equal(3, r.n)
  end)

  it("refuses parameters it cannot send, naming the parameter", function()
    local ok, err = pcall(db.query, db, "select $1, $2", 1, {})
    assert.is_false(ok)
    assert.truthy(err:find("parameter $2: cannot send a table", 1, true), err)
    ok, err = pcall(db.query, db, "select $1", print)
    assert.truthy(err:find("parameter $1: cannot send a function", 1, true), err)
    -- the connection is still usable afterwards
    assert.are.equal(1, db:query_one("select 1 as x").x)
  end)

  it("runs several statements with exec and returns the last count and tag", function()
    H.schema(db, "conn_exec")
    local n, tag = db:exec("create table t(a int); insert into t select generate_series(1, 5)")
    assert.are.equal(5, n)
    assert.are.equal("INSERT 0 5", tag)
    assert.are.equal(5, db:query_one("select count(*) as n from t").n)
  end)

  it("refuses COPY through exec and stays usable", function()
    H.schema(db, "conn_copy")
    db:exec("create table t(a int)")
    local ok, err = pcall(db.exec, db, "copy t from stdin")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("use db:copy()", 1, true), tostring(err))
    ok, err = pcall(db.exec, db, "copy t to stdout")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("use db:copy_out()", 1, true), tostring(err))
    assert.are.equal(0, db:query_one("select count(*) as n from t").n)
  end)

  it("prepares statements and runs them many times", function()
    H.schema(db, "conn_prep")
    db:exec("create table t(id int primary key, name text)")
    local ins = db:prepare("insert into t values ($1, $2)")
    for i = 1, 50 do assert.are.equal(1, (ins:exec(i, "n" .. i))) end
    local sel = db:prepare("select name from t where id = $1")
    assert.are.equal("n7", sel:query_one(7).name)
    assert.is_nil(sel:query_one(99))
    assert.are.equal(1, #sel:query(50))
    ins:close()
    local ok, err = pcall(ins.exec, ins, 51, "x")
    assert.is_false(ok)
    assert.truthy(err:find("prepared statement is closed", 1, true))
    ok, err = pcall(db.prepare, db, "select nope from t")
    assert.is_false(ok)
    assert.are.equal("42703", err.sqlstate)
  end)

  it("quotes identifiers", function()
    assert.are.equal('"my table"', db:quote_ident("my table"))
    assert.are.equal('"a""b"', db:quote_ident('a"b'))
    assert.are.equal('"simple"', db:quote_ident("simple"))
  end)

  it("hands notices to on_notice after the call", function()
    local seen = {}
    db:on_notice(function(n) seen[#seen + 1] = n end)
    db:exec("set client_min_messages = notice")
    db:exec("do $$ begin raise notice 'hello %', 42; raise warning 'careful'; end $$")
    db:on_notice(nil)
    db:exec("set client_min_messages = warning")
    assert.are.equal(2, #seen)
    assert.are.equal("hello 42", seen[1].message)
    assert.are.equal("NOTICE", seen[1].severity)
    assert.are.equal("WARNING", seen[2].severity)
    assert.are.equal("01000", seen[2].sqlstate)
  end)

  it("raises at the caller's line when used after close", function()
    local c = H.connect()
    c:close()
    assert.is_true(c:is_closed())
    assert.are.equal("closed", c:status())
    local ok, err = pcall(function() c:exec("select 1") end)
    assert.is_false(ok)
    assert.truthy(err:find("conn_spec.lua:%d+: the connection is closed"), err)
    c:close() -- twice is fine
  end)

  it("closes the session when the connection is collected", function()
    local c = H.connect()
    local pid = c:info().backend_pid
    c = nil -- luacheck: ignore
    collectgarbage(); collectgarbage()
    local gone = false
    for _ = 1, 50 do
      if not db:query_one("select 1 as x from pg_stat_activity where pid = $1", pid) then
        gone = true; break
      end
      db:exec("select pg_sleep(0.02)")
    end
    assert.is_true(gone)
  end)
end)

describe("re-entrancy and busy connections", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function() db:close() end)

  it("hands each notice to on_notice once, even when the handler uses the connection", function()
    local seen = {}
    db:on_notice(function(n)
      seen[#seen + 1] = n.message
      db:exec("select 1") -- a handler that logs through the same connection
    end)
    db:exec("set client_min_messages = notice")
    db:exec("do $$ begin raise notice 'hello'; raise notice 'again'; end $$")
    db:on_notice(nil)
    db:exec("set client_min_messages = warning")
    assert.are.same({ "hello", "again" }, seen)
  end)

  it("refuses a prepared statement while a pipeline or a COPY holds the connection", function()
    H.schema(db, "busy_stmt")
    db:exec("create table t(id int)")
    local st = db:prepare("select 1 as x")
    local pl = db:pipeline("insert into t values ($1)")
    pl:send(1)
    local err = H.error_of(function() st:query() end)
    assert.truthy(err:find("conn_spec.lua:%d+: the connection is busy with an open pipeline; close%(%) it first"), err)
    err = H.error_of(function() db:query("select 1") end)
    assert.truthy(err:find("busy with an open pipeline", 1, true), err)
    pl:close()
    local cp = db:copy("t")
    err = H.error_of(function() st:query() end)
    assert.truthy(err:find("the connection is busy with an open COPY", 1, true), err)
    cp:abort()
    assert.are.equal(1, st:query_one().x)
    assert.are.equal(1, H.count(db, "t"))
  end)
end)
