-- A connection lost in the middle of a call: every path raises an error
-- object with a sqlstate (08006 when the server sent no error of its
-- own), says what was committed, in doubt or rolled back, and leaves
-- db:status() at "broken"; the table holds what the error says.
local sluice = require "sluice"
local ffi = require "ffi"
local H = require "helper"

pcall(ffi.cdef, "int usleep(unsigned int usec);")

local LOST = "connection to the server lost (server closed the connection unexpectedly)"

-- A private server whose backends die without a word: die() makes the
-- backend that runs it SIGKILL itself (COPY TO PROGRAM runs a child of
-- the backend), so the client sees the socket close with no error message
-- from the server, as when the network or the server host goes away.
-- The postmaster then restarts (crash recovery), so every test waits for
-- it.  synchronous_commit stays on: a crash keeps exactly what was
-- committed.
describe("a connection lost without a message from the server", function()
  local t, url, csv_path, dir

  -- a connection once the server accepts them again
  local function admin()
    local last
    for _ = 1, 500 do
      local ok, db = pcall(sluice.connect, url)
      if ok and pcall(db.exec, db, "select 1") then return db end
      last = db
      ffi.C.usleep(20000)
    end
    error("the server did not come back: " .. tostring(last))
  end

  local function count()
    local a = admin()
    local n = a:query_one("select count(*) as n from lost").n
    a:close()
    return n
  end

  -- fn must raise the lost connection's error; its message is LOST, or
  -- `message` when given
  local function lost_error(db, fn, message)
    local err = H.error_of(fn)
    assert.is_true(sluice.is_error(err), tostring(err))
    assert.are.equal("08006", err.sqlstate, tostring(err))
    assert.are.equal("FATAL", err.severity)
    assert.are.equal(message or LOST, err.message)
    assert.truthy(tostring(err):find("\nHINT:  ", 1, true), tostring(err))
    assert.are.equal("broken", db:status())
    return err
  end

  setup(function()
    t = sluice.tmpdb { fast = true, settings = { "synchronous_commit=on" } }
    url = t:uri()
    local a = admin()
    a:exec([[
      set client_min_messages = warning;
      create function die() returns void language plpgsql as $$
      begin
        execute format('copy (select 1) to program %L', 'kill -9 ' || pg_backend_pid());
      end $$;
      create function die_at_500() returns trigger language plpgsql as $$
      begin
        if new.id = 500 then perform die(); end if;
        return new;
      end $$;
      create function die_now() returns trigger language plpgsql as $$
      begin perform die(); return null; end $$;
      create table lost (id int, v text);
      create trigger lost_die before insert on lost
        for each row execute function die_at_500();
      create table lost_commit (id int);
      create constraint trigger lost_commit_die after insert on lost_commit
        deferrable initially deferred for each row execute function die_now();
    ]])
    a:close()
    dir = H.tmpdir()
    csv_path = dir .. "/rows.csv"
    local f = assert(io.open(csv_path, "wb"))
    f:write("id,v\n")
    for i = 1, 20000 do f:write(i, ",row ", i, "\n") end
    f:close()
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. H.q(dir)) end
    if t then t:stop() end
  end)

  it("during db:copy in text format", function()
    local db = admin()
    local cp = db:copy("lost", nil, { format = "text", chunk_size = 1024 })
    lost_error(db, function()
      for i = 1, 100000 do cp:row(i, "row") end
      cp:finish()
    end)
    assert.are.equal("failed", cp.state)
    assert.is_true(cp.rows_sent < 100000)
    assert.are.equal(0, count())
  end)

  it("during db:copy in binary format", function()
    local db = admin()
    local cp = db:copy("lost", nil, { format = "binary", chunk_size = 1024 })
    lost_error(db, function()
      for i = 1, 100000 do cp:row(i, "row") end
      cp:finish()
    end)
    assert.are.equal("failed", cp.state)
    assert.are.equal(0, count())
  end)

  it("when finish() sends the last rows", function()
    local db = admin()
    local cp = db:copy("lost", nil, { format = "text" })
    for i = 1, 1000 do cp:row(i, "row") end
    -- every row went out and no answer came: nobody can tell
    local err = lost_error(db, function() cp:finish() end, "COPY: the connection was lost before the "
      .. "server answered: its 1000 rows may or may not have been committed (check the table): " .. LOST)
    assert.are.same({ 0, 1000 }, { err.committed_rows, err.in_doubt_rows })
    assert.are.equal(0, count())
  end)

  it("during db:copy_from_file", function()
    local db = admin()
    lost_error(db, function() db:copy_from_file("lost", csv_path) end)
    assert.are.equal(0, count())
  end)

  it("during db:copy_out, and the transaction's rows are not kept", function()
    local db = admin()
    db:begin()
    db:exec("insert into lost select g, 'x' from generate_series(1, 10) g")
    local n = 0
    lost_error(db, function()
      for _ in db:copy_out("select g, case when g = 100000 then die() end from generate_series(1, 1000000) g") do
        n = n + 1
      end
    end)
    assert.is_true(n < 100000)
    assert.are.equal(0, count())
  end)

  it("during a query in a transaction, and every later call says so", function()
    local db = admin()
    db:begin()
    db:exec("insert into lost select g, 'x' from generate_series(1, 10) g")
    lost_error(db, function() db:query("select die()") end)
    local again = "connection to the server lost (no connection to the server)"
    lost_error(db, function() db:query("select 1") end, again)
    -- not "a transaction is already in progress"
    lost_error(db, function() db:begin() end, again)
    lost_error(db, function() db:commit() end, again)
    lost_error(db, function() db:rollback() end, again)
    lost_error(db, function() db:transaction(function() end) end, again)
    assert.are.equal(0, count())
  end)

  it("during a batch flush", function()
    local db = admin()
    local b = db:batch("lost", { "id", "v" }, { rows = 100 })
    -- autocommit per flush: the flushes before the one that died are in
    lost_error(db, function()
      for i = 1, 1000 do b:add(i, "x") end
      b:close()
    end, "batch: rows 401-500 may or may not have been committed (the connection was lost before the "
      .. "server answered: check the table; rows 1-400 were committed by earlier flushes): " .. LOST)
    assert.are.equal(400, count())
    admin():exec("truncate lost")
  end)

  it("during a pipeline, naming the rows committed by earlier syncs", function()
    local db = admin()
    local p = db:pipeline("insert into lost values ($1, $2)", { sync_every = 100 })
    local err = lost_error(db, function()
      for i = 1, 1000 do p:send(i, "x") end
      p:close()
    end, "pipeline: " .. LOST .. " (rows 1-400 were committed by earlier syncs; rows 401-1000 may or may "
      .. "not have been committed: their COMMIT was sent, but the connection was lost before the server "
      .. "answered (check the table); nothing from row 1001 on was)")
    assert.are.equal(400, err.committed_rows)
    assert.are.equal(400, count())
    admin():exec("truncate lost")
  end)

  it("during a load with drop_indexes, whose indexes then cannot be recreated", function()
    local a = admin()
    a:exec("create table lost_ix (id int, v text); create index lost_ix_v on lost_ix (v); "
      .. "create trigger lost_ix_die before insert on lost_ix for each row execute function die_at_500()")
    a:close()
    local db = admin()
    local rows = {}
    for i = 1, 1000 do rows[i] = { i, "row" } end
    lost_error(db, function()
      sluice.load { db = db, table = "lost_ix", rows = rows, drop_indexes = true, quiet = true }
    end, "load: could not recreate index lost_ix_v (08006: connection to the server lost (no connection "
      .. "to the server)) after the load failed: 08006: COPY: the connection was lost before the server "
      .. "answered: its 1000 rows may or may not have been committed (check the table): " .. LOST
      .. "; the definitions to restore by hand:\n"
      .. "CREATE INDEX lost_ix_v ON public.lost_ix USING btree (v);")
    a = admin()
    assert.are.equal(0, a:query_one("select count(*) as n from lost_ix").n)
    a:close()
  end)

  it("during COMMIT, saying the outcome is unknown", function()
    local db = admin()
    db:begin()
    db:exec("insert into lost_commit values (1)")
    local err = lost_error(db, function() db:commit() end)
    assert.are.equal("The connection was lost during COMMIT: the server may have committed the transaction "
      .. "before the connection ended, or not. Check the data before running the transaction again.", err.detail)
    local a = admin()
    assert.are.equal(0, a:query_one("select count(*) as n from lost_commit").n)
    a:close()
  end)
end)

-- pg_terminate_backend: the server says why (FATAL 57P01) before it goes,
-- unless it was blocked writing to the client; either way the error has a
-- sqlstate and says what was lost.
describe("a connection terminated by the server", function()
  local db

  setup(function()
    db = H.connect()
    db:exec([[
      drop schema if exists conn_lost cascade;
      create schema conn_lost;
      create table conn_lost.t (id int, v text);
    ]])
  end)

  teardown(function()
    db:exec("drop schema if exists conn_lost cascade")
    db:close()
  end)

  -- fn(victim, kill) must fail: kill() terminates victim's backend
  local function terminated(fn)
    local victim = H.connect()
    local pid = victim:info().backend_pid
    local ok, err = pcall(fn, victim, function() db:query("select pg_terminate_backend($1)", pid) end)
    local status = victim:status()
    victim:close()
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err), tostring(err))
    assert.truthy(err.sqlstate == "57P01" or err.sqlstate == "08006", tostring(err))
    assert.are.equal("FATAL", err.severity)
    assert.truthy(tostring(err):find("A server rolls back whatever a connection leaves uncommitted", 1, true),
      tostring(err))
    assert.are.equal("broken", status)
    assert.are.equal(0, H.count(db, "conn_lost.t"))
    return err
  end

  it("during db:copy_out", function()
    terminated(function(victim, kill)
      victim:exec("begin; insert into conn_lost.t values (1, 'a')")
      for row in victim:copy_out("select g from generate_series(1, 3000000) g") do
        if row[1] == "100" then kill() end
      end
    end)
  end)

  it("during db:copy", function()
    terminated(function(victim, kill)
      local cp = victim:copy("conn_lost.t", nil, { format = "binary", chunk_size = 1024 })
      cp:row(1, "a")
      kill()
      for i = 2, 1000000 do cp:row(i, "row") end
      cp:finish()
    end)
  end)

  it("before a query", function()
    terminated(function(victim, kill)
      victim:exec("begin; insert into conn_lost.t values (1, 'a')")
      kill()
      for _ = 1, 100 do victim:query("select 1"); ffi.C.usleep(10000) end
    end)
  end)
end)
