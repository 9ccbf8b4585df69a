-- A network or server that goes silent: every wait of sluice is bounded.
-- The connections under test go through netproxy (tests/tools/, built by
-- `make test`), a TCP proxy in front of the throwaway server that can go
-- silent (SIGUSR1: sockets stay open, nothing is forwarded, new
-- connections hang after the TCP handshake) or cut (SIGTERM: every socket
-- closed).  A silent proxy is what TCP keepalives cannot see: its kernel
-- answers them.  Each case is bounded: the connection's timeout is small,
-- and the children run under timeout(1).
local sluice = require "sluice"
local H = require "helper"

local PROXY = H.root .. "/build/tools/netproxy"
local SCHEMA = "faults_net"
local TIMEOUT = 2 -- seconds: the silence bound of the connections here

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function wait_for(path, secs)
  local t0 = H.now()
  while H.now() - t0 < secs do
    if exists(path) then return true end
    os.execute("sleep 0.02")
  end
  return false
end

-- Where the throwaway server listens: its unix socket (tmpdb), or the
-- host:port of a server given by DATABASE_URL.
local function upstream(admin)
  local info = admin:info()
  if info.host:sub(1, 1) == "/" then
    return info.host .. "/.s.PGSQL." .. info.port
  end
  return info.host .. ":" .. info.port
end

describe("a silent or cut network", function()
  local admin, up, tmp
  local proxies = {}

  setup(function()
    assert(exists(PROXY), PROXY .. " is missing: run `make tools` (make test builds it)")
    admin = H.connect()
    H.schema(admin, SCHEMA)
    up = upstream(admin)
    tmp = H.tmpdir()
  end)

  teardown(function()
    for _, p in ipairs(proxies) do os.execute("kill -TERM " .. p.pid .. " 2>/dev/null") end
    admin:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE")
    admin:close()
    os.execute("rm -rf " .. H.q(tmp))
  end)

  -- A new proxy: { pid, port, target (a conninfo through it) }.
  local function proxy()
    local dir = tmp .. "/p" .. (#proxies + 1)
    os.execute("mkdir -p " .. H.q(dir))
    os.execute(("%s %s %s >%s/log 2>&1 & echo $! >%s/pid")
      :format(H.q(PROXY), H.q(dir .. "/port"), H.q(up), H.q(dir), H.q(dir)))
    assert(wait_for(dir .. "/port", 5), "netproxy did not start")
    local info = admin:info()
    local p = {
      pid = tonumber(H.slurp(dir .. "/pid")),
      port = tonumber(H.slurp(dir .. "/port")),
    }
    p.target = ("host=127.0.0.1 port=%d dbname=%s user=%s"):format(p.port, info.dbname, info.user)
    proxies[#proxies + 1] = p
    return p
  end

  local function signal(p, sig)
    assert(os.execute("kill -" .. sig .. " " .. p.pid) == 0)
  end

  local function table_named(name)
    admin:exec(("create table %s.%s (id int, v text)"):format(SCHEMA, name))
    return SCHEMA .. "." .. name
  end

  local SILENT = ("no answer from the server for %d s (timeout = %d); the connection was closed")
    :format(TIMEOUT, TIMEOUT)

  -- The keepalive timer of the client sockets connected to port, in
  -- seconds (nil: none): what ss(8) shows for an idle socket.
  local function keepalive_timer(port)
    local _, out = H.run(("ss -tno state established '( dport = :%d )'"):format(port))
    local t = out:match("timer:%(keepalive,([^,]+),")
    if not t then return nil end
    return (tonumber(t:match("(%d+)min") or 0)) * 60 + tonumber(t:match("(%d+)sec") or 0)
  end

  it("connects with TCP keepalives on by default, and the target's settings win", function()
    local p = proxy()
    local db = sluice.connect(p.target)
    local secs = keepalive_timer(p.port)
    assert(secs and secs <= 30 and secs >= 25, "keepalive timer: " .. tostring(secs))
    db:close()
    db = sluice.connect(p.target .. " keepalives_idle=100")
    secs = keepalive_timer(p.port)
    assert(secs and secs > 90 and secs <= 100, "keepalive timer: " .. tostring(secs))
    db:close()
    db = sluice.connect(p.target .. " keepalives=0")
    assert.is_nil(keepalive_timer(p.port))
    db:close()
  end)

  it("has a 300 s timeout by default, and db:set_timeout changes it", function()
    local db = H.connect()
    assert.are.equal(300, db:timeout())
    assert.are.equal(300, db:set_timeout(0.5))
    assert.are.equal(0.5, db:timeout())
    db:close()
    db = sluice.connect(H.url(), { timeout = false })
    assert.are.equal(0, db:timeout())
    db:close()
    local err = H.error_of(sluice.connect, H.url(), { timeout = -1 })
    assert.truthy(tostring(err):find("connect: timeout must be a number of seconds (0 or false: none), got -1",
                                     1, true), tostring(err))
  end)

  it("bounds a connect to a silent server", function()
    local p = proxy()
    signal(p, "USR1")
    local t0 = H.now()
    local err = H.error_of(sluice.connect, p.target, { timeout = 1 })
    local secs = H.now() - t0
    assert.are.equal("08001", err.sqlstate)
    assert.truthy(err.message:find("): no answer from the server for 1 s (timeout = 1)", 1, true), err.message)
    assert(secs >= 0.9 and secs < 3, secs)
  end)

  it("a COPY whose network is cut fails at once, nothing of it committed", function()
    local p = proxy()
    local t = table_named("cut")
    local db = sluice.connect(p.target, { timeout = TIMEOUT })
    local cp = db:copy(t, { "id", "v" })
    for i = 1, 1000 do cp:row(i, "x") end
    cp:flush()
    signal(p, "TERM")
    local t0 = H.now()
    local err = H.error_of(function()
      for i = 1001, 1e7 do cp:row(i, ("y"):rep(100)) end
      cp:finish()
    end)
    assert(H.now() - t0 < TIMEOUT, "took " .. (H.now() - t0) .. " s")
    assert.are.equal("08006", err.sqlstate)
    assert.truthy(err.message:find("connection to the server lost", 1, true), err.message)
    assert.are.equal("broken", db:status())
    assert.are.equal(0, H.count(admin, t))
  end)

  it("a COPY whose network goes silent fails after the timeout, nothing committed", function()
    local p = proxy()
    local t = table_named("silent_copy")
    local db = sluice.connect(p.target, { timeout = TIMEOUT })
    local cp = db:copy(t, { "id", "v" })
    for i = 1, 1000 do cp:row(i, "x") end
    cp:flush()
    signal(p, "USR1")
    local t0 = H.now()
    local err = H.error_of(function()
      for i = 1001, 1e8 do cp:row(i, ("y"):rep(100)) end
      cp:finish()
    end)
    local secs = H.now() - t0
    assert.are.equal("08006", err.sqlstate)
    assert.are.equal(SILENT, err.message)
    -- the kernel buffers fill first, then the bound runs, then a cancel
    -- request (itself bounded to 1 s) goes out
    assert(secs >= TIMEOUT and secs < TIMEOUT + 3, "took " .. secs .. " s")
    assert.are.equal("broken", db:status())
    assert.are.equal(0, H.count(admin, t))
  end)

  it("a query on a silent network fails after the timeout", function()
    local p = proxy()
    local db = sluice.connect(p.target, { timeout = TIMEOUT })
    assert.are.equal(1, db:query_one("select 1 as x").x)
    signal(p, "USR1")
    local t0 = H.now()
    local err = H.error_of(db.query, db, "select pg_sleep(0)")
    local secs = H.now() - t0
    assert.are.equal("08006", err.sqlstate)
    assert.are.equal("FATAL", err.severity)
    assert.are.equal(SILENT, err.message)
    assert.truthy(err.hint:find("statement_timeout", 1, true), err.hint)
    assert(secs >= TIMEOUT and secs < TIMEOUT + 2, "took " .. secs .. " s")
    assert.are.equal("broken", db:status())
  end)

  it("a batch load through a silent network says what was committed", function()
    local p = proxy()
    local t = table_named("silent_load")
    local db = sluice.connect(p.target, { timeout = TIMEOUT })
    local n = 0
    local function rows()
      n = n + 1
      if n == 551 then signal(p, "USR1") end
      if n <= 1000 then return { n, "x" } end
    end
    local err = H.error_of(sluice.load, { db = db, table = t, columns = { "id", "v" }, rows = rows,
                                          strategy = "batch", batch_rows = 100, quiet = true })
    local count = H.count(admin, t)
    assert.are.equal("08006", err.sqlstate)
    assert.are.equal("batch: rows 501-600 may or may not have been committed (the connection was "
      .. "lost before the server answered: check the table; rows 1-500 were committed by earlier "
      .. "flushes): " .. SILENT, err.message)
    assert.are.equal(500, err.committed_rows)
    assert.are.equal(100, err.in_doubt_rows)
    assert(count >= err.committed_rows and count <= err.committed_rows + err.in_doubt_rows, count)
  end)

  -- Run body in a child sluice (its db through proxy p, timeout 0: no
  -- bound), once it made the file `ready` run the shell commands `before`,
  -- then send SIGINT.  Returns exit code, stderr, seconds from SIGINT to
  -- the exit.
  local seq = 0
  local function interrupted(p, body, before)
    seq = seq + 1
    local dir = tmp .. "/c" .. seq
    os.execute("mkdir -p " .. H.q(dir))
    local ready = dir .. "/ready"
    H.write(dir .. "/child.lua", ([[
      local sluice = require "sluice"
      local target = %q
      local function ready() io.open(%q, "w"):close() end
    ]]):format(p.target, ready) .. body)
    os.execute(([[
      timeout -s KILL 60 %s %s 2>%s/err & pid=$!
      for i in $(seq 1200); do [ -e %s ] && break; sleep 0.05; done
      %s
      date +%%s.%%N >%s/t0; kill -INT $pid; wait $pid; echo $? >%s/code; date +%%s.%%N >%s/t1]])
      :format(H.q(H.exe), H.q(dir .. "/child.lua"), H.q(dir), H.q(ready), before or "",
              H.q(dir), H.q(dir), H.q(dir)))
    local secs = tonumber(H.slurp(dir .. "/t1")) - tonumber(H.slurp(dir .. "/t0"))
    return tonumber(H.slurp(dir .. "/code")), H.slurp(dir .. "/err"), secs
  end

  it("Ctrl-C ends a query on a silent network with no bound", function()
    local p = proxy()
    local code, err, secs = interrupted(p, [[
      local db = sluice.connect(target, { timeout = 0 })
      db:exec("select 1")
      ready()
      while not io.open(]] .. ("%q"):format(tmp .. "/go1") .. [[) do os.execute("sleep 0.02") end
      db:query("select pg_sleep(0)")
    ]], ("kill -USR1 %d; touch %s; sleep 0.5"):format(p.pid, H.q(tmp .. "/go1")))
    assert.are.equal(130, code) -- ended by SIGINT
    assert.truthy(err:find("FATAL:  interrupted (Ctrl-C): no answer from the server within 3 s "
                           .. "of the cancel request; the connection was closed", 1, true), err)
    assert(secs < 5, "took " .. secs .. " s")
  end)

  it("Ctrl-C ends a connect to a silent server with no bound", function()
    local p = proxy()
    signal(p, "USR1")
    local code, err, secs = interrupted(p, [[
      ready()
      sluice.connect(target, { timeout = 0 })
    ]], "sleep 2") -- a sanitizer build on a busy machine needs more than 0.5 s to reach the wait
    assert.are.equal(130, code, err) -- ended by SIGINT
    assert.truthy(err:find("interrupted (Ctrl-C) while connecting", 1, true), err)
    assert(secs < 2, "took " .. secs .. " s")
  end)

  it("Ctrl-C ends a COPY whose socket is full on a silent network, nothing committed", function()
    local p = proxy()
    local t = table_named("interrupted_copy")
    local code, err, secs = interrupted(p, [[
      local db = sluice.connect(target, { timeout = 0 })
      local cp = db:copy("]] .. t .. [[", { "id", "v" })
      local v = ("z"):rep(1000)
      for i = 1, 100 do cp:row(i, v) end
      cp:flush()
      ready()
      for i = 101, 1e9 do cp:row(i, v) end
    ]], ("kill -USR1 %d; sleep 1.5"):format(p.pid))
    assert.are.equal(130, code) -- ended by SIGINT
    assert.truthy(err:find("interrupted (Ctrl-C)", 1, true), err)
    assert(secs < 5, "took " .. secs .. " s")
    assert.are.equal(0, H.count(admin, t))
  end)
end)
