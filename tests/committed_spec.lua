-- luacheck: std +busted
-- What an error says was committed is what the table holds: db:batch,
-- db:pipeline and sluice.load (rowwise_tx with commit_every, batch,
-- copy_binary) stopped by Ctrl-C (SIGINT) at many moments, and by their
-- backend being terminated from another connection.
--
-- Each trial runs a script in a child sluice process that loads rows with
-- ids 1, 2, 3, ... in order until it is stopped, catches the error and
-- writes what the error says; the spec then compares that with the table.
local H = require "helper"
local ffi = require "ffi"

pcall(ffi.cdef, "int usleep(unsigned int usec);")

local SCHEMA = "committed_spec"

local function sleep_ms(ms) ffi.C.usleep(math.floor(ms * 1000)) end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function wait_for(path, secs)
  for _ = 1, secs * 100 do
    if exists(path) then return true end
    sleep_ms(10)
  end
  return false
end

-- The child's script: `load` is the body of a function(db, t, ready) that
-- loads rows with ids 1, 2, ... into table t and calls ready() once some
-- rows are committed.  The script writes the error's claims to `out`.
local CHILD = [[
local sluice = require "sluice"
local ffi = require "ffi"
ffi.cdef "int getpid(void);"
local db = sluice.connect()
db:exec("set search_path = %s")
local ids = ffi.C.getpid() .. " " .. db:info().backend_pid
local function ready()
  local f = io.open(%q .. ".tmp", "w")
  f:write(ids)
  f:close()
  os.rename(%q .. ".tmp", %q)
end
-- a body sets counters(): what its batch or pipeline says is committed
local counters
local function load(db, t, ready) %s end
local ok, err = pcall(load, db, %q, ready)
local f = io.open(%q .. ".tmp", "w")
if ok then
  f:write("return { ok = true }")
elseif type(err) == "table" then
  f:write(("return { committed = %%s, doubt = %%s, msg = %%q }"):format(
    tostring(err.committed_rows), tostring(err.in_doubt_rows), tostring(err.message)))
else
  -- a plain error (Ctrl-C noticed in this script's own loop) says nothing
  -- about the rows: the object's counters do
  local c, d
  if counters then c, d = counters() end
  f:write(("return { plain = true, committed = %%s, doubt = %%s, msg = %%q }"):format(
    tostring(c), tostring(d), tostring(err)))
end
f:close()
os.rename(%q .. ".tmp", %q)
]]
local tmp, db
local seq = 0

-- Run one trial: `how` is "sigint" or "terminate"; delay_ms after the
-- child said it is ready.  Returns the child's report and the table name.
local function trial(body, how, delay_ms)
  seq = seq + 1
  local t = "t" .. seq
  db:exec(("create table %s (id bigint primary key, v text)"):format(t))
  local dir = tmp .. "/" .. seq
  os.execute("mkdir -p " .. H.q(dir))
  local script, ready, out = dir .. "/child.lua", dir .. "/ready", dir .. "/out"
  H.write(script, CHILD:format(SCHEMA, ready, ready, ready, body, t, out, out, out))
  os.execute(("(timeout -s KILL 60 %s %s >%s/log 2>&1; echo $? >%s/code) &")
    :format(H.q(H.exe), H.q(script), H.q(dir), H.q(dir)))
  assert(wait_for(ready, 20), "the child did not start: " .. (exists(dir .. "/log")
    and H.slurp(dir .. "/log") or ""))
  local pid, bpid = H.slurp(ready):match("^(%d+) (%d+)$")
  sleep_ms(delay_ms)
  if how == "sigint" then
    os.execute("kill -INT " .. pid)
  elseif how == "terminate" then
    db:query("select pg_terminate_backend($1)", tonumber(bpid))
  end
  assert(wait_for(dir .. "/code", 30), "the child did not end")
  assert(exists(out), "the child wrote no report: " .. H.slurp(dir .. "/log"))
  return assert(loadstring(H.slurp(out)))(), t
end

-- Check what the report says against table t: first the message's own
-- words, then the fields a script would read.
local function check(r, t, label)
  local where = label .. ": " .. tostring(r.msg)
  if os.getenv("COMMITTED_SPEC_VERBOSE") then io.stderr:write(where, "\n") end
  assert(not r.ok, label .. ": the load ended before it was stopped")
  local function n_where(cond, ...)
    return db:query_one(("select count(*) as n from %s where " .. cond):format(t), ...).n
  end
  local got = db:query_one(("select count(*) as n, count(distinct id) as d, coalesce(max(id), 0) as m "
                            .. "from %s"):format(t))
  assert.are.equal(got.n, got.d, where)               -- no row twice
  if r.plain then
    assert.truthy(r.msg:find("interrupted (Ctrl-C)", 1, true), where)
  end
  -- every range the message names is checked against the table
  local top, said_doubt, nothing = 0, 0, false
  for x, y in r.msg:gmatch("rows (%d+)%-(%d+) were committed") do
    x, y = tonumber(x), tonumber(y)
    assert.are.equal(y - x + 1, n_where("id between $1 and $2", x, y), where)
    top = math.max(top, y)
  end
  for x, y in r.msg:gmatch("rows (%d+)%-(%d+) were not inserted") do
    assert.are.equal(0, n_where("id between $1 and $2", tonumber(x), tonumber(y)), where)
  end
  for x, y in r.msg:gmatch("rows (%d+)%-(%d+) may or may not have been committed") do
    said_doubt = said_doubt + tonumber(y) - tonumber(x) + 1
    assert.truthy(x + 0 == top + 1, where)
  end
  local from = r.msg:match("nothing from row (%d+) on was")
  if from then assert.are.equal(0, n_where("id >= $1", tonumber(from)), where) end
  for _, phrase in ipairs { "nothing was committed", "no earlier rows were committed",
                            "no rows were committed" } do
    if r.msg:find(phrase, 1, true) then nothing = true end
  end
  if not r.plain then
    -- the message says what is committed, and the fields say the same
    assert.truthy(top > 0 or nothing, where)
    assert.are.equal(top, r.committed, where .. " (table: " .. got.n .. ")")
    assert.are.equal(said_doubt, r.doubt, where)
  end
  -- the fields: rows 1..committed are there, and nothing beyond what is
  -- in doubt
  assert.are.equal("number", type(r.committed), where)
  assert.are.equal("number", type(r.doubt), where)
  assert.are.equal(r.committed, n_where("id <= $1", r.committed), where)
  assert.are.equal(0, n_where("id > $1", r.committed + r.doubt), where)
  if r.doubt == 0 then assert.are.equal(r.committed, got.n, where) end
  return got.n
end

-- rows per flush: big flushes make a cancel land while the statement runs
local BATCH = [[
  local b = db:batch(t, { "id", "v" }, { rows = %d })
  counters = function() return b.rows_committed, b.rows_in_doubt end
  for i = 1, 3000000 do
    b:add(i, "row " .. i)
    if i == 3000 then ready() end
  end
  b:close()]]

local PIPELINE = [[
  local pl = db:pipeline("insert into " .. t .. " values ($1, $2)", { sync_every = 1000 })
  counters = function() pl:abort() return pl.rows_committed, pl.rows_in_doubt end
  for i = 1, 3000000 do
    pl:send(i, "row " .. i)
    if i == 3000 then ready() end
    if i % 5000 == 0 then pl:sync() end -- a wait Ctrl-C can land in
  end
  pl:close()]]

local function load_body(opts)
  return ([[
  local i = 0
  require("sluice").load { db = db, table = t, quiet = true, %s, rows = function()
    i = i + 1
    if i == 3000 then ready() end
    if i <= 3000000 then return { i, "row " .. i } end
  end }]]):format(opts)
end

local DELAYS = { 0, 3, 11, 19, 37, 53, 79, 113, 163, 241 }

describe("committed rows, as the error says", function()
  setup(function()
    tmp = H.tmpdir()
    db = H.connect()
    H.schema(db, SCHEMA)
  end)
  teardown(function()
    db:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE")
    db:close()
    os.execute("rm -rf " .. H.q(tmp))
  end)

  local function trials(label, body, how, delays)
    for k, d in ipairs(delays) do
      local r, t = trial(body, how, d + math.random() * 3)
      check(r, t, ("%s, trial %d (%s after %d ms)"):format(label, k, how, d))
    end
  end

  it("db:batch, Ctrl-C at many moments", function()
    trials("batch", BATCH:format(1000), "sigint", DELAYS)
    trials("batch", BATCH:format(20000), "sigint", { 0, 17, 71, 131 })
  end)

  it("db:batch, backend terminated", function()
    trials("batch", BATCH:format(1000), "terminate", { 0, 29, 97 })
    trials("batch", BATCH:format(20000), "terminate", { 0, 47 })
  end)

  it("db:pipeline, Ctrl-C", function()
    trials("pipeline", PIPELINE, "sigint", { 0, 13, 47, 101, 173 })
  end)

  it("db:pipeline, backend terminated", function()
    trials("pipeline", PIPELINE, "terminate", { 0, 31, 89 })
  end)

  it("sluice.load rowwise_tx with commit_every, Ctrl-C and backend terminated", function()
    local body = load_body([[strategy = "rowwise_tx", commit_every = 100]])
    trials("load rowwise_tx", body, "sigint", { 0, 7, 29, 61, 113 })
    trials("load rowwise_tx", body, "terminate", { 0, 41 })
  end)

  it("sluice.load batch, Ctrl-C and backend terminated", function()
    local body = load_body([[strategy = "batch", batch_rows = 1000]])
    trials("load batch", body, "sigint", { 0, 17, 43, 89, 149 })
    trials("load batch", body, "terminate", { 0, 53 })
  end)

  it("sluice.load in one transaction (copy_binary, pipeline, upsert, connections = 2), Ctrl-C",
     function()
    trials("load copy_binary", load_body([[strategy = "copy_binary"]]), "sigint", { 0, 61 })
    trials("load pipeline", load_body([[strategy = "pipeline", sync_every = 5000000]]),
           "sigint", { 0, 61 })
    trials("load upsert", load_body([[strategy = "upsert"]]), "sigint", { 0, 61 })
    trials("load batch, 2 connections", load_body([[strategy = "batch", connections = 2]]),
           "sigint", { 0, 61 })
  end)

  -- Ctrl-C that comes after a flush's last answer was read, before its
  -- books are kept: the window is made certain by sending the signal from
  -- inside the flush's last check for a pending interrupt
  it("db:batch, Ctrl-C just after a flush's last answer", function()
    local body = [[
  local core = require "sluice.core"
  ffi.cdef "int kill(int pid, int sig);"
  local take, calls = core.interrupt_take, 0
  local b = db:batch(t, { "id", "v" }, { rows = %d })
  counters = function() return b.rows_committed, b.rows_in_doubt end
  for i = 1, %d - 1 do b:add(i, "row " .. i) end
  core.interrupt_take = function()
    local sig = take()
    calls = calls + 1
    -- the flush checks before it sends and after each statement
    if calls == %d then ffi.C.kill(ffi.C.getpid(), 2) end
    return sig
  end
  ready()
  local ok, err = pcall(b.add, b, %d, "last")
  core.interrupt_take = take
  if not ok then error(err, 0) end
  b:add(%d + 1, "after")
  b:close()]]
    -- one statement per flush (the third, rows 2001-3000), and two in
    -- BEGIN ... COMMIT (40000 rows, 32767 a statement: the check after
    -- COMMIT is the last)
    for _, case in ipairs { { 1000, 3000, 2 }, { 40000, 40000, 5 } } do
      local per, n, call = case[1], case[2], case[3]
      local r, t = trial(body:format(per, n, call, n, n), "none", 0)
      assert.are_not.equal(true, r.plain, tostring(r.msg))
      assert.are.equal(n, r.committed, r.msg)
      assert.are.equal(0, r.doubt, r.msg)
      assert.are.equal(n, check(r, t, ("batch, %d rows a flush"):format(per)))
      assert.truthy(r.msg:find("interrupted (Ctrl-C)", 1, true), r.msg)
      assert.truthy(r.msg:find("the interrupt came after the server had committed them", 1, true),
                    r.msg)
    end
  end)

  it("sluice.load pipeline: a failure in the open group commits nothing of it", function()
    db:exec("create table plfail (id bigint primary key)")
    local i = 0
    local ok, err = pcall(require("sluice").load, { db = db, table = "plfail", quiet = true,
      strategy = "pipeline", sync_every = 300, rows = function()
        i = i + 1
        if i == 500 then error("no row 500", 0) end
        return { i }
      end })
    assert.is_false(ok)
    -- rows 1-300 were synced and committed; the open group (301-499) is
    -- rolled back, not committed by the load's cleanup
    assert.are.equal(300, H.count(db, "plfail"))
    assert.are.equal("load: rows 1-300 were committed; nothing from row 301 on was: no row 500",
                     err.message)
    assert.are.equal(300, err.committed_rows)
  end)

  it("sluice.load with connections = 2: a COMMIT that fails after the other committed", function()
    -- a deferred check that fails at COMMIT, for row 2 only: connection
    -- 1 takes the odd rows and commits first, connection 2's COMMIT fails
    db:exec([[
      create table multi (id bigint);
      create function multi_check() returns trigger language plpgsql as $$
      begin
        if new.id = 2 then raise exception 'row 2 refused at commit' using errcode = 'check_violation'; end if;
        return null;
      end $$;
      create constraint trigger multi_check after insert on multi deferrable initially deferred
        for each row execute function multi_check()]])
    local rows = {}
    for i = 1, 2000 do rows[i] = { i } end
    for _, strategy in ipairs { "batch", "copy_text", "pipeline" } do
      db:exec("truncate multi")
      local ok, err = pcall(require("sluice").load, { db = db, table = "multi", rows = rows,
        strategy = strategy, connections = 2, quiet = true })
      assert.is_false(ok)
      assert.are.equal("23514", err.sqlstate)
      assert.are.equal("load: connection 1 of 2 committed its rows (1000 rows); the other "
        .. "connections' rows were rolled back (connection k of 2 took rows k, k + 2, k + 4, "
        .. "...): row 2 refused at commit", err.message)
      assert.are.equal(1000, err.committed_rows)
      assert.are.equal(0, err.in_doubt_rows)
      local got = db:query_one("select count(*) as n, count(*) filter (where id % 2 = 1) as odd "
                               .. "from multi")
      assert.are.same({ n = 1000, odd = 1000 }, got)
      assert.are.equal("idle", db:status())
    end
  end)
end)

-- A COMMIT that completes although Ctrl-C sent a cancel: with a
-- synchronous standby named that never comes, every COMMIT waits for it
-- until cancelled, and then returns success ("the transaction has
-- already committed locally").  The child sets synchronous_commit = on
-- for its own session; every other session is set to "local", which
-- does not wait.
describe("a commit that completes although Ctrl-C cancelled it", function()
  setup(function()
    tmp = H.tmpdir()
    db = H.connect()
    H.schema(db, SCHEMA)
    db:exec("ALTER SYSTEM SET synchronous_commit = 'local'")
    db:exec("ALTER SYSTEM SET synchronous_standby_names = 'sluice_nobody'")
    db:query("select pg_reload_conf()")
    sleep_ms(200)
  end)
  teardown(function()
    db:exec("ALTER SYSTEM RESET synchronous_standby_names")
    db:exec("ALTER SYSTEM RESET synchronous_commit")
    db:query("select pg_reload_conf()")
    db:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE")
    db:close()
    os.execute("rm -rf " .. H.q(tmp))
  end)

  -- the child waits in the COMMIT when it gets SIGINT
  local function stopped(body)
    local r, t = trial("db:exec('set synchronous_commit = on') " .. body, "sigint", 300)
    if os.getenv("COMMITTED_SPEC_VERBOSE") then io.stderr:write(tostring(r.msg), "\n") end
    return r, H.count(db, t)
  end

  it("db:batch reports the flush committed, then the interrupt", function()
    local r, n = stopped([[
      local b = db:batch(t, { "id", "v" }, { rows = 10 })
      ready()
      for i = 1, 10 do b:add(i, "x") end]])
    assert.are.equal(10, n)
    assert.are.equal("batch: rows 1-10 were committed (the interrupt came after the server had "
      .. "committed them; no earlier rows were committed): interrupted (Ctrl-C)", r.msg)
    assert.are.equal(10, r.committed)
    assert.are.equal(0, r.doubt)
  end)

  it("cp:finish() and db:copy_from_file() say the COPY was committed", function()
    local r, n = stopped([[
      local cp = db:copy(t, { "id", "v" })
      for i = 1, 10 do cp:row(i, "x") end
      ready()
      cp:finish()]])
    assert.are.equal(10, n)
    assert.are.equal("COPY: interrupted (Ctrl-C) after the COPY had committed its 10 rows", r.msg)
    assert.are.equal(10, r.committed)
    r, n = stopped([[
      local path = os.tmpname()
      local f = io.open(path, "w")
      f:write("id,v\n1,x\n2,y\n3,z\n")
      f:close()
      ready()
      local ok, err = pcall(db.copy_from_file, db, t, path)
      os.remove(path)
      if not ok then error(err, 0) end]])
    assert.are.equal(3, n)
    assert.are.equal("copy_from_file: interrupted (Ctrl-C) after the COPY had committed its 3 rows",
                     r.msg)
  end)

  it("up:finish() says the upsert was committed", function()
    local r, n = stopped([[
      local up = db:upsert(t, { "id", "v" }, { key = "id" })
      for i = 1, 10 do up:row(i, "x") end
      ready()
      local ok, err = pcall(up.finish, up)
      assert(up.state == "finished", up.state)
      error(err, 0)]])
    assert.are.equal(10, n)
    assert.are.equal("upsert: committed (10 staged rows, 10 inserted or updated) before the "
      .. "interrupt was noticed: interrupted (Ctrl-C)", r.msg)
    assert.are.equal(10, r.committed)
  end)

  it("sluice.load says what its commits committed", function()
    local r, n = stopped([[
      local i = 0
      require("sluice").load { db = db, table = t, quiet = true, strategy = "rowwise_tx",
        commit_every = 100, rows = function()
          i = i + 1
          if i == 1 then ready() end
          if i <= 1000 then return { i, "x" } end
        end }]])
    assert.are.equal(100, n)
    assert.are.equal("load: rows 1-100 were committed: interrupted (Ctrl-C)", r.msg)
    assert.are.equal(100, r.committed)
    r, n = stopped([[
      local rows = {}
      for i = 1, 50 do rows[i] = { i, "x" } end
      ready()
      require("sluice").load { db = db, table = t, quiet = true, strategy = "copy_binary",
                               rows = rows }]])
    assert.are.equal(50, n)
    assert.are.equal("load: rows 1-50 were committed: interrupted (Ctrl-C)", r.msg)
    assert.are.equal(50, r.committed)
  end)
end)
