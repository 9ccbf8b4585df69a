local H = require "helper"
local sluice = require "sluice"

describe("database errors", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "errs")
    db:exec([[create table users(id int primary key, email text not null,
      age int check (age >= 0))]])
    db:exec("insert into users values (1, 'a@example.com', 30)")
  end)
  teardown(function() db:close() end)

  it("carry sqlstate, message, detail, constraint, table for a unique violation", function()
    local ok, err = pcall(db.exec, db, "insert into users values (1, 'b@example.com', 5)")
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err))
    assert.are.equal("ERROR", err.severity)
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal('duplicate key value violates unique constraint "users_pkey"', err.message)
    assert.are.equal("Key (id)=(1) already exists.", err.detail)
    assert.are.equal("users_pkey", err.constraint)
    assert.are.equal("users", err.table)
    assert.are.equal("errs", err.schema)
    assert.are.equal(
      'ERROR:  23505: duplicate key value violates unique constraint "users_pkey"\n'
      .. "DETAIL:  Key (id)=(1) already exists.", tostring(err))
  end)

  it("carry column for a not-null violation and a check constraint name", function()
    local _, err = pcall(db.query, db, "insert into users values ($1, $2, $3)", 2, nil, 1)
    assert.are.equal("23502", err.sqlstate)
    assert.are.equal("email", err.column)
    _, err = pcall(db.query, db, "insert into users values ($1, $2, $3)", 3, "c@x", -1)
    assert.are.equal("23514", err.sqlstate)
    assert.are.equal("users_age_check", err.constraint)
  end)

  it("carry position and hint for a syntax or name error", function()
    local _, err = pcall(db.exec, db, "select id, emial from users")
    assert.are.equal("42703", err.sqlstate)
    assert.are.equal('column "emial" does not exist', err.message)
    assert.are.equal(12, err.position)
    assert.are.equal('Perhaps you meant to reference the column "users.email".', err.hint)
    -- the ^ under character 12 of the statement, after "LINE 1: "
    assert.are.equal("LINE 1: select id, emial from users\n" .. (" "):rep(8 + 11) .. "^", err.position_lines)
    assert.are.equal('ERROR:  42703: column "emial" does not exist\n'
      .. "LINE 1: select id, emial from users\n" .. (" "):rep(19) .. "^\n"
      .. 'HINT:  Perhaps you meant to reference the column "users.email".', tostring(err))
  end)

  it("show the statement's line of a position as psql does, on any line, of any statement", function()
    -- the line and the column of the ^: the token must be right above it
    local function under(err, token)
      local line, pad = err.position_lines:match("^(LINE %d+: [^\n]*)\n( *)%^$")
      assert.truthy(line, err.position_lines)
      assert.are.equal(#pad + 1, line:find(token, 1, true), err.position_lines)
      return line
    end
    -- the line holding the position, tabs as spaces, in a multi-statement exec
    local _, err = pcall(db.exec, db, "select 1;\nselect id\n\tfrom users wher id = 1")
    assert.are.equal('syntax error at or near "id"', err.message)
    assert.are.equal("LINE 3:  from users wher id = 1", under(err, "id ="))
    -- a statement with parameters
    _, err = pcall(db.query, db, "select $1::int + nope from users", 1)
    assert.are.equal("LINE 1: select $1::int + nope from users", under(err, "nope"))
    -- a long line is cut around the position, as psql cuts it
    _, err = pcall(db.exec, db, "select " .. ("1 + "):rep(30) .. "nope")
    local line = under(err, "nope")
    assert.truthy(line:find("^LINE 1: %.%.%.[1 +]+ nope$"), line)
    assert.truthy(#line < 8 + 3 + 70, line)
    -- a position inside a function's statement: that statement's line
    _, err = pcall(db.exec, db, "do $$ begin perform nope_fn(); end $$")
    assert.are.equal("LINE 1: SELECT nope_fn()", under(err, "nope_fn"))
    -- no position, no lines
    _, err = pcall(db.exec, db, "insert into users values (1, 'x@example.com', 1)")
    assert.is_nil(err.position)
    assert.is_nil(err.position_lines)
  end)

  it("carry context from PL/pgSQL", function()
    local _, err = pcall(db.exec, db, [[do $$ begin
      raise exception 'broken widget %', 7 using hint = 'fix the widget',
        detail = 'widget detail'; end $$]])
    assert.are.equal("P0001", err.sqlstate)
    assert.are.equal("broken widget 7", err.message)
    assert.are.equal("widget detail", err.detail)
    assert.are.equal("fix the widget", err.hint)
    assert.truthy(err.context:find("PL/pgSQL function inline_code_block", 1, true), err.context)
    assert.are.equal(
      "ERROR:  P0001: broken widget 7\nDETAIL:  widget detail\nHINT:  fix the widget\nCONTEXT:  "
      .. err.context, tostring(err))
  end)

  it("leave the connection usable, and a cancelled statement says so", function()
    db:exec("set statement_timeout = '50ms'")
    local _, err = pcall(db.exec, db, "select pg_sleep(5)")
    db:exec("reset statement_timeout")
    assert.are.equal("57014", err.sqlstate)
    assert.are.equal("canceling statement due to statement timeout", err.message)
    assert.are.equal(1, db:query_one("select 1 as x").x)
  end)

  it("report a server that dies as a connection error (08006)", function()
    local victim = H.connect()
    local pid = victim:info().backend_pid
    db:query("select pg_terminate_backend($1)", pid)
    local ok, err = pcall(victim.exec, victim, "select 1")
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err))
    assert.truthy(err.sqlstate == "08006" or err.sqlstate == "57P01", tostring(err))
    assert.truthy(tostring(err):find("terminat", 1, true) or tostring(err):find("closed", 1, true), tostring(err))
    victim:close()
  end)
  it("name the script's line for a value refused inside a load, an upsert or a model", function()
    db:exec("drop table if exists err_where; create table err_where (k text primary key, v float8)")
    local here = debug.getinfo(1, "S").short_src
    local function line() return debug.getinfo(2, "l").currentline end
    local cases = {}
    for _, s in ipairs({ "copy_binary", "upsert", "unlogged_staging" }) do
      cases[#cases + 1] = { s, function()
        local at = line() + 1
        local ok, err = pcall(sluice.load, { db = db, table = "err_where", rows = { { "a", "bad" } },
                                            strategy = s, key = s == "upsert" and { "k" } or nil, quiet = true })
        return ok, err, at
      end }
    end
    cases[#cases + 1] = { "db:upsert", function()
      local u = db:upsert("err_where", { "k", "v" }, { key = "k" })
      local at = line() + 1
      local ok, err = pcall(function() u:row("a", "bad") end)
      u:abort()
      return ok, err, at
    end }
    for _, c in ipairs(cases) do
      local ok, err, at = c[2]()
      assert.is_false(ok, c[1])
      assert.are.equal("22P02", err.sqlstate, c[1])
      assert.are.equal(("%s:%d: "):format(here, at), err.where, c[1])
    end
    assert.are.equal(0, H.count(db, "err_where"))
  end)
end)
