-- sluice.tmpdb(): a private server that is always removed afterwards.
local H = require "helper"
local sluice = require "sluice"

local lfs = require "lfs"

local function exists(path)
  return lfs.attributes(path) ~= nil
end

-- is a postgres process still serving dir? (reads /proc, so the check
-- cannot match itself the way pgrep -f would)
local function server_running(dir)
  for pid in lfs.dir("/proc") do
    if pid:match("^%d+$") then
      local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
      local cmd = f and f:read("*a") or ""
      if f then f:close() end
      if cmd:find("postgres", 1, true) and cmd:find(dir .. "/data", 1, true) then
        return true
      end
    end
  end
  return false
end

describe("sluice.tmpdb", function()
  it("starts a server on a private socket, usable at once, and stop() removes it", function()
    local t0 = os.clock()
    local t = sluice.tmpdb()
    local dir = t:dir()
    assert.truthy(dir:match("/sluice%-tmpdb%-"), dir)
    assert.are.equal(("host=%s port=5432 dbname=postgres user=postgres"):format(dir), t:conninfo())
    assert.truthy(t:uri():find("^postgresql:///postgres%?host="), t:uri())
    local db = sluice.connect(t:uri())
    assert.are.equal("", db:query_one("show listen_addresses").listen_addresses)
    -- durable by default, like any PostgreSQL (so timings are honest)
    assert.are.equal("on", db:query_one("show fsync").fsync)
    db:exec("create table x(a int); insert into x values (1)")
    assert.are.equal(1, db:query_one("select count(*) as n from x").n)
    db:close()
    assert.is_true(exists(dir) and server_running(dir))
    t:stop()
    assert.is_false(exists(dir))
    assert.is_false(server_running(dir))
    t:stop() -- idempotent
    local ok, err = pcall(t.uri, t)
    assert.is_false(ok)
    assert.truthy(err:find("the temporary database is stopped", 1, true))
    assert.truthy(os.clock() - t0 < 10)
  end)

  it("takes extra settings, and reports a bad one with the server's log", function()
    local t = sluice.tmpdb { settings = { "work_mem=64MB" }, fast = true }
    local db = sluice.connect(t:conninfo())
    assert.are.equal("64MB", db:query_one("show work_mem").work_mem)
    assert.are.equal("off", db:query_one("show fsync").fsync)
    assert.are.equal("off", db:query_one("show synchronous_commit").synchronous_commit)
    db:close(); t:stop()
    local ok, err = pcall(sluice.tmpdb, { settings = { "no_such_setting=1" } })
    assert.is_false(ok)
    assert.truthy(err:find('unrecognized configuration parameter "no_such_setting"', 1, true), err)
  end)

  it("is stopped and removed when the script ends, fails, or calls os.exit", function()
    for _, body in ipairs {
      "print(t:dir())",
      "print(t:dir()); error('script failed')",
      "print(t:dir()); io.stdout:flush(); os.exit(3)",
    } do
      local code, out = H.sluice("-e " .. H.q("local t = require'sluice'.tmpdb(); " .. body))
      local dir = out:match("^(%S+)\n")
      assert.truthy(dir, out)
      assert.truthy(code == 0 or code == 1 or code == 3)
      assert.is_false(exists(dir), dir)
      assert.is_false(server_running(dir), dir)
    end
  end)

  it("sluice --tmpdb points DATABASE_URL at a fresh server and removes it", function()
    local code, out = H.sluice([[--tmpdb -e 'local db = require"sluice".connect(); print(os.getenv("DATABASE_URL")); print(db:query_one("select 1+1 as x").x)']])
    assert.are.equal(0, code)
    local url, two = out:match("^(%S+)\n(%S+)\n$")
    assert.are.equal("2", two)
    assert.truthy(url:find("^postgresql:///postgres%?host="), url)
    assert.are_not.equal(H.url(), url)
    local dir = url:match("host=([^&]+)")
    assert.is_false(exists(dir), dir)
  end)

  it("is removed when the script is interrupted", function()
    local tmp = os.tmpname()
    local cmd = ("%s --tmpdb -e 'print(os.getenv(\"DATABASE_URL\")); io.stdout:flush(); "
      .. "require\"sluice\".connect():exec(\"select pg_sleep(30)\")' > %s 2>/dev/null & pid=$!; "
      .. "for i in $(seq 100); do [ -s %s ] && break; sleep 0.05; done; sleep 0.3; kill -INT $pid; wait $pid")
      :format(H.q(H.exe), tmp, tmp)
    os.execute(cmd)
    local f = io.open(tmp); local out = f:read("*a"); f:close(); os.remove(tmp)
    local dir = out:match("host=([^&\n]+)")
    assert.truthy(dir, out)
    assert.is_false(exists(dir), dir)
    assert.is_false(server_running(dir), dir)
  end)

  it("is removed when the terminal hangs up (SIGHUP), and sluice --tmpdb then exits 129", function()
    local tmp = H.tmpdir()
    local script, url = tmp .. "/sleeps.lua", tmp .. "/url"
    H.write(script, ([[
      local f = assert(io.open(%q, "w")); f:write(os.getenv("DATABASE_URL")); f:close()
      require("sluice").connect():exec("select pg_sleep(30)")
    ]]):format(url))
    local cmd = ("timeout -s KILL 30 %s --tmpdb %s 2>%s/err & pid=$!; "
      .. "for i in $(seq 200); do [ -s %s ] && break; sleep 0.05; done; sleep 0.3; "
      .. "kill -HUP $pid; wait $pid 2>/dev/null; echo $? >%s/code")
      :format(H.q(H.exe), H.q(script), H.q(tmp), H.q(url), H.q(tmp))
    local t0 = H.now()
    os.execute(cmd)
    local dir = H.slurp(url):match("host=([^&\n]+)")
    assert.truthy(dir, H.slurp(url))
    assert.are.equal("129\n", H.slurp(tmp .. "/code"))
    assert.are.equal("ERROR:  canceling statement due to user request\n", H.slurp(tmp .. "/err"))
    assert.truthy(H.now() - t0 < 20)
    assert.is_false(exists(dir), dir)
    assert.is_false(server_running(dir), dir)
    os.execute("rm -rf " .. H.q(tmp))
  end)

  -- A process killed by SIGKILL runs no cleanup: its server directory
  -- stays behind (the server itself dies with it, PR_SET_PDEATHSIG).  The
  -- next start in the same parent directory removes it, and leaves the
  -- directory of a live owner alone.
  it("removes what a killed owner left behind at the next start, not a live one's", function()
    local parent = H.tmpdir()
    local function start_child(name)
      local out = parent .. "/" .. name
      -- it waits in a statement, where SIGTERM is seen at once
      os.execute(("TMPDIR=%s %s -e 'local s = require\"sluice\"; local t = s.tmpdb(); "
        .. "local db = s.connect(t:uri()); print(t:dir()); io.stdout:flush(); "
        .. "db:exec(\"select pg_sleep(60)\")' >%s 2>&1 & echo $! >%s.pid")
        :format(H.q(parent), H.q(H.exe), H.q(out), H.q(out)))
      local dir
      for _ = 1, 400 do
        local f = io.open(out)
        dir = f and f:read("*a"):match("^(/%S+)\n")
        if f then f:close() end
        if dir then break end
        os.execute("sleep 0.05")
      end
      assert(dir, "the child did not start a server: " .. H.slurp(out))
      return tonumber(H.slurp(out .. ".pid")), dir
    end
    local killed, killed_dir = start_child("a")
    local live, live_dir = start_child("b")
    os.execute("kill -KILL " .. killed)
    for _ = 1, 100 do
      if not server_running(killed_dir) then break end
      os.execute("sleep 0.05")
    end
    assert.is_true(exists(killed_dir .. "/data"), killed_dir)
    -- the next start (sluice --tmpdb) sweeps the parent directory
    local code, out = H.run(("TMPDIR=%s %s --tmpdb -e 'print(os.getenv(\"DATABASE_URL\"))'")
      :format(H.q(parent), H.q(H.exe)))
    assert.are.equal(0, code)
    local dir = out:match("host=([^&\n]+)")
    assert.is_false(exists(killed_dir), killed_dir)
    assert.is_false(exists(dir), dir)
    assert.is_true(exists(live_dir .. "/data"), live_dir)
    assert.is_true(server_running(live_dir), live_dir)
    -- the live owner ends normally (SIGTERM: its atexit handler cleans up)
    os.execute("kill -TERM " .. live)
    for _ = 1, 200 do
      if not exists(live_dir) then break end
      os.execute("sleep 0.05")
    end
    assert.is_false(exists(live_dir), live_dir)
    os.execute("rm -rf " .. H.q(parent))
  end)
  it("restarts in place: the same socket and data, committed rows kept, old sessions gone", function()
    local t = sluice.tmpdb { fast = true, settings = { "synchronous_commit=on" } }
    local uri, dir, pid0 = t:uri(), t:dir(), t:pid()
    local db = sluice.connect(uri)
    db:exec("set client_min_messages = error; create table x(a int); insert into x values (1), (2)")
    local t0 = H.now()
    t:restart { mode = "immediate", pause = 0.3 }
    assert(H.now() - t0 >= 0.3, "the server was down for less than the pause")
    assert.are_not.equal(pid0, t:pid())
    assert.are.equal(uri, t:uri())
    local err = H.error_of(db.query, db, "select 1")
    assert.are.equal("08006", err.sqlstate)
    db = sluice.connect(uri)
    assert.are.equal(2, db:query_one("select count(*) as n from x").n)
    db:close()
    t:restart { mode = "fast" }
    db = sluice.connect(uri)
    assert.are.equal(2, db:query_one("select count(*) as n from x").n)
    db:close()
    t:stop()
    assert.is_false(exists(dir))
    assert.is_false(server_running(dir))
    err = H.error_of(t.restart, t)
    assert.truthy(err:find("cannot restart the temporary PostgreSQL: it is stopped", 1, true), err)
    err = H.error_of(t.restart, t, { mode = "slow" })
    assert.truthy(err:find('mode must be "immediate" or "fast", got "slow"', 1, true), err)
  end)
end)
