-- Checkpointed loads (sluice.load{ checkpoint = "name" }) through faults:
-- the loading process killed (SIGKILL), interrupted (SIGINT, SIGTERM),
-- its server crashed and restarted, its network cut or gone silent.
-- Each load runs in a child ./sluice (a script written here, its
-- settings in a file beside it) and is run again until it completes; the
-- table must then be exactly what one uninterrupted load of the same
-- input gives (a reference table loaded here: count and md5 of every row
-- in order), and the rejects file must hold each bad row once.
--
-- Every wait is bounded: the children run under timeout(1), the spec
-- polls with a deadline and kills what overstays.
local sluice = require "sluice"
local H = require "helper"

local SCHEMA = "faults_load"
local PROXY = H.root .. "/build/tools/netproxy"

-- The generated input: row i, and a bad one (a value the int4 column n
-- refuses) where i is a multiple of `bad`.  The child compiles the same
-- text, so both sides read the same rows.
local ROWS = [[
local function row(i, bad)
  if bad and i % bad == 0 then return { i, "bad " .. i, "x" .. i } end
  return { i, ("r%07d-"):format(i) .. (i * 7919 % 100003), i % 1000 }
end
local function gen(n, bad)
  local i = 0
  return function()
    i = i + 1
    if i <= n then return row(i, bad) end
  end
end
local function list(n, bad)
  local t = {}
  for i = 1, n do t[i] = row(i, bad) end
  return t
end
return gen, list
]]
local gen = assert(loadstring(ROWS))()

-- The child: settings from the file arg[1] (a Lua table); writes its pid
-- to dir/pid, its summary to stdout.  hook = { match = {texts}, nth = k,
-- run = shell command }: the shell command runs just before the k-th
-- query whose SQL holds every text (e.g. makes the proxy go silent before
-- a ledger write).
local CHILD = [[
local sluice = require "sluice"
local ffi = require "ffi"
ffi.cdef "int getpid(void);"
local cfg = dofile(arg[1])
local f = assert(io.open(cfg.dir .. "/pid", "w"))
f:write(ffi.C.getpid())
f:close()
local gen, list = assert(loadstring(cfg.rows_src))()
if cfg.hook then
  local methods = require("sluice.core").types.conn.methods
  local query, seen = methods.query, 0
  methods.query = function(c, sql, ...)
    local hit = type(sql) == "string"
    for _, m in ipairs(cfg.hook.match) do hit = hit and sql:find(m, 1, true) ~= nil end
    if hit then
      seen = seen + 1
      if seen == cfg.hook.nth then os.execute(cfg.hook.run) end
    end
    return query(c, sql, ...)
  end
end
local db = sluice.connect(cfg.url, { timeout = cfg.timeout })
db:exec("set client_min_messages = warning")
db:exec("set search_path = " .. cfg.schema)
local rows
if cfg.input == "gen" then rows = gen(cfg.n, cfg.bad)
elseif cfg.input == "list" then rows = list(cfg.n, cfg.bad)
else rows = sluice.csv.open(cfg.input, { strict = false }) end
local s = sluice.load { db = db, table = cfg.table, rows = rows, strategy = cfg.strategy,
  checkpoint = cfg.checkpoint, checkpoint_rows = cfg.checkpoint_rows, retries = cfg.retries,
  on_error = cfg.rejects and "reject" or nil, rejects = cfg.rejects, quiet = cfg.quiet }
print(("done rows=%d loaded=%d rejected=%d resumed_from=%d chunks=%d already_done=%s")
  :format(s.rows, s.loaded or s.rows, s.rejected or 0, s.resumed_from, s.chunks,
          tostring(s.already_done == true)))
]]

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Wait until fn() is true (polling every 20 ms); false after secs.
local function wait_until(secs, fn)
  local t0 = H.now()
  while H.now() - t0 < secs do
    if fn() then return true end
    os.execute("sleep 0.02")
  end
  return fn() and true or false
end

local function lua_value(v)
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[#t + 1] = ("[%s] = %s"):format(lua_value(k), lua_value(x)) end
    return "{ " .. table.concat(t, ", ") .. " }"
  end
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

describe("checkpointed loads through faults", function()
  local admin, tmp
  local seq = 0
  local children, proxies = {}, {}
  local refs = {}

  setup(function()
    admin = H.connect()
    admin:set_timeout(60)
    H.schema(admin, SCHEMA)
    tmp = H.tmpdir()
    H.write(tmp .. "/child.lua", CHILD)
  end)

  teardown(function()
    for _, c in ipairs(children) do
      if c.pid then os.execute("kill -KILL " .. c.pid .. " 2>/dev/null") end
    end
    for _, p in ipairs(proxies) do os.execute("kill -TERM " .. p.pid .. " 2>/dev/null") end
    admin:exec("DROP SCHEMA " .. SCHEMA .. " CASCADE")
    admin:close()
    os.execute("rm -rf " .. H.q(tmp))
  end)

  local function new_table(db, name)
    db:exec(("create table %s.%s (id int8, v text, n int4)"):format(SCHEMA, name))
    return name
  end

  -- count and md5 of every row, in order (a duplicate or a gap changes both)
  local function digest(db, name)
    local r = db:query_one(("select count(*) as n, md5(coalesce(string_agg(id || ',' || v || ',' "
      .. "|| n, '|' order by id, v, n), '')) as m from %s.%s"):format(SCHEMA, name))
    return { count = r.n, md5 = r.m }
  end

  -- The ledger's row for name on db (nil when none yet).
  local function ledger(db, name)
    if not db:query_one("select to_regclass($1) is not null as e", SCHEMA .. ".sluice_ledger").e then
      return nil
    end
    return db:query("select * from " .. SCHEMA .. ".sluice_ledger where name = $1", name)[1]
  end

  -- The ledger agrees with the table: every row read through the last
  -- commit is loaded or rejected, and the table holds the loaded ones.
  local function assert_consistent(db, name, tbl)
    local l = assert(ledger(db, name), "no ledger row for " .. name)
    assert.are.equal(l.rows_read, l.rows_loaded + l.rows_rejected)
    assert.are.equal(l.rows_loaded, H.count(db, SCHEMA .. "." .. tbl))
    return l
  end

  -- An uninterrupted load of the generated rows (n, bad), once per input:
  -- { count, md5, rejects = entries of its rejects file }.
  local function reference(db, key, n, bad, opts)
    local id = key .. (db == admin and "" or "_private")
    if refs[id] then return refs[id] end
    local tbl = new_table(db, "ref_" .. key)
    local rej = tmp .. "/ref_" .. key .. ".rejects.csv"
    local o = { db = db, table = SCHEMA .. "." .. tbl, rows = gen(n, bad), quiet = true }
    for k, v in pairs(opts or {}) do o[k] = v end
    if bad or o.on_error then o.on_error, o.rejects = "reject", rej end
    sluice.load(o)
    local d = digest(db, tbl)
    if o.rejects then
      d.rejects = {}
      for e in sluice.read_rejects(rej) do d.rejects[#d.rejects + 1] = e end
    end
    refs[id] = d
    return d
  end

  -- A child load: cfg (see CHILD) plus url (default the test database).
  -- Returns { dir, pid (the sluice process), ... }; started in the
  -- background under timeout -s KILL `limit` s.
  local function start(cfg, limit)
    seq = seq + 1
    local dir = tmp .. "/c" .. seq
    os.execute("mkdir -p " .. H.q(dir))
    cfg.dir, cfg.rows_src, cfg.schema = dir, ROWS, SCHEMA
    cfg.url = cfg.url or H.url()
    cfg.quiet = cfg.quiet ~= false
    H.write(dir .. "/cfg.lua", "return " .. lua_value(cfg))
    os.execute(("(timeout -s KILL %d %s %s %s >%s/out 2>%s/err; echo $? >%s/code.tmp; "
                .. "mv %s/code.tmp %s/code) &")
      :format(limit or 60, H.q(H.exe), H.q(tmp .. "/child.lua"), H.q(dir .. "/cfg.lua"),
              H.q(dir), H.q(dir), H.q(dir), H.q(dir), H.q(dir)))
    local c = { dir = dir }
    children[#children + 1] = c
    assert(wait_until(10, function() return exists(dir .. "/pid") end), "the child did not start")
    assert(wait_until(2, function()
      c.pid = tonumber(H.slurp(dir .. "/pid"))
      return c.pid ~= nil
    end))
    return c
  end

  -- Wait for a child to end (at most secs): exit code, stdout, stderr.
  local function finish(c, secs)
    if not wait_until(secs or 60, function() return exists(c.dir .. "/code") end) then
      os.execute("kill -KILL " .. c.pid .. " 2>/dev/null")
      error("the child did not end within " .. (secs or 60) .. " s:\n" .. H.slurp(c.dir .. "/err"))
    end
    c.pid = nil
    return tonumber(H.slurp(c.dir .. "/code")), H.slurp(c.dir .. "/out"), H.slurp(c.dir .. "/err")
  end

  -- Run a child load to its end: its summary (parsed), stderr.
  local function run(cfg, secs)
    local code, out, err = finish(start(cfg, secs), secs)
    assert.are.equal(0, code, err)
    local s = {}
    for k, v in out:gmatch("(%w[%w_]*)=(%S+)") do s[k] = tonumber(v) or v end
    return s, err
  end

  -- Wait until the ledger shows at least `rows` read (the child still
  -- running), then send sig to the child.
  local function signal_after(db, c, name, rows, sig)
    local ok = wait_until(60, function()
      local l = ledger(db, name)
      if exists(c.dir .. "/code") then return true end
      return l ~= nil and l.rows_read >= rows
    end)
    assert(ok, "the ledger did not reach " .. rows .. " rows")
    assert(not exists(c.dir .. "/code"), "the load ended before it could be stopped:\n"
           .. H.slurp(c.dir .. "/err"))
    assert(os.execute("kill -" .. sig .. " " .. c.pid) == 0)
    return H.now()
  end

  local function rejects_of(path)
    local t = {}
    for e in sluice.read_rejects(path) do t[#t + 1] = e end
    return t
  end

  -- The rejects file holds the reference's entries, once each, in order.
  local function assert_rejects(path, want)
    local got = rejects_of(path)
    local seen = {}
    for _, e in ipairs(got) do
      assert(not seen[e.row], "row " .. e.row .. " is in the rejects file twice")
      seen[e.row] = true
    end
    local function key(e) return ("%d|%s|%s|%s"):format(e.row, e.source, e.sqlstate, e.record) end
    local a, b = {}, {}
    for i, e in ipairs(got) do a[i] = key(e) end
    for i, e in ipairs(want) do b[i] = key(e) end
    assert.are.same(b, a)
    return got
  end

  -- The same messages as the reference's (after the rows, sources and
  -- records matched).
  local function assert_reject_messages(got, want)
    local a, b = {}, {}
    for i, e in ipairs(got) do a[i] = e.row .. ": " .. e.message end
    for i, e in ipairs(want) do b[i] = e.row .. ": " .. e.message end
    assert.are.same(b, a)
  end

  ------------------------------------------------------------ SIGKILL

  -- Kill a generated load at 1, 3 and 7 chunks committed, then run it to
  -- its end; returns the last run's summary and the child configuration.
  local function kill_three_times(cfg, chunk)
    local last = 0
    for _, k in ipairs { 1, 3, 7 } do
      local c = start(cfg)
      signal_after(admin, c, cfg.checkpoint, k * chunk, "KILL")
      local code, _, err = finish(c, 30)
      assert.are.equal(137, code, err) -- killed: 128 + SIGKILL, never 0
      local l = assert_consistent(admin, cfg.checkpoint, cfg.table)
      assert.is_false(l.done)
      assert(l.rows_read >= k * chunk and l.rows_read % chunk == 0, l.rows_read)
      assert(l.rows_read > last)
      -- a CSV reader goes on from its position; an iterator re-reads
      assert.are.equal(cfg.input ~= "gen", l.position ~= "")
      last = l.rows_read
    end
    local s = run(cfg)
    assert.are.equal(last, s.resumed_from)
    return s
  end

  it("killed (SIGKILL) three times, 1,000,000 generated rows end as one uninterrupted load", function()
    local N, CHUNK = 1000000, 100000
    local want = reference(admin, "gen1m", N)
    local cfg = { input = "gen", n = N, table = new_table(admin, "killed"), checkpoint = "killed",
                  checkpoint_rows = CHUNK }
    local s = kill_three_times(cfg, CHUNK)
    assert.are.equal(N, s.rows)
    assert.are.same(want, digest(admin, "killed"))
    local l = assert_consistent(admin, "killed", "killed")
    assert.is_true(l.done)
    assert.are.equal(N, l.rows_read)
    -- run again: nothing to do, nothing loaded twice
    cfg.quiet = false
    local again, err = run(cfg)
    assert.are.equal("true", again.already_done)
    assert.are.equal(0, again.chunks)
    assert.truthy(err:find(('load: checkpoint "killed" is complete (%d rows read, %d loaded, 0 '
                            .. 'rejected): nothing to do'):format(N, N), 1, true), err)
    assert.are.same(want, digest(admin, "killed"))
  end)

  it("killed (SIGKILL) three times in reject mode: each bad row once in the rejects file", function()
    local N, CHUNK, BAD = 1000000, 100000, 99991
    local want = reference(admin, "gen1m_bad", N, BAD)
    assert.are.equal(math.floor(N / BAD), #want.rejects)
    local rej = tmp .. "/killed_rej.rejects.csv"
    local cfg = { input = "gen", n = N, bad = BAD, table = new_table(admin, "killed_rej"),
                  checkpoint = "killed_rej", checkpoint_rows = CHUNK, rejects = rej }
    local s = kill_three_times(cfg, CHUNK)
    assert.are.equal(#want.rejects, s.rejected)
    local l = assert_consistent(admin, "killed_rej", "killed_rej")
    assert.are.equal(#want.rejects, l.rows_rejected)
    assert.are.same({ count = want.count, md5 = want.md5 }, digest(admin, "killed_rej"))
    local got = assert_rejects(rej, want.rejects)
    assert_reject_messages(got, want.rejects)
  end)

  ------------------------------------------------- SIGINT and SIGTERM

  for _, sig in ipairs { "INT", "TERM" } do
    it("interrupted (SIG" .. sig .. "): the open chunk rolled back, exit 1, then completes", function()
      local N, CHUNK = 300000, 30000
      local want = reference(admin, "gen300k", N)
      local name = "sig" .. sig:lower()
      local cfg = { input = "gen", n = N, table = new_table(admin, name), checkpoint = name,
                    checkpoint_rows = CHUNK }
      local c = start(cfg)
      signal_after(admin, c, name, 2 * CHUNK, sig)
      local code, _, err = finish(c, 20)
      assert.are_not.equal(0, code)
      local l = assert_consistent(admin, name, name)
      assert.is_false(l.done)
      assert.are.equal(0, l.rows_read % CHUNK)
      local what = sig == "INT" and "Ctrl-C" or "SIGTERM"
      local said = ('load: checkpoint "%s": rows 1-%d are committed and in the ledger (%d loaded, '
        .. '0 rejected); '):format(name, l.rows_read, l.rows_read)
      assert.truthy(err:find(said, 1, true), err)
      -- the rows of the open chunk, if it had any, were rolled back
      local rest = err:sub(err:find(said, 1, true) + #said)
      assert(rest:find("^run the load again to go on: ")
             or rest:find(("^rows %d%%-%%d+ were rolled back; run the load again to go on: ")
                          :format(l.rows_read + 1)), err)
      assert.truthy(err:find("interrupted (" .. what .. ")", 1, true), err)
      local s = run(cfg)
      assert.are.equal(l.rows_read, s.resumed_from)
      assert.are.same(want, digest(admin, name))
    end)
  end

  --------------------------------------------- server crash and restart

  it("lives through its server's immediate shutdown and restart (retries = 3)", function()
    -- a private server, restarted in place (the same socket: the URL
    -- stays valid); synchronous_commit on, so a commit acknowledged
    -- before the crash is there after it
    local srv = sluice.tmpdb { fast = true, settings = { "synchronous_commit=on" } }
    local db = sluice.connect(srv:uri())
    db:exec("set client_min_messages = error")
    H.schema(db, SCHEMA)
    local N, CHUNK = 300000, 20000
    local tbl = new_table(db, "restarted")
    local cfg = { input = "list", n = N, table = tbl, checkpoint = "restarted",
                  checkpoint_rows = CHUNK, retries = 3, url = srv:uri() }
    local c = start(cfg, 120)
    signal_after(db, c, "restarted", 2 * CHUNK, "0") -- signal 0: only the ledger's wait
    srv:restart { mode = "immediate", pause = 1 }
    local code, out, err = finish(c, 100)
    assert.are.equal(0, code, err)
    assert.truthy(err:find('load: checkpoint "restarted": ', 1, true), err)
    assert.truthy(out:find("rows=" .. N, 1, true), out)
    db = sluice.connect(srv:uri())
    db:exec("set client_min_messages = error; set search_path = " .. SCHEMA)
    local want = reference(db, "gen300k", N)
    local l = assert_consistent(db, "restarted", tbl)
    assert.is_true(l.done)
    assert.are.same(want, digest(db, tbl))
    db:close()
    srv:stop()
    -- the retry line says what is committed, naming the checkpoint once
    local line = err:match("[^\n]*retrying %(1 of 3%)[^\n]*")
    assert.truthy(line, err)
    assert.truthy(line:find("^load: checkpoint \"restarted\": rows 1%-%d+ are committed"), line)
    local _, names = line:gsub('load: checkpoint "restarted"', "")
    assert.are.equal(1, names, line)
  end)

  ------------------------------------------------ a cut or silent network

  local function upstream()
    local info = admin:info()
    if info.host:sub(1, 1) == "/" then return info.host .. "/.s.PGSQL." .. info.port end
    return info.host .. ":" .. info.port
  end

  -- A new netproxy in front of the test server (on `port`, else one the
  -- kernel picks): { pid, port, target }.
  local function proxy(port)
    local dir = tmp .. "/p" .. (#proxies + 1)
    os.execute("mkdir -p " .. H.q(dir))
    os.execute(("%s %s %s %s >%s/log 2>&1 & echo $! >%s/pid"):format(H.q(PROXY),
      H.q(dir .. "/port"), H.q(upstream()), port or "", H.q(dir), H.q(dir)))
    assert(wait_until(5, function() return exists(dir .. "/port") end), "netproxy did not start")
    local info = admin:info()
    local p = { pid = tonumber(H.slurp(dir .. "/pid")), port = tonumber(H.slurp(dir .. "/port")) }
    p.target = ("host=127.0.0.1 port=%d dbname=%s user=%s"):format(p.port, info.dbname, info.user)
    proxies[#proxies + 1] = p
    return p
  end

  it("a connection cut mid-COPY: a clear error, then a run again through a new proxy completes",
     function()
    assert(exists(PROXY), PROXY .. " is missing: run `make tools` (make test builds it)")
    local N, CHUNK = 300000, 30000
    local want = reference(admin, "gen300k", N)
    local p = proxy()
    local cfg = { input = "gen", n = N, table = new_table(admin, "cut"), checkpoint = "cut",
                  checkpoint_rows = CHUNK, url = p.target, timeout = 5 }
    local c = start(cfg)
    local t0 = signal_after(admin, c, "cut", 2 * CHUNK, "0")
    os.execute("kill -TERM " .. p.pid)
    local code, _, err = finish(c, 20)
    assert(H.now() - t0 < 5, "took " .. (H.now() - t0) .. " s")
    assert.are.equal(1, code)
    assert.truthy(err:find('^FATAL:  load: checkpoint "cut": rows 1%-'), err)
    assert.truthy(err:find("connection to the server lost", 1, true), err)
    assert.truthy(err:find("run the load again to go on", 1, true), err)
    local l = assert_consistent(admin, "cut", "cut")
    assert.is_false(l.done)
    local p2 = proxy(p.port)
    assert.are.equal(p.port, p2.port)
    local s = run(cfg)
    assert.are.equal(l.rows_read, s.resumed_from)
    assert.are.same(want, digest(admin, "cut"))
  end)

  -- A load through a proxy that goes silent at `when` (a signal after
  -- 2 chunks, or a hook in the child): the error within the bound, then
  -- a run again straight to the server completes.
  local function silent_case(name, hook, before)
    local N, CHUNK, TIMEOUT = 300000, 30000, 2
    local want = reference(admin, "gen300k", N)
    local cfg = { input = "gen", n = N, table = new_table(admin, name), checkpoint = name,
                  checkpoint_rows = CHUNK }
    if before then before(cfg) end
    local p = proxy()
    cfg.url, cfg.timeout = p.target, TIMEOUT
    local mark = tmp .. "/" .. name .. ".silent"
    if hook then
      hook.run = ("kill -USR1 %d; touch %s"):format(p.pid, H.q(mark))
      cfg.hook = hook
    end
    local c = start(cfg)
    local t0
    if hook then
      -- the child makes the proxy silent itself; the clock starts then
      assert(wait_until(30, function() return exists(mark) or exists(c.dir .. "/code") end))
      assert(exists(mark), "the child ended before its hook ran:\n" .. H.slurp(c.dir .. "/err"))
      t0 = H.now()
    else
      t0 = signal_after(admin, c, name, 2 * CHUNK, "0")
      os.execute("kill -USR1 " .. p.pid)
    end
    local code, _, err = finish(c, 30)
    local secs = H.now() - t0
    -- the bound, then a cancel request (itself bounded) and the ROLLBACK
    assert(secs >= TIMEOUT - 0.5 and secs < TIMEOUT + 4, "took " .. secs .. " s")
    assert.are.equal(1, code)
    assert.truthy(err:find(("no answer from the server for %d s (timeout = %d)"):format(TIMEOUT, TIMEOUT),
                           1, true), err)
    -- the network comes back cut: the server ends the old session
    os.execute("kill -TERM " .. p.pid)
    local l = assert_consistent(admin, name, name)
    assert.is_false(l.done)
    cfg.url, cfg.hook, cfg.timeout = nil, nil, nil
    local s = run(cfg)
    assert.are.equal(l.rows_read, s.resumed_from)
    assert.are.same(want, digest(admin, name))
    -- the error said which load stopped, and how to go on
    assert.truthy(err:find(('load: checkpoint "%s": '):format(name), 1, true), err)
    assert.truthy(err:find("run the load again to go on", 1, true), err)
    return l, err
  end

  it("a network gone silent mid-COPY (timeout = 2): an error within the bound, then completes",
     function()
    silent_case("silent_copy")
  end)

  it("a network gone silent at a ledger write (timeout = 2): an error within the bound, then completes",
     function()
    local l, err = silent_case("silent_ledger",
                               { match = { "insert into", "sluice_ledger" }, nth = 3 })
    assert.are.equal(2 * 30000, l.rows_read)
    assert.truthy(err:find("rows 1-60000 are committed and in the ledger (60000 loaded, 0 "
                           .. "rejected); rows 60001-90000 were rolled back", 1, true), err)
  end)

  it("a network gone silent at the ledger read of a resumed run: an error, then completes",
     function()
    -- a first run stopped after 2 chunks (SIGKILL), then the resumed run's
    -- network goes silent as it reads the ledger
    local l, err = silent_case("silent_read", { match = { "select * from", "sluice_ledger" }, nth = 1 },
      function(cfg)
        local c = start(cfg)
        signal_after(admin, c, cfg.checkpoint, 2 * cfg.checkpoint_rows, "KILL")
        assert.are.equal(137, (finish(c, 20)))
      end)
    assert(l.rows_read >= 60000, l.rows_read)
    assert.truthy(err:find("no answer from the server", 1, true), err)
  end)

  -------------------------------------------------------------- CSV input

  -- A CSV file of n records (id,v,n) with quoted newlines, commas and
  -- quotes in v; record i is bad (n not an integer) when i % bad == 0,
  -- and record `wide` has a field too many (read with strict = false: the
  -- load sets it aside).  Returns the path and, per
  -- bad record, the line it starts on.
  local function csv_file(path, n, bad, wide)
    local out, line, bad_lines = { "id,v,n\n" }, 2, {}
    for i = 1, n do
      local v = ("v%d"):format(i)
      if i % 5 == 0 then v = ('"first %d\nsecond, ""quoted""\nthird"'):format(i) end
      local nv = tostring(i % 1000)
      if i % bad == 0 then nv = "x" .. i end
      local rec = ("%d,%s,%s"):format(i, v, nv)
      if i == wide then rec = rec .. ",extra" end
      if i % bad == 0 or i == wide then bad_lines[i] = line end
      out[#out + 1] = rec .. "\n"
      local _, nl = rec:gsub("\n", "")
      line = line + 1 + nl
    end
    H.write(path, table.concat(out))
    return bad_lines
  end

  for _, gz in ipairs { false, true } do
    it(("CSV input%s with quoted newlines, killed three times: exact table, each bad record once "
        .. "with its line"):format(gz and " (gzip)" or ""), function()
      local N, CHUNK, BAD, WIDE = 3000, 97, 401, 1777
      local key = gz and "csv_gz" or "csv"
      local path = tmp .. "/" .. key .. ".csv"
      local bad_lines = csv_file(path, N, BAD, WIDE)
      if gz then
        assert(os.execute("gzip -n " .. H.q(path)) == 0)
        path = path .. ".gz"
      end
      -- the reference: one load of the same file
      local ref = new_table(admin, "ref_" .. key)
      local ref_rej = tmp .. "/ref_" .. key .. ".rejects.csv"
      sluice.load { db = admin, table = SCHEMA .. "." .. ref, rows = sluice.csv.open(path, { strict = false }),
                    strategy = "copy_text", on_error = "reject", rejects = ref_rej, quiet = true }
      local want = digest(admin, ref)
      local want_rej = rejects_of(ref_rej)
      -- the expected bad records, by row and line
      local expect = {}
      for i = 1, N do
        if bad_lines[i] then expect[#expect + 1] = ("%d %s:%d"):format(i, path, bad_lines[i]) end
      end
      local got_ref = {}
      for i, e in ipairs(want_rej) do got_ref[i] = e.row .. " " .. e.source end
      assert.are.same(expect, got_ref)
      assert.are.equal(N - #expect, want.count)
      -- the loads, slowed down by the server (a statement trigger sleeps
      -- 20 ms after each chunk's COPY) so the kills land inside chunks
      local tbl = new_table(admin, key)
      admin:exec(([[
        create function %s.slow_%s() returns trigger language plpgsql as
          $$ begin perform pg_sleep(0.02); return null; end $$;
        create trigger slow after insert on %s.%s for each statement execute function %s.slow_%s()]])
        :format(SCHEMA, key, SCHEMA, tbl, SCHEMA, key))
      local rej = tmp .. "/" .. key .. ".rejects.csv"
      local cfg = { input = path, table = tbl, checkpoint = key, checkpoint_rows = CHUNK,
                    strategy = "copy_text", rejects = rej }
      kill_three_times(cfg, CHUNK)
      local l = assert_consistent(admin, key, tbl)
      assert.is_true(l.done)
      assert.are.equal(#expect, l.rows_rejected)
      assert.are.same(want, digest(admin, tbl))
      local got = assert_rejects(rej, want_rej)
      assert_reject_messages(got, want_rej)
    end)
  end
end)
