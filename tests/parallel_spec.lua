-- Parallel loading: sluice.parallel, sluice.load{ jobs = N } and
-- `sluice --jobs N`, against the test database.  The same input gives the
-- same table whatever N; CSV chunks never split a record; a worker killed
-- mid-load and a re-run with checkpoint give the exact table; Ctrl-C stops
-- every worker in a bounded time and says what was committed.
local H = require "helper"
local sluice = require "sluice"

local function digest(db, tbl, cols, order)
  return db:query_one(("select count(*)::int as n, count(distinct %s)::int as d, "
                       .. "md5(string_agg(concat_ws('|', %s), E'\\n' order by %s)) as h from %s")
                      :format(order, cols, order, tbl))
end

local function script(dir, name, text)
  local path = dir .. "/" .. name
  H.write(path, text)
  return path
end

describe("sluice.parallel", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function() db:close() end)

  it("runs N workers with their index, their own connections, and returns their results", function()
    local results, s = sluice.parallel { jobs = 3, run = function(w)
      local ok, err = pcall(db.query, db, "select 1")
      local mine = sluice.connect(H.url())
      local pid = mine:query_one("select pg_backend_pid() as p").p
      mine:close()
      return { index = w.index, count = w.count, worker = sluice.worker.index, pid = pid,
               parent_ok = ok, parent_err = tostring(err) }
    end }
    assert.are.equal(3, s.jobs)
    local pids = {}
    for k = 1, 3 do
      local r = results[k]
      assert.are.same({ k, 3, k }, { r.index, r.count, r.worker })
      assert.is_false(r.parent_ok)
      assert.is_truthy(r.parent_err:find("this connection belongs to the parent process; a "
                                         .. "worker connects on its own", 1, true), r.parent_err)
      pids[r.pid] = true
    end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.are.equal(3, n)
    -- the parent's session survived the workers' exits
    assert.are.equal(42, db:query_one("select 42 as x").x)
    assert.is_nil(sluice.worker)
  end)

  it("raises naming the worker that failed, and jobs = 1 runs in the process", function()
    local err = H.error_of(sluice.parallel, { jobs = 2, run = function(w)
      if w.index == 2 then error("no luck in " .. w.index, 0) end
      return true
    end })
    assert.is_truthy(tostring(err):find("parallel: worker 2 of 2 failed: no luck in 2", 1, true),
                     tostring(err))
    -- a worker that returns nothing is no failure
    local none = sluice.parallel { jobs = 2, run = function(w) if w.index == 2 then return 7 end end }
    assert.are.same({ [2] = 7 }, none)
    local me = { }
    local r = sluice.parallel { jobs = 1, run = function(w) me.w = w return "here" end }
    assert.are.same({ "here" }, r)
    assert.are.equal(1, me.w.index)
  end)

  it("refuses a bad jobs", function()
    local err = H.error_of(sluice.parallel, { jobs = 0, run = function() end })
    assert.is_truthy(tostring(err):find("jobs must be an integer from 1 to 256, got 0", 1, true))
  end)
end)

describe("sluice.load jobs = N", function()
  local db, dir
  setup(function()
    db = H.connect()
    H.schema(db, "par")
    dir = H.tmpdir()
  end)
  teardown(function()
    os.execute("rm -rf " .. H.q(dir))
    db:exec("drop schema if exists par cascade")
    db:close()
  end)

  it("--shard 1/3, 2/3 and 3/3, one checkpoint between them, load the input once", function()
    -- a CSV file (the same cut in every run) and a generator's rows
    local csvpath = dir .. "/shard.csv"
    local lines = { "id,name" }
    for i = 1, 3000 do lines[#lines + 1] = ('%d,"name\n%d"'):format(i, i) end
    H.write(csvpath, table.concat(lines, "\n") .. "\n")
    local path = script(dir, "shard.lua", [[
local sluice = require "sluice"
local db = sluice.connect()
db:exec("set search_path = par")
db:exec("create table if not exists sh_" .. arg[1] .. " (id bigint primary key, name text)")
local rows = arg[1] == "csv" and sluice.csv.rows(arg[2])
             or sluice.gen(5):rows(1, 3000, function(r, i) return { i, r:word() } end)
local s = sluice.load { db = db, table = "sh_" .. arg[1], rows = rows, checkpoint = "sh_" .. arg[1],
                        chunk_rows = 250, chunk_bytes = 2000 }
print(s.read .. " " .. s.loaded .. " " .. tostring(s.already_done or false))
]])
    for _, kind in ipairs({ "csv", "gen" }) do
      local seen = 0
      for k = 1, 3 do
        local code, out, err = H.sluice(("--shard %d/3 %s %s %s"):format(k, H.q(path), kind, H.q(csvpath)))
        assert.are.equal(0, code, err)
        local read, loaded = out:match("^(%d+) (%d+) false")
        assert.is_truthy(read, out)
        seen = seen + tonumber(loaded)
        assert.are.equal(seen, H.count(db, "par.sh_" .. kind), kind .. " share " .. k)
        local done = db:query_one("select done from par.sluice_ledger where name = $1", "sh_" .. kind).done
        assert.are.equal(k == 3, done, kind .. " share " .. k)
      end
      assert.are.equal(3000, seen, kind)
      -- every row once, as one load gives it
      assert.are.same({ 3000, 3000 }, { H.count(db, "par.sh_" .. kind),
        db:query_one("select count(distinct id)::int as n from par.sh_" .. kind).n })
      -- a share again, or the whole: nothing more to do
      local code, out, err = H.sluice(("--shard 2/3 %s %s %s"):format(H.q(path), kind, H.q(csvpath)))
      assert.are.equal(0, code, err)
      assert.matches("true$", out:match("^[^\n]*"))
      code, out, err = H.sluice(("--shard 1/1 %s %s %s"):format(H.q(path), kind, H.q(csvpath)))
      assert.are.equal(0, code, err)
      assert.matches("true$", out:match("^[^\n]*"))
      assert.are.equal(3000, H.count(db, "par.sh_" .. kind))
    end
    local code, _, err = H.sluice("--shard 4/3 -e 1")
    assert.are.equal(2, code)
    assert.matches("--shard takes k/K (this run's share k of K, 1 <= k <= K), got 4/3", err, 1, true)
  end)

  it("--jobs 4 generating 200,000 rows gives the table --jobs 1 gives", function()
    local path = script(dir, "gen.lua", [[
local sluice = require "sluice"
local db = sluice.connect()
db:exec("set search_path = par")
db:exec("drop table if exists g" .. arg[1] .. "; create table g" .. arg[1]
        .. " (id bigint primary key, host text, v float8, ok boolean, tags text[])")
local g = sluice.gen(11)
local s = sluice.load { db = db, table = "g" .. arg[1], chunk_rows = 15000,
  rows = g:rows(1, 200000, function(r, i)
    return { i, "host-" .. r:int(1, 50), r:normal(10, 3), r:bool(0.3), { r:word(), r:word() } }
  end) }
print((s.jobs or 1) .. " " .. s.read .. " " .. s.loaded)
]])
    local code, out, err = H.sluice("--jobs 4 " .. H.q(path) .. " 4")
    assert.are.equal(0, code, err)
    assert.are.equal("4 200000 200000", out:match("^[^\n]*"))
    assert.is_truthy(err:find("read 200000 = loaded 200000 + rejected 0", 1, true), err)
    code, out, err = H.sluice(H.q(path) .. " 1")
    assert.are.equal(0, code, err)
    assert.are.equal("1 200000 200000", out:match("^[^\n]*"))
    local a = digest(db, "par.g1", "id, host, v, ok, tags", "id")
    local b = digest(db, "par.g4", "id, host, v, ok, tags", "id")
    assert.are.equal(200000, a.n)
    assert.are.same(a, b)
  end)

  -- A CSV whose records hold quoted line ends (LF and CRLF), doubled
  -- quotes, blank lines and CRLF record ends, cut into chunks of 64
  -- bytes: a chunk boundary falls near every record.
  local function write_csv(path, n)
    local t = { "id,note,amount\n" }
    for i = 1, n do
      local note = i % 3 == 0 and ('"Line one\nline ""two""\r\nthree, ' .. i .. '"')
                   or i % 3 == 1 and ('"quoted ' .. i .. '"') or ("Plain" .. i)
      t[#t + 1] = i .. "," .. note .. "," .. (i * 1.5) .. (i % 7 == 0 and "\r\n" or "\n")
      if i % 50 == 0 then t[#t + 1] = "\n" end
    end
    H.write(path, table.concat(t))
  end

  for _, gz in ipairs { false, true } do
    it("loads a CSV" .. (gz and " (gzip)" or "") .. " with quoted newlines at every chunk "
       .. "boundary with jobs = 3, each record once", function()
      local path = dir .. "/notes.csv"
      write_csv(path, 3000)
      if gz then
        assert.are.equal(0, os.execute("gzip -f " .. H.q(path)))
        path = path .. ".gz"
      end
      db:exec("drop table if exists notes; create table notes (id int primary key, note text, "
              .. "amount float8)")
      local function load(jobs)
        db:exec("truncate notes")
        local s = sluice.load { db = db, table = "notes", jobs = jobs, chunk_bytes = 64, quiet = true,
          rows = sluice.csv.rows(path),
          transform = function(r) return { tonumber(r.id), r.note:lower(), tonumber(r.amount) } end }
        return s, digest(db, "notes", "id, note, amount", "id")
      end
      local s1, d1 = load(1)
      local s3, d3 = load(3)
      assert.are.equal(3000, s1.read)
      assert.are.same({ 3000, 3000, 0 }, { s3.read, s3.loaded, s3.rejected })
      assert.is_true(s3.chunks > 1000, "chunks: " .. tostring(s3.chunks))
      assert.are.same({ 3000, 3000 }, { d3.n, d3.d })
      assert.are.equal(d1.h, d3.h)
      assert.are.equal("line one\nline \"two\"\r\nthree, 3",
                       db:query_one("select note from notes where id = 3").note)
    end)
  end

  for _, case in ipairs { { "\n", false }, { "\r\n", false }, { "\r\n", true } } do
    local eol, gz = case[1], case[2]
    it(("names the file and the line of a bad record as a read of the whole file does (%s%s)")
       :format(eol == "\n" and "LF" or "CRLF", gz and ", gzip" or ""), function()
      local path = dir .. "/bad.csv"
      local t = { "id,note" .. eol }
      for i = 1, 400 do
        t[#t + 1] = i .. ',"a\nb"' .. eol
      end
      t[#t + 1] = '401,"x"y' .. eol
      H.write(path, table.concat(t))
      if gz then
        assert.are.equal(0, os.execute("gzip -f " .. H.q(path)))
        path = path .. ".gz"
      end
      db:exec("drop table if exists bad; create table bad (id int, note text)")
      local err = H.error_of(sluice.load, { db = db, table = "bad", jobs = 3, chunk_bytes = 100,
                                            quiet = true, rows = sluice.csv.rows(path) })
      local msg = tostring(err)
      -- the record starts on line 802 (a header line, then two lines a record)
      assert.is_truthy(msg:find(path .. ":802: malformed quoting (text after a closing quote)",
                                1, true), msg)
      assert.is_truthy(msg:find("load: worker %d of 3 failed"), msg)
      assert.is_truthy(msg:find("committed nothing (rolled back)", 1, true), msg)
      assert.are.equal(0, H.count(db, "bad"))
      assert.are.equal(0, err.committed_rows)
    end)
  end

  it("deals the rows of any iterator in chunks, values exact", function()
    db:exec("drop table if exists vals; create table vals (i int, s text, x float8, b boolean, "
            .. "a int[], n text)")
    local function rows()
      local i = 0
      return function()
        i = i + 1
        if i > 3000 then return nil end
        return { i, "s\n\"" .. i .. "\t\\", i / 7, i % 2 == 0, { i, i + 1 }, i % 5 == 0 and sluice.null or "t" }
      end
    end
    sluice.load { db = db, table = "vals", rows = rows(), quiet = true }
    local a = digest(db, "vals", "i, s, x, b, a, n", "i")
    db:exec("truncate vals")
    local s = sluice.load { db = db, table = "vals", rows = rows(), jobs = 3, quiet = true }
    assert.are.equal(3000, s.loaded)
    assert.are.same(a, digest(db, "vals", "i, s, x, b, a, n", "i"))
  end)

  it("after a worker killed by SIGKILL, a re-run with checkpoint loads exactly the missing chunks",
     function()
    local marker = dir .. "/killed"
    local path = script(dir, "kill.lua", [[
local sluice = require "sluice"
local ffi = require "ffi"
ffi.cdef "int kill(int pid, int sig); int getpid(void);"
local db = sluice.connect()
db:exec("set search_path = par")
local marker = arg[1]
local g = sluice.gen(5)
local s = sluice.load { db = db, table = "ck", jobs = 3, checkpoint = "ck-par", chunk_rows = 1000,
  rows = g:rows(1, 30000, function(r, i)
    if i == 17500 and not io.open(marker) then
      io.open(marker, "w"):close()
      ffi.C.kill(ffi.C.getpid(), 9) -- a worker dies in the middle of chunk 17001-18000
    end
    return { i, r:word() }
  end) }
print(s.read, s.loaded, s.resumed_from, s.chunks)
]])
    db:exec("drop table if exists ck; create table ck (id int primary key, w text)")
    db:exec("drop table if exists sluice_ledger")
    local code, _, err = H.sluice(H.q(path) .. " " .. H.q(marker))
    assert.are.equal(1, code, err)
    assert.is_truthy(err:find("load: worker %d of 3 failed: killed by SIGKILL; %d+ chunks of this "
                              .. "run are committed and in the ledger"), err)
    local committed = tonumber(err:match("chunks of this run are committed and in the ledger %((%d+) rows"))
    assert.are.equal(committed, H.count(db, "ck"))
    assert.is_true(committed > 0 and committed < 30000)
    local out
    code, out, err = H.sluice(H.q(path) .. " " .. H.q(marker))
    assert.are.equal(0, code, err)
    local read, loaded, from = out:match("^(%d+)%s+(%d+)%s+(%d+)")
    assert.are.same({ "30000", "30000", tostring(committed) }, { read, loaded, from })
    -- the expected table: the same rows loaded by one process
    db:exec("drop table if exists ck1; create table ck1 (id int primary key, w text)")
    local g = sluice.gen(5)
    sluice.load { db = db, table = "ck1", quiet = true,
                  rows = g:rows(1, 30000, function(r, i) return { i, r:word() } end) }
    assert.are.same(digest(db, "ck1", "id, w", "id"), digest(db, "ck", "id, w", "id"))
    -- and a third run has nothing to do
    code, out, err = H.sluice(H.q(path) .. " " .. H.q(marker))
    assert.are.equal(0, code, err)
    assert.is_truthy(err:find('checkpoint "ck-par" is complete (30000 rows read, 30000 loaded',
                              1, true), err)
    assert.are.equal(1, db:query_one("select count(*)::int as n from sluice_ledger where name = 'ck-par' and done").n)
    assert.is_true(sluice.reset_checkpoint(db, "ck-par"))
    assert.are.equal(0, H.count(db, "sluice_ledger"))
  end)

  it("Ctrl-C to the parent stops every worker within seconds and says what was committed", function()
    local path = script(dir, "slow.lua", [[
local sluice = require "sluice"
local core = require "sluice.core"
local db = sluice.connect()
db:exec("set search_path = par")
db:exec("drop table if exists slow; create table slow (id int primary key)")
local g = sluice.gen(1)
sluice.load { db = db, table = "slow", jobs = 3, chunk_rows = 200, checkpoint = arg[1],
  rows = g:rows(1, 10000000, function(_, i)
    if i % 50 == 0 then core.sleep(0.01) end
    return { i }
  end) }
]])
    db:exec("drop table if exists sluice_ledger")
    local t0 = H.now()
    local code, _, err = H.run("sh -c " .. H.q(H.q(H.exe) .. " " .. H.q(path) .. " slow-ck & pid=$!; "
      .. "sleep 2.5; kids=$(pgrep -P $pid | tr '\\n' ' '); kill -INT $pid; wait $pid; "
      .. "echo status=$? >&2; echo \"kids=$kids\" >&2; sleep 0.2; "
      .. "for k in $kids; do kill -0 $k 2>/dev/null && echo alive=$k >&2; done; true"))
    local took = H.now() - t0
    assert.are.equal(0, code)
    assert.is_truthy(err:find("status=130", 1, true), err)
    local kids = err:match("kids=([^\n]*)")
    local nk = 0
    for _ in kids:gmatch("%d+") do nk = nk + 1 end
    assert.are.equal(3, nk, err)
    assert.is_falsy(err:find("alive=", 1, true), err)
    assert.is_true(took < 2.5 + 10, "took " .. took)
    assert.is_truthy(err:find("load: interrupted %(Ctrl%-C%): the 3 workers stopped; %d+ chunks of "
                              .. "this run are committed and in the ledger %(%d+ rows"), err)
    local n = tonumber(err:match("in the ledger %((%d+) rows"))
    assert.are.equal(n, H.count(db, "par.slow"))
  end)

  it("is a modifier of the strategy lab: compare checks the contents of copy_binary+jobs=2", function()
    db:exec("drop table if exists lab; create table lab (id int primary key, host text, v float8)")
    local res = sluice.compare { db = db, table = "lab", n = 20000, quiet = true,
      rows = function(i) return i, "host-" .. i % 10, i / 7 end,
      strategies = { "copy_binary", { "copy_binary", jobs = 2 }, { "batch", jobs = 3 } } }
    assert.is_true(res.identical)
    assert.are.same({ "copy_binary", "copy_binary +jobs=2", "batch +jobs=3" },
                    { res[1].label, res[2].label, res[3].label })
    for i = 1, 3 do assert.are.equal(20000, res[i].count) end
    local code, out, err = H.sluice(H.q(H.root .. "/scripts/compare_strategies.lua")
                                    .. " metrics 5000 --strategies copy_binary,copy_binary+jobs=2")
    assert.are.equal(0, code, err)
    assert.is_truthy(out:find("| copy_binary +jobs=2 | 5,000 |", 1, true), out)
    -- (a difference in the copies' contents would have failed the script)
  end)

  it("--jobs is a default that gives way where workers cannot load; jobs = N says why", function()
    local code, _, err = H.sluice("--jobs 0 -e 'print(1)'")
    assert.are.equal(2, code)
    assert.is_truthy(err:find("--jobs takes a number from 1 to 256, got 0", 1, true), err)
    local path = script(dir, "rej.lua", [[
local sluice = require "sluice"
local db = sluice.connect()
db:exec("set search_path = par")
db:exec("drop table if exists rej; create table rej (id int check (id % 10 <> 0))")
local rows = {}
for i = 1, 100 do rows[i] = { i } end
local bad = {}
local s = sluice.load { db = db, table = "rej", rows = rows, on_error = "reject",
                        on_reject = function(v) bad[#bad + 1] = v[1] end }
print(s.jobs or 1, s.read, s.loaded, s.rejected, #bad, sluice.parallel_jobs())
]])
    local out
    code, out, err = H.sluice("--jobs 3 " .. H.q(path))
    assert.are.equal(0, code, err)
    assert.are.equal("1\t100\t90\t10\t10\t3", out:match("^[^\n]*"))
    db:exec("drop table if exists rej2; create table rej2 (id int)")
    local e = H.error_of(sluice.load, { db = db, table = "rej2", rows = { { 1 } }, jobs = 2,
                                        on_error = "reject", rejects = dir .. "/r.csv" })
    assert.is_truthy(tostring(e):find('load: jobs = N does not take reject mode (on_error = "reject", '
                                      .. 'rejects, on_reject) yet: load with jobs = 1', 1, true),
                     tostring(e))
  end)

  it("scripts/synthetic_shop.lua with --jobs 4 gives the tables --jobs 1 gives", function()
    local sums = {}
    for _, jobs in ipairs { 1, 4 } do
      local code, out, err = H.sluice(("--jobs %d %s 400 60 1500 --seed 3 --schema shop_j%d")
                                      :format(jobs, H.q(H.root .. "/scripts/synthetic_shop.lua"), jobs))
      assert.are.equal(0, code, err)
      assert.is_truthy(out:find("orders:%s+1500"), out)
      sums[jobs] = {}
      for t, order in pairs { users = "id", products = "id", orders = "id",
                              order_items = "order_id, line" } do
        sums[jobs][t] = db:query_one(("select count(*) as n, md5(string_agg(x::text, E'\\n' order "
                                      .. "by %s)) as h from shop_j%d.%s x"):format(order, jobs, t))
      end
    end
    db:exec("drop schema shop_j1 cascade; drop schema shop_j4 cascade")
    assert.are.equal(400, sums[4].users.n)
    assert.are.same(sums[1], sums[4])
  end)
end)
